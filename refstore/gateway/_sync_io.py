"""Blocking file and timer operations of :class:`GatewayClient`.

Hand-written twin of ``_async_io.py`` (same names, plain calls); the generated
``_sync_client.py`` imports it where ``_async_client.py`` imports ``_async_io``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar

from ..parallel import run_all
from ._direct import DirectFetcher
from ._types import ProgressCallback

T = TypeVar("T")

Semaphore = threading.Semaphore
"""Bounds the requests in flight (``with``)."""


class File:
    """A binary file (the synchronous counterpart of ``_async_io.File``)."""

    def __init__(self, raw: BinaryIO, *, owned: bool = True) -> None:
        self._raw = raw
        self._owned = owned

    @property
    def raw(self) -> BinaryIO:
        """The underlying file."""
        return self._raw

    def read(self, size: int) -> bytes:
        return self._raw.read(size)

    def write(self, data: bytes) -> None:
        self._raw.write(data)

    def seek(self, offset: int) -> None:
        self._raw.seek(offset)

    def close(self) -> None:
        """Close the file (never a caller's file given to :func:`wrap_file`)."""
        if self._owned:
            self._raw.close()


def open_file(path: str) -> File:
    """Open ``path`` for binary reading."""
    return File(open(path, "rb"))


def wrap_file(raw: BinaryIO) -> File:
    """A caller's file object, left open."""
    return File(raw, owned=False)


def create_temp(directory: str, prefix: str) -> tuple[File, str]:
    """A new temporary file in ``directory``, open for writing, and its path."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    return File(os.fdopen(fd, "wb")), name


def makedirs(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def file_size(path: str) -> int:
    """Size of a local file. Raises: OSError (e.g. FileNotFoundError)."""
    return os.stat(path).st_size


def replace(source: str, target: str) -> None:
    os.replace(source, target)


def remove(path: str) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def fetch_to_file(
    fetcher: DirectFetcher, url: str, file: File, progress: ProgressCallback | None
) -> int:
    """``fetcher.fetch_to_file`` into ``file``."""
    return fetcher.fetch_to_file(url, file.raw, progress)


def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``."""
    return function(*args)


def serialized(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` behind a lock: the parts of :func:`gather` report from their threads."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(n: int) -> None:
        with lock:
            progress(n)

    return report


def gather(jobs: Sequence[Callable[[], T]], limit: int) -> list[T]:
    """Run ``jobs`` on at most ``limit`` threads; their results, in order (as
    :func:`refstore.parallel.run_all`: after the first failure nothing more starts,
    and it is raised once the running jobs are done)."""
    return run_all(jobs, limit, thread_name="refstore-part")
