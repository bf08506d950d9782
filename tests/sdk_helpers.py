"""Helpers for the SDK tests: one sync-looking handle on either client face, so every
behaviour is checked on ``GatewayClient`` and on ``AsyncGatewayClient`` (driven
through an anyio portal running asyncio) with the same test code."""

from __future__ import annotations

import functools
import inspect
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
from gateway_process import ADMIN_TOKEN, GatewayProcess

from refstore.gateway import AsyncDownloadStream, AsyncGatewayClient, GatewayClient

FACES = ["sync", "async"]
MiB = 1024 * 1024


class PortalStream:
    """A sync view of an :class:`AsyncDownloadStream` (same attributes and methods)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, stream: AsyncDownloadStream):
        self._portal = portal
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        chunks = self._stream.aiter_bytes(chunk_size)
        try:
            while True:
                try:
                    yield self._portal.call(chunks.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(chunks.aclose)  # type: ignore[attr-defined]

    def read(self) -> bytes:
        return self._portal.call(self._stream.aread)


class PortalClient:
    """An :class:`AsyncGatewayClient` called from sync code: ``client.upload_file(...)``
    runs ``await async_client.upload_file(...)`` in the portal's event loop."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: AsyncGatewayClient):
        self._portal = portal
        self.async_client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.async_client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._portal.call(functools.partial(attr, *args, **kwargs))

        return call

    @contextmanager
    def stream(self, uri: str, **kwargs: Any) -> Iterator[PortalStream]:
        manager = self.async_client.stream(uri, **kwargs)
        with self._portal.wrap_async_context_manager(manager) as stream:
            yield PortalStream(self._portal, stream)

    def iter_bytes(self, uri: str, **kwargs: Any) -> Iterator[bytes]:
        chunks = self.async_client.aiter_bytes(uri, **kwargs)
        try:
            while True:
                try:
                    yield self._portal.call(chunks.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(chunks.aclose)  # type: ignore[attr-defined]

    def close(self) -> None:
        self._portal.call(self.async_client.aclose)


@contextmanager
def open_client(face: str, url: str | None, **kwargs: Any) -> Iterator[Any]:
    """A client of ``face`` ("sync" or "async"), closed afterwards.

    ``api_key`` defaults to the admin token; pass ``api_key=None`` for the environment's.
    """
    kwargs.setdefault("api_key", ADMIN_TOKEN)
    if face == "sync":
        with GatewayClient(url, **kwargs) as client:
            yield client
        return
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        client = portal.call(functools.partial(AsyncGatewayClient, url, **kwargs))
        adapter = PortalClient(portal, client)
        try:
            yield adapter
        finally:
            adapter.close()


class Progress:
    """A progress callback that records every increment."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.increments: list[int] = []
        self._on_first = on_first

    def __call__(self, n: int) -> None:
        self.increments.append(n)
        if self._on_first is not None and len(self.increments) == 1:
            self._on_first()

    @property
    def total(self) -> int:
        return sum(self.increments)


def pattern_file(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path`` and return them."""
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def access_lines(
    process: GatewayProcess, request_id: str, expected: int = 1, wait: float = 5.0
) -> list[str]:
    """Access-log lines of the gateway process for ``request_id`` (one per attempt),
    waiting up to ``wait`` seconds for ``expected`` of them (they are written just
    after each response), then a little longer for any more."""
    deadline = time.monotonic() + wait
    settle: float | None = None
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [
            line
            for line in process.log().splitlines()
            if '"refstore.access"' in line and f'"request_id": "{request_id}"' in line
        ]
        if len(found) >= expected:
            settle = settle or time.monotonic() + 0.1
            if time.monotonic() >= settle:
                break
        time.sleep(0.05)
    return found


def transfer_bytes(client: Any, direction: str) -> float:
    """``refstore_transfer_bytes_total{direction}`` of the gateway the client talks to."""
    import httpx

    response = httpx.get(f"{client.gateway_url}/metrics", timeout=10)
    match = re.search(
        rf'^refstore_transfer_bytes_total\{{direction="{direction}"\}} (\S+)$',
        response.text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


def leftovers(directory: Path) -> list[str]:
    """Temporary ``.part`` files left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


class Unseekable(io.RawIOBase):
    """A stream that can be read once and not rewound (like a pipe), in pieces of at
    most ``piece`` bytes when given."""

    def __init__(self, data: bytes, piece: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer) if self._piece is None else min(len(buffer), self._piece)
        chunk = self._data.read(size)
        buffer[: len(chunk)] = chunk
        return len(chunk)


_KILLABLE_UPLOADER = """
import sys
from refstore.gateway import GatewayClient

url, key, source, uri, state_dir, part_size, parallel = sys.argv[1:8]
sent = 0

def report(n):
    global sent
    sent += n
    print(sent, flush=True)

with GatewayClient(url, api_key=key, timeout=300) as client:
    client.upload_large(source, uri, part_size=int(part_size), parallel=int(parallel),
                        state_dir=state_dir, progress=report)
"""


def upload_killed_at(
    url: str,
    api_key: str,
    source: Path,
    uri: str,
    state_dir: Path,
    *,
    part_size: int,
    parallel: int,
    at: int,
) -> int:
    """Run ``upload_large`` in a process of its own and SIGKILL it once its progress
    has reported ``at`` bytes; return the bytes it had reported by then.

    Raises:
        AssertionError: the upload ended before it could be killed.
    """
    args = [url, api_key, str(source), uri, str(state_dir), str(part_size), str(parallel)]
    with subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_UPLOADER, *args], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        reported = 0
        for line in process.stdout:
            reported = int(line)
            if reported >= at:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, "the upload ended before it could be killed"
    return reported
