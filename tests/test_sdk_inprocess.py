"""The SDK against the gateway app in this process, injected with ``http_client=``:
``AsyncGatewayClient`` over ``httpx.ASGITransport``, ``GatewayClient`` over a small
sync transport that runs the same ASGI app in an event-loop thread (Starlette's
``TestClient`` has moved to httpx2), on the local backend."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import anyio.from_thread
import httpx
import pytest

from refstore import InvalidKeyError, ObjectNotFoundError, PermissionDeniedError
from refstore.gateway import AsyncGatewayClient, GatewayClient
from refstore.web import GatewaySettings, create_app

TOKEN = "in-process-admin"
BASE = "http://testserver"


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        local={"root": str(tmp_path / "store")},
        default_bucket="inproc",
        auth={"mode": "keys", "admin_tokens": [TOKEN]},
    )


def test_async_client_over_asgi_transport(settings, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 1)
    (tmp_path / "up.bin").write_bytes(data)

    async def main() -> None:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                async with AsyncGatewayClient(BASE, api_key=TOKEN, http_client=http) as client:
                    assert (await client.get_status())["backend"] == "local"
                    up = await client.upload_from_local(tmp_path / "up.bin", path="in")
                    assert up["uri"] == "s3://inproc/in/up.bin" and up["size"] == len(data)
                    assert await client.download_file(up["uri"], offset=5, length=5) == data[5:10]
                    # Direct mode: the local backend's presigned links, served by the app.
                    direct = await client.upload_from_local(
                        tmp_path / "up.bin", "inproc", "direct", direct=True
                    )
                    assert direct == {**up, "uri": "s3://inproc/direct/up.bin"}
                    target = tmp_path / "down.bin"
                    assert await client.download_to_local(direct["uri"], target, direct=True)
                    assert target.read_bytes() == data
                    with pytest.raises(ObjectNotFoundError):
                        await client.download_file("s3://inproc/in/none.bin")
                    with pytest.raises(InvalidKeyError):
                        await client.upload_file(b"x", "x.txt", None, "../up")
                assert not http.is_closed  # injected: left to its owner
                async with AsyncGatewayClient(BASE, api_key="bad", http_client=http) as bad:
                    with pytest.raises(PermissionDeniedError) as refused:
                        await bad.list_files()
                    assert refused.value.status == 401

    asyncio.run(main())


class PortalTransport(httpx.BaseTransport):
    """A sync httpx transport onto an ASGI app running in an anyio portal (bodies are
    buffered: fine for tests)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: object) -> None:
        self._portal = portal
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        response = self._portal.call(self._inner.handle_async_request, forwarded)
        content = self._portal.call(response.aread)
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def test_sync_client_over_an_in_process_transport(settings):
    app = create_app(settings)
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        httpx.Client(transport=PortalTransport(portal, app), base_url=BASE) as http,
        GatewayClient(BASE, api_key=TOKEN, http_client=http) as client,
    ):
        result = client.upload_file(b"in process", "p.txt", "inproc", "docs")
        assert result["uri"] == "s3://inproc/docs/p.txt"
        assert client.download_file(result["uri"]) == b"in process"
        assert [f["object_name"] for f in client.list_files()["files"]] == ["docs/p.txt"]
        assert client.delete_file(result["uri"])["deleted"] == [result["uri"]]
        with pytest.raises(ObjectNotFoundError) as missing:
            client.download_file(result["uri"])
        assert missing.value.code == "object_not_found"
