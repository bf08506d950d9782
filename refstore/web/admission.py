"""What the gateway refuses at once, so that no client can hold what the others need.

Uploads wait on their client's bytes, so each holds a thread of the upload pool for as
long as its client takes; :class:`UploadSlots` admits at most as many as that pool has
threads (and a share of them per key), and every other storage call runs in a pool of its
own, :class:`BoundedExecutor`, whose queue is bounded. Both refuse with a
:class:`~refstore.errors.BusyError` (503, or 429 for one key's share) that carries
``retry_after``: the request was not acted on, so any client may send it again.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from prometheus_client import Gauge

from ..errors import BusyError, TooManyRequestsError

T = TypeVar("T")


class UploadSlots:
    """At most ``total`` uploads at once, and at most ``per_key`` for one key."""

    def __init__(self, total: int, per_key: int, retry_after: int, gauge: Gauge) -> None:
        self.total = total
        self.per_key = per_key
        self.retry_after = retry_after
        self._gauge = gauge
        self._held: Counter[str] = Counter()
        self.active = 0

    def held_by(self, key: str) -> int:
        return self._held[key]

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold one slot for ``key`` (a principal's name) while the block runs.

        Raises:
            BusyError: ``total`` uploads are in flight (503).
            TooManyRequestsError: ``key`` has ``per_key`` uploads in flight (429).
        """
        if self.active >= self.total:
            raise BusyError(
                f"the gateway has {self.active} uploads in flight, as many as it takes "
                f"(server.max_concurrent_uploads); retry in {self.retry_after}s",
                retry_after=self.retry_after,
            )
        if self._held[key] >= self.per_key:
            raise TooManyRequestsError(
                f"{key} has {self._held[key]} uploads in flight, as many as one key may "
                f"(server.max_uploads_per_key); retry in {self.retry_after}s",
                retry_after=self.retry_after,
            )
        self.active += 1
        self._held[key] += 1
        self._gauge.inc()
        try:
            yield
        finally:
            self.active -= 1
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
            self._gauge.dec()


class BoundedExecutor(ThreadPoolExecutor):
    """A thread pool that refuses work once ``max_queued`` calls wait for a thread, so a
    slow backend sheds requests (503 + Retry-After) instead of queueing them unseen."""

    def __init__(
        self, max_workers: int, max_queued: int, retry_after: int, thread_name_prefix: str
    ) -> None:
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self.max_queued = max_queued
        self.retry_after = retry_after

    @property
    def queued(self) -> int:
        """Calls submitted and not yet taken by a thread."""
        return self._work_queue.qsize()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """As :meth:`ThreadPoolExecutor.submit`.

        Raises:
            BusyError: ``max_queued`` calls are already waiting.
        """
        if self.queued >= self.max_queued:
            raise BusyError(
                f"{self.queued} storage calls are waiting for a thread, as many as the "
                f"gateway queues (server.max_queued_calls); retry in {self.retry_after}s",
                retry_after=self.retry_after,
            )
        return super().submit(fn, *args, **kwargs)
