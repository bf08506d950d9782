"""Both SDK faces overlap requests up to ``max_connections`` and no further.

A relay in front of the real gateway (on real MinIO) holds each request for a
while, as a distant gateway would, and counts how many wait at once: on this
machine the gateway answers small uploads too fast for overlap to show otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from gateway_helpers import http_client, unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from relay import HoldingRelay
from sdk_helpers import FACES

from refstore.gateway import AsyncGatewayClient, GatewayClient

BUCKET = unique("overlap")
DATA = b"x" * 4096
HOLD = 0.2  # seconds each request waits in the relay


@pytest.fixture(scope="module")
def relay(minio_server: Any) -> Iterator[HoldingRelay]:
    settings = {**minio_server.config(), "default_bucket": BUCKET}
    with GatewayProcess(settings) as gateway, HoldingRelay(gateway.url, HOLD) as relay:
        yield relay


def upload_all(
    face: str, url: str, names: list[str], max_connections: int, at_once: bool
) -> list[Any]:
    """Upload 4 KiB under each name through one client, all at once or one by one."""
    if face == "sync":
        with GatewayClient(url, api_key=ADMIN_TOKEN, max_connections=max_connections) as client:

            def upload(name: str) -> Any:
                return client.upload_file(DATA, name, BUCKET, face)

            if not at_once:
                return [upload(name) for name in names]
            with ThreadPoolExecutor(len(names)) as threads:
                return list(threads.map(upload, names))

    async def main() -> list[Any]:
        async with AsyncGatewayClient(
            url, api_key=ADMIN_TOKEN, max_connections=max_connections
        ) as client:
            if not at_once:
                return [await client.upload_file(DATA, name, BUCKET, face) for name in names]
            uploads = (client.upload_file(DATA, name, BUCKET, face) for name in names)
            return list(await asyncio.gather(*uploads))

    return asyncio.run(main())


@pytest.mark.parametrize("face", FACES)
def test_requests_overlap_up_to_max_connections(face: str, relay: HoldingRelay) -> None:
    names = [f"at-once-{i}.bin" for i in range(40)]
    relay.reset()
    results = upload_all(face, relay.url, names, max_connections=8, at_once=True)

    assert [r["uri"] for r in results] == [f"s3://{BUCKET}/{face}/{name}" for name in names]
    assert all(r["size"] == len(DATA) for r in results)
    assert relay.most_in_flight == 8
    assert relay.connections <= 8
    with http_client(relay.url, ADMIN_TOKEN) as admin:
        listed = admin.get("/list", params={"logic_bucket": BUCKET, "prefix": f"{face}/"})
    stored = {item["object_name"] for item in listed.json()["files"]}
    assert {f"{face}/{name}" for name in names} <= stored


@pytest.mark.parametrize("face", FACES)
def test_one_by_one_uploads_reuse_one_connection(face: str, relay: HoldingRelay) -> None:
    relay.reset()
    names = [f"one-by-one-{i}.bin" for i in range(5)]
    results = upload_all(face, relay.url, names, max_connections=8, at_once=False)

    assert all(r["success"] for r in results)
    assert relay.most_in_flight == 1
    assert relay.connections == 1
