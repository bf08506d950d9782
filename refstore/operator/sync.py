"""Drive every replica of one gateway to one mapping: a worker per endpoint address.

Each worker pushes to its replica one request at a time. It reads what the replica holds
before its first push (so an operator that restarted never pushes what is already there),
pushes again only when the target changes or the replica no longer holds it, re-reads on
every resync (a replica that restarted empty is noticed without any event), and retries a
failing replica with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .model import DesiredMapping, Endpoint, EndpointState
from .pusher import GatewayPusher, Held, PushError

logger = logging.getLogger("refstore.operator")

EventSink = Callable[[str, str, str], None]
"""``(type, reason, message)``: where a worker reports a replica failing or recovering."""


@dataclass(frozen=True)
class Timing:
    """Seconds: how often each replica is re-read, and the retry backoff of a failing one."""

    resync: float = 5.0
    backoff_first: float = 0.2
    backoff_max: float = 5.0

    def backoff(self, failures: int) -> float:
        return min(self.backoff_max, self.backoff_first * 2.0 ** (failures - 1))


class EndpointWorker:
    """Keeps one replica at the target mapping."""

    def __init__(
        self,
        endpoint: Endpoint,
        pusher: GatewayPusher,
        timing: Timing,
        changed: asyncio.Event,
        events: EventSink,
    ) -> None:
        self.endpoint = endpoint
        self.target: DesiredMapping | None = None
        self.state = EndpointState(endpoint)
        self.pushes = 0
        self._pusher = pusher
        self._timing = timing
        self._changed = changed
        self._events = events
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"push {self.endpoint.url}")

    def retarget(self, target: DesiredMapping | None, endpoint: Endpoint) -> None:
        """Aim at ``target`` (None: hold off); ``endpoint`` may carry a new pod or readiness."""
        if endpoint != self.endpoint:
            self.endpoint = endpoint
            self.state = EndpointState(
                endpoint, self.state.applied_generation, self.state.synced, self.state.error
            )
            self._changed.set()
        if target != self.target:
            self.target = target
            self._wake.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        held: Held | None = None  # None: not known, read it first
        next_read = 0.0
        failures = 0
        while True:
            self._wake.clear()
            target = self.target
            error = ""
            try:
                if held is None or loop.time() >= next_read:
                    held = await self._pusher.held(self.endpoint)
                    next_read = loop.time() + self._timing.resync
                if target is not None and not held.satisfies(target):
                    held = await self._pusher.push(self.endpoint, target)
                    self.pushes += 1
                    next_read = loop.time() + self._timing.resync
            except PushError as exc:
                held, error = None, str(exc)
            failures = failures + 1 if error else 0
            self._publish(held, target, error)
            delay = self._timing.backoff(failures) if error else next_read - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, delay))

    def _publish(self, held: Held | None, target: DesiredMapping | None, error: str) -> None:
        previous = self.state
        if held is None:
            applied, synced = previous.applied_generation, False
        elif target is None:
            applied, synced = 0, False
        else:
            applied = held.generation_of(target)
            synced = applied > 0 and held.satisfies(target)
            if not synced and not error and held.satisfies(target):
                error = f"holds a newer mapping from {(held.version or {}).get('source', '?')}"
        self.state = EndpointState(self.endpoint, applied, synced, error)
        if self.state == previous:
            return
        self._changed.set()
        name = f"{self.endpoint.address}:{self.endpoint.port}"
        if error and not previous.error:
            logger.warning("gateway %s failing: %s", name, error)
            self._events("Warning", "GatewayUnreachable", f"gateway {name}: {error}")
        elif previous.error and not error:
            logger.info("gateway %s recovered", name)
            self._events("Normal", "GatewayRecovered", f"gateway {name} answers again")


class MappingSync:
    """Workers for the current endpoint set of one gateway Service, all aimed at one target.

    ``changed`` is set whenever an endpoint's state changes, so the owner can write status.
    """

    def __init__(
        self, pusher: GatewayPusher, timing: Timing, events: EventSink = lambda *_: None
    ) -> None:
        self.changed = asyncio.Event()
        self._pusher = pusher
        self._timing = timing
        self._events = events
        self._workers: dict[tuple[str, int], EndpointWorker] = {}

    def update(self, target: DesiredMapping | None, endpoints: Iterable[Endpoint]) -> None:
        """Aim every endpoint at ``target``; start workers for new addresses, stop gone ones."""
        wanted = {(e.address, e.port): e for e in endpoints}
        for key in set(self._workers) - set(wanted):
            asyncio.get_running_loop().create_task(self._workers.pop(key).stop())
            self.changed.set()
        for key, endpoint in wanted.items():
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = EndpointWorker(
                    endpoint, self._pusher, self._timing, self.changed, self._events
                )
                worker.retarget(target, endpoint)
                worker.start()
                self.changed.set()
            else:
                worker.retarget(target, endpoint)

    def states(self) -> list[EndpointState]:
        return [self._workers[key].state for key in sorted(self._workers)]

    @property
    def pushes(self) -> int:
        """Pushes made by the current workers (for tests and benchmarks)."""
        return sum(worker.pushes for worker in self._workers.values())

    async def aclose(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(worker.stop() for worker in workers))
