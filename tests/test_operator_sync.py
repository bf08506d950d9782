"""The operator's push engine against real gateway processes (``refstore serve``, mapping
from the operator), without kopf or a cluster: every replica gets the mapping, follows
updates, is re-pushed after restarting empty, is retried while it is down, and nothing is
pushed twice or pushed stale."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_process import GatewayProcess

from refstore.operator.model import DesiredMapping, Endpoint
from refstore.operator.pusher import GatewayPusher
from refstore.operator.sync import MappingSync, Timing

TOKEN = f"mapping-{secrets.token_hex(8)}"
FAST = Timing(resync=0.5, backoff_first=0.05, backoff_max=0.3)


def desired(generation: int, physical: str = "physical-a") -> DesiredMapping:
    return DesiredMapping(
        source="bucketmapping/team/maps",
        uid="uid-1",
        created="2026-12-01T10:00:00Z",
        generation=generation,
        enabled=True,
        bucket_map={"data": physical},
    )


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started = []
    try:
        for n in range(3):
            process = GatewayProcess(
                {
                    "local": {"root": str(tmp_path / f"store-{n}")},
                    "bucket_mapping_source": "operator",
                    "auth": {"mode": "keys", "mapping_tokens": [TOKEN]},
                }
            )
            started.append(process.start())
        yield started
    finally:
        for process in started:
            process.stop()


def endpoint(process: GatewayProcess) -> Endpoint:
    return Endpoint("127.0.0.1", process.port, pod=f"gw-{process.port}")


def held(process: GatewayProcess) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=process.url, headers=headers, trust_env=False) as client:
        body: dict[str, Any] = client.get("/gateway/bucket-mapping").json()
        body["ready"] = client.get("/ready").status_code
        return body


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``condition()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def run(body: Callable[[MappingSync], Awaitable[None]], timing: Timing = FAST) -> None:
    async def main() -> None:
        pusher = GatewayPusher(TOKEN, timeout=1.0)
        sync = MappingSync(pusher, timing)
        try:
            await body(sync)
        finally:
            await sync.aclose()
            await pusher.aclose()

    asyncio.run(main())


def all_synced(sync: MappingSync, generation: int, count: int) -> Callable[[], bool]:
    return lambda: (
        len(sync.states()) == count
        and all(s.synced and s.applied_generation == generation for s in sync.states())
    )


def test_every_replica_gets_the_mapping_and_becomes_ready(gateways: list[GatewayProcess]) -> None:
    async def body(sync: MappingSync) -> None:
        assert all(held(p)["ready"] == 503 for p in gateways)
        sync.update(desired(1), [endpoint(p) for p in gateways])
        await until(all_synced(sync, 1, 3))
        for process in gateways:
            state = held(process)
            assert state["version"]["generation"] == 1
            assert state["bucket_map"] == {"data": "physical-a"}
            assert state["ready"] == 200
        assert sync.pushes == 3

    run(body)


def test_an_update_reaches_every_replica(gateways: list[GatewayProcess]) -> None:
    async def body(sync: MappingSync) -> None:
        endpoints = [endpoint(p) for p in gateways]
        sync.update(desired(1), endpoints)
        await until(all_synced(sync, 1, 3))
        sync.update(desired(2, "physical-b"), endpoints)
        await until(all_synced(sync, 2, 3))
        assert all(held(p)["bucket_map"] == {"data": "physical-b"} for p in gateways)
        assert sync.pushes == 6

    run(body)


def test_a_restarted_operator_pushes_nothing_the_replicas_already_hold(
    gateways: list[GatewayProcess],
) -> None:
    endpoints = [endpoint(p) for p in gateways]

    async def first(sync: MappingSync) -> None:
        sync.update(desired(1), endpoints)
        await until(all_synced(sync, 1, 3))

    async def second(sync: MappingSync) -> None:
        sync.update(desired(1), endpoints)
        await until(all_synced(sync, 1, 3))
        await asyncio.sleep(0.3)
        assert sync.pushes == 0

    run(first)
    run(second)


def test_a_replica_that_restarted_empty_is_pushed_again_by_the_resync(
    gateways: list[GatewayProcess],
) -> None:
    async def body(sync: MappingSync) -> None:
        sync.update(desired(1), [endpoint(p) for p in gateways])
        await until(all_synced(sync, 1, 3))
        gateways[1].stop()
        gateways[1].start()
        assert held(gateways[1])["version"] is None
        waited = await until(lambda: (held(gateways[1])["version"] or {}).get("generation") == 1)
        assert waited < FAST.resync + 2.0
        assert held(gateways[1])["ready"] == 200

    run(body)


def test_a_replica_that_is_down_is_reported_retried_and_recovers(
    gateways: list[GatewayProcess],
) -> None:
    async def body(sync: MappingSync) -> None:
        gateways[2].stop()
        sync.update(desired(1), [endpoint(p) for p in gateways])
        await until(lambda: sum(s.synced for s in sync.states()) == 2)
        await until(
            lambda: (
                "connection refused"
                in next(s for s in sync.states() if s.endpoint.port == gateways[2].port).error
            )
        )
        gateways[2].start()
        await until(all_synced(sync, 1, 3))
        assert held(gateways[2])["version"]["generation"] == 1

    run(body)


def test_an_older_version_replayed_by_hand_is_refused_and_changes_nothing(
    gateways: list[GatewayProcess],
) -> None:
    async def body(sync: MappingSync) -> None:
        sync.update(desired(2), [endpoint(p) for p in gateways])
        await until(all_synced(sync, 2, 3))

    run(body)
    stale = desired(1, "physical-stale").request_body()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gateways[0].url, headers=headers, trust_env=False) as client:
        refused = client.put("/gateway/bucket-mapping", json=stale)
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["current"]["version"]["generation"] == 2
    assert held(gateways[0])["bucket_map"] == {"data": "physical-a"}


def test_nothing_is_pushed_while_the_target_is_held_off(gateways: list[GatewayProcess]) -> None:
    async def body(sync: MappingSync) -> None:
        sync.update(None, [endpoint(p) for p in gateways])
        await asyncio.sleep(0.5)
        assert sync.pushes == 0
        assert all(held(p)["version"] is None for p in gateways)
        assert [s.synced for s in sync.states()] == [False, False, False]

    run(body)


def test_an_endpoint_that_leaves_is_no_longer_pushed_to(gateways: list[GatewayProcess]) -> None:
    async def body(sync: MappingSync) -> None:
        sync.update(desired(1), [endpoint(p) for p in gateways[:2]])
        await until(all_synced(sync, 1, 2))
        sync.update(desired(2), [endpoint(gateways[0])])
        await until(all_synced(sync, 2, 1))
        await asyncio.sleep(0.3)
        assert held(gateways[1])["version"]["generation"] == 1
        assert held(gateways[2])["version"] is None

    run(body)
