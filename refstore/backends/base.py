"""What every storage backend provides, and the value types it returns."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from ..checksums import Checksums
from ..errors import ConnectionError as BackendConnectionError
from ..errors import RefStoreError
from ..progress import ProgressCallback

CHUNK_SIZE = 1024 * 1024
# S3's limits of multipart uploads, kept by every backend.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of a stored object."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    checksums: Checksums = field(default_factory=Checksums)
    """What is recorded of the object's bytes (CRC32C; SHA-256 where known)."""


@dataclass(frozen=True)
class ListedObject:
    """One entry of a listing; ``is_dir`` entries are common prefixes ending in '/'."""

    key: str
    size: int
    last_modified: datetime | None
    etag: str | None
    is_dir: bool = False


@dataclass(frozen=True)
class BucketInfo:
    name: str
    creation_date: datetime | None


@dataclass(frozen=True)
class UploadedPart:
    """One stored part of a multipart upload (``number`` from 1)."""

    number: int
    etag: str
    size: int
    checksum: str | None = None
    """The part's CRC32C (base64), where the backend computed it."""


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    bucket: str
    key: str
    upload_id: str
    started: datetime | None


@dataclass(frozen=True)
class DeleteFailure:
    key: str
    error: RefStoreError


class ObjectStream(io.RawIOBase):
    """A readable, closeable byte stream over (a range of) one object.

    Iterating yields chunks of about 1 MiB. Closing releases the backend
    connection or file; use it as a context manager.

    Attributes:
        info: Metadata of the whole object.
        offset: First byte of this stream within the object.
        length: Number of bytes this stream yields.
    """

    def __init__(
        self,
        source: Any,
        *,
        info: ObjectInfo,
        offset: int,
        length: int,
        translate: Callable[[BaseException], BaseException],
        release: Callable[[], None],
    ) -> None:
        super().__init__()
        self.info = info
        self.offset = offset
        self.length = length
        self._source = source
        self._remaining = length
        self._translate = translate
        self._release = release

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self.closed:
            raise ValueError("read from a closed ObjectStream")
        want = min(size, self._remaining)
        if want == 0:
            return b""
        try:
            data: bytes = self._source.read(want)
        except RefStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc
        if not data:
            raise BackendConnectionError(
                f"stream of {self.info.bucket}/{self.info.key} ended {self._remaining} bytes early"
            )
        self._remaining -= len(data)
        return data

    def readall(self) -> bytes:
        parts = []
        while self._remaining:
            parts.append(self.read(min(self._remaining, CHUNK_SIZE * 8)))
        return b"".join(parts)

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the remaining bytes in chunks of at most ``chunk_size``."""
        while self._remaining:
            yield self.read(chunk_size)

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_chunks()

    def close(self) -> None:
        if not self.closed:
            try:
                self._release()
            finally:
                super().close()

    def __enter__(self) -> ObjectStream:
        return self


class Backend(Protocol):
    """The storage operations RefStore needs; errors are already translated
    into :mod:`refstore.errors` classes at this boundary."""

    name: str

    def put_object(
        self,
        bucket: str,
        key: str,
        data: BinaryIO,
        length: int,
        *,
        content_type: str,
        metadata: dict[str, str],
        progress: ProgressCallback | None = None,
        expected: Checksums | None = None,
    ) -> ObjectInfo:
        """Store ``length`` bytes of ``data`` (to its end when negative), computing
        their checksums as they stream; the object appears whole or not at all.

        Raises:
            IntegrityError: the bytes differ from a checksum in ``expected`` (nothing
                is stored; an object already there stays).
        """
        ...

    def open_object(
        self, bucket: str, key: str, *, offset: int = 0, length: int | None = None
    ) -> ObjectStream: ...

    def stat_object(self, bucket: str, key: str) -> ObjectInfo: ...

    def delete_object(self, bucket: str, key: str) -> None: ...

    def delete_objects(self, bucket: str, keys: Iterable[str]) -> list[DeleteFailure]: ...

    def list_objects(
        self, bucket: str, prefix: str = "", recursive: bool = True
    ) -> Iterator[ListedObject]: ...

    def copy_object(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo: ...

    def presign(self, method: str, bucket: str, key: str, expiry_seconds: int) -> str: ...

    # Multipart uploads: parts of MIN_PART_SIZE..MAX_PART_SIZE bytes (the last one may be
    # smaller), numbered 1..MAX_PARTS; the object appears whole on completion or not at all.

    def create_multipart(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str: ...

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        data: BinaryIO,
        length: int,
        expected: Checksums | None = None,
    ) -> UploadedPart:
        """Store one part; its CRC32C is checked against ``expected`` (IntegrityError)."""
        ...

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]: ...

    def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> ObjectInfo: ...

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None: ...

    def list_multipart(self, bucket: str, prefix: str = "") -> list[PendingUpload]: ...

    def presign_part(
        self, bucket: str, key: str, upload_id: str, number: int, expiry_seconds: int
    ) -> str: ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def make_bucket(self, bucket: str, location: str | None = None) -> None: ...

    def remove_bucket(self, bucket: str) -> None: ...

    def list_buckets(self) -> list[BucketInfo]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...
