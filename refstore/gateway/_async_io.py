"""Blocking file and timer operations of :class:`AsyncGatewayClient`, off the event loop.

Hand-written, like its twin ``_sync_io.py`` (the same names, without ``async``):
``scripts/unasync.py`` turns ``_async_io`` into ``_sync_io`` and drops the
``await``s. File calls run in worker threads through anyio (as httpx's own I/O
does); clean-up is shielded from cancellation.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread

from ._direct import DirectFetcher
from ._types import ProgressCallback

T = TypeVar("T")

Semaphore = anyio.Semaphore
"""Bounds the requests in flight (``async with``)."""


WRITE_BUFFER = 1024 * 1024


class File:
    """A binary file whose blocking calls run in a worker thread; writes are gathered
    into ~1 MiB before each thread hop (network reads come in 64 KiB pieces)."""

    def __init__(self, raw: BinaryIO, *, owned: bool = True) -> None:
        self._raw = raw
        self._owned = owned
        self._pending = bytearray()

    @property
    def raw(self) -> BinaryIO:
        """The underlying file (use it only from a worker thread)."""
        return self._raw

    async def read(self, size: int) -> bytes:
        data: bytes = await anyio.to_thread.run_sync(self._raw.read, size)
        return data

    async def write(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= WRITE_BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            await anyio.to_thread.run_sync(self._raw.write, self._pending)
            self._pending = bytearray()

    async def seek(self, offset: int) -> None:
        await anyio.to_thread.run_sync(self._raw.seek, offset)

    async def aclose(self) -> None:
        """Write what is pending and close the file (never a caller's file given to
        :func:`wrap_file`)."""
        with anyio.CancelScope(shield=True):
            try:
                await self._flush()
            finally:
                if self._owned:
                    await anyio.to_thread.run_sync(self._raw.close)


async def open_file(path: str) -> File:
    """Open ``path`` for binary reading."""
    raw = await anyio.to_thread.run_sync(open, path, "rb")
    return File(raw)


def wrap_file(raw: BinaryIO) -> File:
    """A caller's file object, read through worker threads and left open."""
    return File(raw, owned=False)


def _create_temp(directory: str, prefix: str) -> tuple[BinaryIO, str]:
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    return os.fdopen(fd, "wb"), name


async def create_temp(directory: str, prefix: str) -> tuple[File, str]:
    """A new temporary file in ``directory``, open for writing, and its path."""
    raw, name = await anyio.to_thread.run_sync(_create_temp, directory, prefix)
    return File(raw), name


async def makedirs(path: str) -> None:
    await anyio.to_thread.run_sync(lambda: os.makedirs(path, exist_ok=True))


async def file_size(path: str) -> int:
    """Size of a local file. Raises: OSError (e.g. FileNotFoundError)."""
    return (await anyio.to_thread.run_sync(os.stat, path)).st_size


async def replace(source: str, target: str) -> None:
    await anyio.to_thread.run_sync(os.replace, source, target)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def remove(path: str) -> None:
    """Delete ``path`` if it exists, even while being cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_remove, path)


async def sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


async def fetch_to_file(
    fetcher: DirectFetcher, url: str, file: File, progress: ProgressCallback | None
) -> int:
    """Run ``fetcher.fetch_to_file`` in a worker thread: progress is reported in the
    event loop's thread, and cancelling the calling task stops the transfer."""

    def report(n: int) -> None:
        assert progress is not None
        anyio.from_thread.run_sync(progress, n)

    fetch = functools.partial(
        fetcher.fetch_to_file,
        url,
        file.raw,
        report if progress is not None else None,
        anyio.from_thread.check_cancelled,
    )
    return await anyio.to_thread.run_sync(fetch)


async def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread (small blocking file work)."""
    return await anyio.to_thread.run_sync(function, *args)


def serialized(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` itself: the parts of :func:`gather` all report in the event loop."""
    return progress


async def gather(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``jobs``, at most ``limit`` at once; their results, in order.

    The first failure cancels the jobs still running and is raised (not wrapped in
    an exception group).
    """
    results: list[Any] = [None] * len(jobs)
    failures: list[BaseException] = []
    limiter = anyio.CapacityLimiter(max(1, limit))

    async def run(index: int, group: anyio.abc.TaskGroup) -> None:
        async with limiter:
            try:
                results[index] = await jobs[index]()
            except Exception as exc:
                failures.append(exc)
                group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for index in range(len(jobs)):
            group.start_soon(run, index, group)
    if failures:
        raise failures[0]
    return results
