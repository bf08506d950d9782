"""AsyncRefStore and AsyncBucketManager: the asynchronous faces.

The MinIO SDK is synchronous, so each coroutine runs the one synchronous
implementation (:class:`~refstore.store.RefStore`) in a bounded thread pool of
its own: the event loop never blocks, behaviour is written once, and at most
``max_concurrency`` operations run at the same time.

Every public method has its sync twin's name and parameters (``close`` is also
``aclose``; ``async with`` and ``async for`` replace ``with`` and ``for``);
``tests/test_faces.py`` checks that. Methods that do no I/O stay plain methods.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from .backends import ObjectInfo, ObjectStream
from .backends.base import CHUNK_SIZE, UploadedPart
from .buckets import BucketManager
from .checksums import Checksums
from .config import StoreConfig
from .mapping import BucketMap, MappingHolder, MappingVersion
from .progress import ProgressCallback
from .retry import RetryHandler
from .store import ChunkReader, RefStore, UploadData
from .uploads import MultipartUpload

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


class _Threaded:
    """Owns the bounded executor that async faces run their sync twins in."""

    _executor: ThreadPoolExecutor

    async def _run(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))


def _threaded(
    method: Callable[Concatenate[S, P], R], attribute: str
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """Coroutine twin of a sync method: runs it on ``self.<attribute>`` in the executor."""

    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await self._run(method, getattr(self, attribute), *args, **kwargs)
        return result

    functools.update_wrapper(twin, method)
    return twin


def _pull(chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """Iterate an async iterable from a worker thread, one chunk at a time on ``loop``."""
    iterator = chunks.__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return None

    while (chunk := asyncio.run_coroutine_threadsafe(next_chunk(), loop).result()) is not None:
        yield chunk


class AsyncObjectStream(_Threaded):
    """Async view of an :class:`~refstore.backends.ObjectStream`; ``async for`` yields chunks."""

    def __init__(self, stream: ObjectStream, executor: ThreadPoolExecutor) -> None:
        self._stream = stream
        self._executor = executor
        self.info = stream.info
        self.offset = stream.offset
        self.length = stream.length

    async def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes; all the remaining bytes if ``size`` is negative or None."""
        return await self._run(self._stream.read, size)

    async def readall(self) -> bytes:
        """All the remaining bytes."""
        return await self._run(self._stream.readall)

    async def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the remaining bytes in chunks of at most ``chunk_size``."""
        while chunk := await self.read(chunk_size):
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_chunks()

    async def aclose(self) -> None:
        await self._run(self._stream.close)

    async def __aenter__(self) -> AsyncObjectStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncBucketManager(_Threaded):
    """Async twin of :class:`~refstore.BucketManager` (same methods, as coroutines).

    Args:
        backend: As for :class:`~refstore.BucketManager`, or a ``BucketManager``
            to run (``retry`` must then be left out: it has its own).
        retry: As for :class:`~refstore.BucketManager`.
        executor: Thread pool to run calls in (default: one of 8 threads, owned
            and shut down by :meth:`close`).
    """

    def __init__(
        self,
        backend: Any,
        retry: RetryHandler | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if isinstance(backend, BucketManager):
            if retry is not None:
                raise TypeError("retry is not used when wrapping a BucketManager")
            self._sync = backend
        else:
            self._sync = BucketManager(backend, retry)
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(8, thread_name_prefix="refstore-buckets")

    create_bucket = _threaded(BucketManager.create_bucket, "_sync")
    bucket_exists = _threaded(BucketManager.bucket_exists, "_sync")
    list_buckets = _threaded(BucketManager.list_buckets, "_sync")
    get_bucket_info = _threaded(BucketManager.get_bucket_info, "_sync")
    delete_bucket = _threaded(BucketManager.delete_bucket, "_sync")
    clear_bucket = _threaded(BucketManager.clear_bucket, "_sync")

    @property
    def sync(self) -> BucketManager:
        """The synchronous manager this one runs."""
        return self._sync

    async def close(self) -> None:
        """Shut the thread pool down if this manager owns it."""
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncBucketManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncRefStore(_Threaded):
    """Asynchronous RefStore: the same methods and parameters as coroutines.

    Args:
        config: As for :class:`~refstore.RefStore`.
        executor: Thread pool to run storage calls in (default: one of
            ``max_concurrency`` threads, owned and shut down by this object).
        max_concurrency: Bound on simultaneous storage operations (default:
            the config's ``max_concurrency``, 32).

    A cancelled coroutine stops waiting, but the storage call already running
    in its thread completes.
    """

    def __init__(
        self,
        config: dict[str, Any] | StoreConfig | None = None,
        executor: ThreadPoolExecutor | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        self._sync = RefStore(config)
        self.max_concurrency = max_concurrency or self._sync.settings.max_concurrency
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            self.max_concurrency, thread_name_prefix="refstore"
        )
        self.bucket_manager = AsyncBucketManager(self._sync.bucket_manager, executor=self._executor)

    @property
    def sync(self) -> RefStore:
        """The synchronous store this one runs (same backend and mapping)."""
        return self._sync

    def with_executor(self, executor: ThreadPoolExecutor) -> AsyncRefStore:
        """A face on this same store (backend, mapping) whose calls run in ``executor``,
        so that one kind of call can have threads of its own. ``executor`` stays the
        caller's to shut down; closing either face closes the store."""
        twin = object.__new__(AsyncRefStore)
        twin._sync = self._sync
        twin.max_concurrency = executor._max_workers
        twin._owns_executor = False
        twin._executor = executor
        twin.bucket_manager = AsyncBucketManager(self._sync.bucket_manager, executor=executor)
        return twin

    @property
    def settings(self) -> StoreConfig:
        return self._sync.settings

    @property
    def default_bucket(self) -> str:
        return self._sync.default_bucket

    @property
    def presigned_expiry(self) -> int:
        return self._sync.presigned_expiry

    @property
    def public_url(self) -> str | None:
        return self._sync.public_url

    @property
    def enable_bucket_mapping(self) -> bool:
        return self._sync.enable_bucket_mapping

    @property
    def bucket_map(self) -> dict[str, str]:
        return self._sync.bucket_map

    def get_physical_bucket(self, logic_bucket: str) -> str:
        """Logical -> physical bucket name (no I/O, so not a coroutine)."""
        return self._sync.get_physical_bucket(logic_bucket)

    def get_logical_bucket(self, physical_bucket: str) -> str:
        """Physical -> logical bucket name (no I/O, so not a coroutine)."""
        return self._sync.get_logical_bucket(physical_bucket)

    def update_bucket_mapping(
        self,
        enable_bucket_mapping: bool | None = None,
        bucket_map: dict[str, str] | None = None,
        version: MappingVersion | dict[str, Any] | None = None,
    ) -> tuple[bool, BucketMap]:
        """As :meth:`RefStore.update_bucket_mapping` (no I/O, so not a coroutine)."""
        return self._sync.update_bucket_mapping(enable_bucket_mapping, bucket_map, version)

    ping = _threaded(RefStore.ping, "_sync")
    init_buckets = _threaded(RefStore.init_buckets, "_sync")
    upload_from_local = _threaded(RefStore.upload_from_local, "_sync")
    upload_from_url = _threaded(RefStore.upload_from_url, "_sync")
    copy = _threaded(RefStore.copy, "_sync")
    download_file = _threaded(RefStore.download_file, "_sync")
    download_to_local = _threaded(RefStore.download_to_local, "_sync")
    get_presigned_url = _threaded(RefStore.get_presigned_url, "_sync")
    get_download_url = _threaded(RefStore.get_download_url, "_sync")
    get_file_info = _threaded(RefStore.get_file_info, "_sync")
    file_exists = _threaded(RefStore.file_exists, "_sync")
    delete_file = _threaded(RefStore.delete_file, "_sync")
    delete_files = _threaded(RefStore.delete_files, "_sync")
    list_files = _threaded(RefStore.list_files, "_sync")
    start_upload = _threaded(RefStore.start_upload, "_sync")
    list_parts = _threaded(RefStore.list_parts, "_sync")
    complete_upload = _threaded(RefStore.complete_upload, "_sync")
    abort_upload = _threaded(RefStore.abort_upload, "_sync")
    presign_part = _threaded(RefStore.presign_part, "_sync")
    list_uploads = _threaded(RefStore.list_uploads, "_sync")
    abort_stale_uploads = _threaded(RefStore.abort_stale_uploads, "_sync")

    def verify_presigned_link(
        self,
        method: str,
        bucket: str,
        key: str,
        expires: str,
        signature: str,
        part: tuple[str, int] | None = None,
    ) -> None:
        """As :meth:`RefStore.verify_presigned_link` (no I/O, so not a coroutine)."""
        self._sync.verify_presigned_link(method, bucket, key, expires, signature, part)

    async def upload_part(
        self,
        upload: MultipartUpload,
        number: int,
        data: UploadData | AsyncIterable[bytes],
        length: int | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> UploadedPart:
        """As :meth:`RefStore.upload_part`; also accepts an async iterable of chunks."""
        return await self._run(
            self._sync.upload_part, upload, number, self._bridge(data), length, checksums
        )

    @property
    def mapping(self) -> MappingHolder:
        return self._sync.mapping

    async def upload_file(
        self,
        file_data: UploadData | AsyncIterable[bytes],
        original_filename: str = "file",
        content_type: str = "application/octet-stream",
        logic_bucket: str | None = None,
        path: str | None = None,
        use_logical_uri: bool = False,
        *,
        metadata: dict[str, str] | None = None,
        length: int | None = None,
        progress: ProgressCallback | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> str:
        """As :meth:`RefStore.upload_file`; also accepts an async iterable of chunks,
        streamed to storage as it arrives. ``progress`` is called from a worker thread."""
        return await self._run(
            self._sync.upload_file,
            self._bridge(file_data),
            original_filename,
            content_type,
            logic_bucket,
            path,
            use_logical_uri,
            metadata=metadata,
            length=length,
            progress=progress,
            checksums=checksums,
        )

    async def run_blocking(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a blocking callable in this store's bounded thread pool."""
        return await self._run(func, *args, **kwargs)

    async def upload_to(
        self,
        s3_uri: str,
        file_data: UploadData | AsyncIterable[bytes],
        content_type: str = "application/octet-stream",
        *,
        metadata: dict[str, str] | None = None,
        length: int | None = None,
        progress: ProgressCallback | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """As :meth:`RefStore.upload_to`; also accepts an async iterable of chunks."""
        return await self._run(
            self._sync.upload_to,
            s3_uri,
            self._bridge(file_data),
            content_type,
            metadata=metadata,
            length=length,
            progress=progress,
            checksums=checksums,
        )

    @staticmethod
    def _bridge(file_data: UploadData | AsyncIterable[bytes]) -> UploadData:
        if isinstance(file_data, AsyncIterable):
            return ChunkReader(_pull(file_data, asyncio.get_running_loop()))
        return file_data

    async def open(
        self, s3_uri: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncObjectStream:
        """As :meth:`RefStore.open`; ``async with`` / ``async for`` the result."""
        stream = await self._run(self._sync.open, s3_uri, offset=offset, length=length)
        return AsyncObjectStream(stream, self._executor)

    async def iter_file(
        self,
        s3_uri: str,
        *,
        offset: int = 0,
        length: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncIterator[bytes]:
        """As :meth:`RefStore.iter_file`, as an async iterator."""
        async with await self.open(s3_uri, offset=offset, length=length) as stream:
            async for chunk in stream.iter_chunks(chunk_size):
                yield chunk

    async def iter_files(
        self,
        logic_bucket: str | None = None,
        prefix: str = "",
        recursive: bool = True,
        use_logical_uri: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """As :meth:`RefStore.iter_files`; pages are fetched in the thread pool."""
        iterator = self._sync.iter_files(logic_bucket, prefix, recursive, use_logical_uri)
        sentinel: Any = object()
        try:
            while (item := await self._run(next, iterator, sentinel)) is not sentinel:
                yield item
        finally:
            if isinstance(iterator, Generator):  # a caller that stopped early ends the listing
                await self._run(iterator.close)

    async def close(self) -> None:
        """Release connections and the owned thread pool."""
        if self._owns_executor:
            self._executor.shutdown(wait=False)
        self._sync.close()

    aclose = close

    async def __aenter__(self) -> AsyncRefStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
