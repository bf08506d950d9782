"""RefStore: the synchronous face of the library, and where its behaviour lives.

:class:`~refstore.aio.AsyncRefStore` runs these same methods in a bounded thread
pool, so every rule below holds for both faces.
"""

from __future__ import annotations

import io
import mimetypes
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from . import errors
from .backends import Backend, ListedObject, ObjectInfo, ObjectStream, create_backend
from .backends.base import CHUNK_SIZE, PendingUpload, UploadedPart
from .backends.local import LocalBackend
from .buckets import BucketManager
from .checksums import METADATA_KEYS, SHA256, Checksums, Hasher, as_checksums
from .config import DEFAULT_LOCAL_ROOT, MAX_PRESIGN_SECONDS, StoreConfig
from .keys import build_object_key, validate_bucket_name, validate_prefix
from .mapping import BucketMap, MappingHolder, MappingVersion
from .progress import ProgressCallback
from .retry import RetryHandler
from .sizes import format_size
from .uploads import MultipartUpload, choose_part_size
from .uri import decode_uri, encode_uri

T = TypeVar("T")

UploadData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]
"""What ``upload_file`` accepts: bytes, a readable binary stream, or an iterable of chunks."""

PRESIGN_METHODS = ("GET", "PUT")


class ChunkReader(io.RawIOBase):
    """A file-like view of an iterable of byte chunks.

    ``read(n)`` returns ``n`` bytes unless the chunks run out: minio-py builds
    each part by appending short reads, which is quadratic in the chunk count.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        while wanted != 0:
            if self._offset == len(self._pending):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending, self._offset = bytes(chunk), 0
                continue
            end = len(self._pending)
            if wanted > 0:
                end = min(end, self._offset + wanted)
                wanted -= end - self._offset
            parts.append(self._pending[self._offset : end])
            self._offset = end
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


RECORDED_KEYS = frozenset(METADATA_KEYS.values())
"""Metadata names that hold checksums: ``info`` reports them under ``checksums``."""


def _as_stream(data: UploadData) -> tuple[BinaryIO, int, int | None]:
    """Return (stream, length or -1, replay position or None if not replayable)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data), len(data), 0
    if hasattr(data, "read"):
        stream: BinaryIO = data  # type: ignore[assignment]
        try:
            if stream.seekable():
                position = stream.tell()
                end = stream.seek(0, os.SEEK_END)
                stream.seek(position)
                return stream, end - position, position
        except (AttributeError, OSError, ValueError):
            pass
        return stream, -1, None
    if isinstance(data, Iterable):
        return ChunkReader(data), -1, None  # type: ignore[return-value]
    raise errors.InvalidInputError(f"cannot upload a {type(data).__name__}: give bytes or a stream")


class RefStore:
    """Object storage on MinIO (or the embedded local backend) addressed by ``s3://`` URIs.

    Args:
        config: The refstore config dict (see :class:`~refstore.ConfigValidator`). ``None``
            uses the local backend under ``./refstore-data``.

    Raises:
        ConfigError: the config is invalid.

    Unlike refstore 0.3.0, failures raise typed exceptions from :mod:`refstore.errors`
    instead of printing and returning ``None``.
    """

    def __init__(self, config: dict[str, Any] | StoreConfig | None = None) -> None:
        if config is None:
            config = {"local": {"root": DEFAULT_LOCAL_ROOT}}
        self.settings = config if isinstance(config, StoreConfig) else StoreConfig.from_dict(config)
        self.backend: Backend = create_backend(self.settings)
        self.mapping = MappingHolder(
            BucketMap(self.settings.enable_bucket_mapping, self.settings.bucket_map)
        )
        retry = self.settings.retry
        self._retry = RetryHandler(retry.max_retries, retry.base_delay, retry.max_delay)
        self._known_buckets: set[str] = set()
        self._known_lock = threading.Lock()
        self.bucket_manager = BucketManager(self.backend, retry=self._retry)

    # -- settings exposed like refstore 0.3.0 --------------------------------

    @property
    def default_bucket(self) -> str:
        return self.settings.default_bucket

    @property
    def presigned_expiry(self) -> int:
        return self.settings.presigned_expiry

    @property
    def public_url(self) -> str | None:
        return self.settings.public_url

    @property
    def enable_bucket_mapping(self) -> bool:
        return self.mapping.current.enabled

    @property
    def bucket_map(self) -> dict[str, str]:
        return dict(self.mapping.current.forward)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Release connections."""
        self.backend.close()

    def __enter__(self) -> RefStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        """Check that the backend answers, once (no retries).

        Raises:
            ConnectionError: the backend is unreachable.
            AuthenticationError: the credentials are wrong.
        """
        self.backend.ping()

    # -- buckets and mapping ---------------------------------------------------

    def init_buckets(self) -> list[str]:
        """Create the default bucket, or every mapped physical bucket when mapping is on.

        Returns:
            The physical bucket names ensured.
        """
        snapshot = self.mapping.current
        names = (
            sorted(set(snapshot.forward.values())) if snapshot.enabled else [self.default_bucket]
        )
        for name in names:
            self._ensure_bucket(name, force=True)
        return names

    def get_physical_bucket(self, logic_bucket: str) -> str:
        """Logical bucket name -> physical bucket name (identity when mapping is off)."""
        return self.mapping.current.physical(logic_bucket)

    def get_logical_bucket(self, physical_bucket: str) -> str:
        """Physical bucket name -> logical name (identity when unmapped)."""
        return self.mapping.current.logical(physical_bucket)

    def update_bucket_mapping(
        self,
        enable_bucket_mapping: bool | None = None,
        bucket_map: dict[str, str] | None = None,
        version: MappingVersion | dict[str, Any] | None = None,
    ) -> tuple[bool, BucketMap]:
        """Swap in a new bucket mapping atomically (see :meth:`MappingHolder.update`).

        Raises:
            InvalidInputError: invalid names, or mapping on with an empty map.
            ConflictError: ``version`` is older than the current one.
        """
        if isinstance(version, dict):
            version = MappingVersion.from_dict(version)
        return self.mapping.update(enable_bucket_mapping, bucket_map, version)

    def _ensure_bucket(self, bucket: str, *, force: bool = False) -> None:
        if not force and (bucket in self._known_buckets or not self.settings.auto_create_buckets):
            return
        if not self._call(self.backend.bucket_exists, bucket):
            self._call(self.backend.make_bucket, bucket)
        with self._known_lock:
            self._known_buckets.add(bucket)

    def _forget_bucket(self, bucket: str) -> None:
        with self._known_lock:
            self._known_buckets.discard(bucket)

    # -- helpers ---------------------------------------------------------------

    def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._retry.execute(func, *args, **kwargs)

    def _resolve(self, s3_uri: str) -> tuple[str, str, BucketMap]:
        """(physical bucket, key, mapping snapshot) for a logical or physical URI."""
        bucket, key = decode_uri(s3_uri)
        snapshot = self.mapping.current
        return snapshot.physical(bucket), key, snapshot

    @staticmethod
    def _uri(
        snapshot: BucketMap, logic_bucket: str, physical: str, key: str, use_logical_uri: bool
    ) -> str:
        bucket = logic_bucket if snapshot.enabled and use_logical_uri else physical
        return encode_uri(bucket, key)

    @classmethod
    def _listed_uri(
        cls, snapshot: BucketMap, logic_bucket: str, physical: str, key: str, use_logical_uri: bool
    ) -> str:
        """URI of a listed key; keys written by other tools may not pass our key rules."""
        try:
            return cls._uri(snapshot, logic_bucket, physical, key, use_logical_uri)
        except errors.URIParseError:
            return f"s3://{physical}/{key}"

    # -- upload ----------------------------------------------------------------

    def upload_file(
        self,
        file_data: UploadData,
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
        """Upload bytes or a stream and return its ``s3://`` URI.

        With ``path`` the key is ``path/original_filename``; without, it is
        ``YYYY/MM/DD/<uuid4 hex><ext>``. Streams are read in parts (never whole);
        a stream of unknown length goes up as a multipart upload. Seekable
        streams are uploaded from their current position.

        Args:
            metadata: User metadata stored with the object.
            length: Byte count of a non-seekable stream, when known.
            progress: Called with each number of bytes sent.
            checksums: The bytes' expected checksums (``{"sha256": ..., "crc32c": ...}``,
                base64), checked as they stream.

        Raises:
            IntegrityError: the bytes do not match ``checksums``; nothing is stored.
            InvalidKeyError: unsafe ``path`` or filename.
            InvalidBucketNameError: invalid bucket name.
            ConnectionError: the backend is unreachable (after retries where the
                body can be replayed).
        """
        logic_bucket = logic_bucket or self.default_bucket
        key = build_object_key(original_filename, path)
        snapshot = self.mapping.current
        physical = validate_bucket_name(snapshot.physical(logic_bucket))
        self._put(physical, key, file_data, content_type, metadata, length, progress, checksums)
        return self._uri(snapshot, logic_bucket, physical, key, use_logical_uri)

    def upload_to(
        self,
        s3_uri: str,
        file_data: UploadData,
        content_type: str = "application/octet-stream",
        *,
        metadata: dict[str, str] | None = None,
        length: int | None = None,
        progress: ProgressCallback | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload to an exact URI (logical or physical bucket), streaming as :meth:`upload_file`.

        Returns:
            The stored object's metadata (bucket is the physical one), with the
            checksums of the bytes (``info.checksums``).

        Raises:
            URIParseError: invalid URI. Others as for :meth:`upload_file`.
        """
        physical, key, _ = self._resolve(s3_uri)
        return self._put(
            physical, key, file_data, content_type, metadata, length, progress, checksums
        )

    def _put(
        self,
        physical: str,
        key: str,
        file_data: UploadData,
        content_type: str | None,
        metadata: dict[str, str] | None,
        length: int | None,
        progress: ProgressCallback | None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        expected = as_checksums(checksums)
        stream, known_length, replay_from = _as_stream(file_data)
        if length is not None:
            known_length = length
        self._ensure_bucket(physical)

        def put() -> ObjectInfo:
            if replay_from is not None:
                stream.seek(replay_from)
            return self.backend.put_object(
                physical,
                key,
                stream,
                known_length,
                content_type=content_type or "application/octet-stream",
                metadata=dict(metadata or {}),
                progress=progress,
                expected=expected,
            )

        try:
            return self._call(put) if replay_from is not None else put()
        except errors.BucketNotFoundError:
            self._forget_bucket(physical)
            raise

    def upload_from_local(
        self,
        local_path: str | os.PathLike[str],
        logic_bucket: str | None = None,
        path: str | None = None,
        content_type: str | None = None,
        use_logical_uri: bool = False,
        *,
        metadata: dict[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Upload a local file (streamed, never read whole) and return its URI.

        The filename is kept; the content type is guessed from it when not given.

        Raises:
            FileNotFoundError: ``local_path`` does not exist (the builtin one).
            InvalidKeyError, ConnectionError: as for :meth:`upload_file`.
        """
        file_path = Path(local_path)
        content_type = content_type or mimetypes.guess_type(file_path.name)[0]
        with file_path.open("rb") as file:
            return self.upload_file(
                file,
                file_path.name,
                content_type or "application/octet-stream",
                logic_bucket,
                path,
                use_logical_uri,
                metadata=metadata,
                progress=progress,
            )

    def upload_from_url(
        self,
        url: str,
        logic_bucket: str | None = None,
        path: str | None = None,
        timeout: float = 30,
        use_logical_uri: bool = False,
        *,
        max_bytes: int | None = None,
        deadline: float | None = None,
        block_private: bool | None = None,
        filename: str | None = None,
        metadata: dict[str, str] | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> str:
        """Stream an http(s) URL into storage and return the new object's URI.

        Args:
            timeout: Socket connect/read timeout, seconds.
            max_bytes: Refuse bodies larger than this (default: ``url_fetch.max_bytes``).
            deadline: Total seconds for the transfer (default: ``url_fetch.deadline``).
            block_private: Refuse non-global addresses, checked on every resolved
                address and redirect hop (default: ``url_fetch.block_private``, off).
            filename: Name to store under (default: the URL's last path segment).
            checksums: The body's expected checksums, as for :meth:`upload_file`.

        Raises:
            IntegrityError: the body does not match ``checksums``; nothing is stored.
            UnsafeURLError: not http(s), or a refused address.
            ObjectTooLargeError: the body passed ``max_bytes``.
            SourceError: the source failed, redirected too often or passed the deadline.
            ConnectionError: the storage backend is unreachable.
        """
        from .urlfetch import open_url

        fetch = self.settings.url_fetch
        with open_url(
            url,
            timeout=timeout,
            deadline=deadline if deadline is not None else fetch.deadline,
            max_bytes=max_bytes if max_bytes is not None else fetch.max_bytes,
            max_redirects=fetch.max_redirects,
            block_private=fetch.block_private if block_private is None else block_private,
        ) as source:
            return self.upload_file(
                source,  # type: ignore[arg-type]
                filename or source.filename,
                source.content_type,
                logic_bucket,
                path,
                use_logical_uri,
                metadata=metadata,
                length=source.length if source.length is not None else -1,
                checksums=checksums,
            )

    def copy(self, src_uri: str, dst_uri: str) -> str:
        """Server-side copy of one object to another URI; returns ``dst_uri``.

        Raises:
            ObjectNotFoundError: the source does not exist.
            URIParseError: either URI is invalid.
        """
        src_bucket, src_key, _ = self._resolve(src_uri)
        dst_bucket, dst_key, _ = self._resolve(dst_uri)
        self._ensure_bucket(dst_bucket)
        self._call(self.backend.copy_object, src_bucket, src_key, dst_bucket, dst_key)
        return dst_uri

    # -- multipart uploads -----------------------------------------------------

    def start_upload(
        self,
        s3_uri: str,
        *,
        size: int | None = None,
        part_size: int | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> MultipartUpload:
        """Start a multipart upload of ``s3_uri``: send its parts with :meth:`upload_part`
        (in any order, in parallel, again after a failure), then :meth:`complete_upload`;
        until then no object appears. The part size is chosen within S3's limits.

        Raises:
            URIParseError, InvalidKeyError: invalid target.
            InvalidInputError: ``part_size`` outside 5 MiB..5 GiB.
            ObjectTooLargeError: ``size`` does not fit in 10,000 parts.
        """
        bucket, key, _ = self._resolve(s3_uri)
        chosen = choose_part_size(size, part_size)
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        self._ensure_bucket(bucket)
        upload_id = self._call(
            self.backend.create_multipart,
            bucket,
            key,
            content_type=content_type,
            metadata=dict(metadata or {}),
        )
        return MultipartUpload(bucket, key, upload_id, chosen, size)

    def upload_part(
        self,
        upload: MultipartUpload,
        number: int,
        data: UploadData,
        length: int | None = None,
        checksums: Checksums | Mapping[str, str] | None = None,
    ) -> UploadedPart:
        """Store part ``number`` (from 1) of ``upload``, replacing one sent before.
        Its CRC32C is computed (``part.checksum``) and checked against ``checksums``.

        Raises:
            IntegrityError: the part does not match ``checksums``; it is not stored.
            UploadNotFoundError: the upload was completed or aborted.
            InvalidPartError: ``number`` outside 1..10,000.
            InvalidInputError: the part is larger than the upload's part size, or its
                length is unknown.
        """
        expected = as_checksums(checksums)
        stream, known, replay_from = _as_stream(data)
        if length is not None:
            known = length
        if known < 0:
            raise errors.InvalidInputError("a part needs a known length")
        if known > upload.part_size:
            raise errors.InvalidPartError(
                f"part {number} has {known} bytes; this upload's parts have at most "
                f"{upload.part_size}"
            )

        def put() -> UploadedPart:
            if replay_from is not None:
                stream.seek(replay_from)
            return self.backend.upload_part(
                upload.bucket, upload.key, upload.upload_id, number, stream, known, expected
            )

        return self._call(put) if replay_from is not None else put()

    def list_parts(self, upload: MultipartUpload) -> list[UploadedPart]:
        """The parts of ``upload`` stored so far, by number.

        Raises:
            UploadNotFoundError: the upload was completed or aborted.
        """
        return self._call(self.backend.list_parts, upload.bucket, upload.key, upload.upload_id)

    def complete_upload(
        self, upload: MultipartUpload, parts: list[UploadedPart] | None = None
    ) -> ObjectInfo:
        """Join ``parts`` (default: every stored part) into the object, atomically.

        Raises:
            InvalidPartError: a part is missing, out of order, not as stored, or too
                small (every part but the last has at least 5 MiB); nothing is created
                and the upload stays open.
            UploadNotFoundError: the upload was completed or aborted.
        """
        stored = {part.number: part for part in self.list_parts(upload)}
        if parts is None:
            parts = list(stored.values())
        if upload.size is not None:
            total = sum(stored[part.number].size for part in parts if part.number in stored)
            if total != upload.size:
                raise errors.InvalidPartError(
                    f"the parts hold {total} bytes; the upload announced {upload.size}"
                )
        return self.backend.complete_multipart(upload.bucket, upload.key, upload.upload_id, parts)

    def abort_upload(self, upload: MultipartUpload) -> None:
        """Abort ``upload`` and free its parts; aborting it again does nothing."""
        self._call(self.backend.abort_multipart, upload.bucket, upload.key, upload.upload_id)

    def presign_part(
        self, upload: MultipartUpload, number: int, expiry_seconds: int | None = None
    ) -> str:
        """A URL that stores part ``number`` of ``upload`` by PUT, without credentials:
        that part of that upload only, until it expires.

        Raises:
            InvalidInputError: expiry outside 1 s..7 days, or ``number`` outside 1..10,000.
        """
        expiry = self._expiry(expiry_seconds)
        return self._call(
            self.backend.presign_part, upload.bucket, upload.key, upload.upload_id, number, expiry
        )

    def list_uploads(
        self, logic_bucket: str | None = None, prefix: str = ""
    ) -> list[PendingUpload]:
        """The multipart uploads in progress in a bucket (default: default_bucket)."""
        validate_prefix(prefix)
        bucket = self.mapping.current.physical(logic_bucket or self.default_bucket)
        return self._call(self.backend.list_multipart, bucket, prefix)

    def abort_stale_uploads(self, older_than: float) -> int:
        """Abort the multipart uploads of every bucket started more than ``older_than``
        seconds ago (abandoned ones); return how many were aborted."""
        cutoff = time.time() - older_than
        aborted = 0
        for bucket in self._call(self.backend.list_buckets):
            for pending in self._call(self.backend.list_multipart, bucket.name):
                if pending.started is not None and pending.started.timestamp() < cutoff:
                    self._call(
                        self.backend.abort_multipart, bucket.name, pending.key, pending.upload_id
                    )
                    aborted += 1
        return aborted

    # -- download --------------------------------------------------------------

    def open(self, s3_uri: str, *, offset: int = 0, length: int | None = None) -> ObjectStream:
        """Open an object (or a byte range of it) for streaming reads.

        The result is a file-like object; iterating it yields ~1 MiB chunks. Close
        it (or use ``with``) to release the connection.

        Raises:
            ObjectNotFoundError: no such object.
            InvalidRangeError: ``offset`` is beyond the end of the object.
            URIParseError: invalid URI.
        """
        if offset < 0 or (length is not None and length < 0):
            raise errors.InvalidRangeError("offset and length must not be negative")
        bucket, key, _ = self._resolve(s3_uri)
        return self._call(self.backend.open_object, bucket, key, offset=offset, length=length)

    def iter_file(
        self,
        s3_uri: str,
        *,
        offset: int = 0,
        length: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Yield an object's bytes in chunks; the connection is released at the end.

        Raises:
            Same as :meth:`open`.
        """
        with self.open(s3_uri, offset=offset, length=length) as stream:
            yield from stream.iter_chunks(chunk_size)

    def download_file(self, s3_uri: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """Return an object's bytes (or a range of them) in memory.

        Prefer :meth:`open` or :meth:`download_to_local` for large objects.

        Raises:
            ObjectNotFoundError: no such object (refstore 0.3.0 returned ``None``).
            ConnectionError: the backend is unreachable.
        """
        with self.open(s3_uri, offset=offset, length=length) as stream:
            return stream.read()

    def download_to_local(
        self,
        s3_uri: str,
        local_path: str | os.PathLike[str],
        create_dirs: bool = True,
        *,
        progress: ProgressCallback | None = None,
    ) -> bool:
        """Stream an object to a local file; returns True.

        Bytes go to a temporary file beside ``local_path`` that is renamed into
        place, so the destination never holds a partial file; they are checked
        against the object's recorded checksums first.

        Raises:
            ObjectNotFoundError: no such object (refstore 0.3.0 returned ``False``).
            IntegrityError: the bytes differ from the recorded checksums (no file is left).
            ConnectionError: the backend failed mid-transfer (nothing is written).
        """
        target = Path(local_path)
        if create_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(s3_uri) as stream:
            recorded = stream.info.checksums if self.settings.checksums else Checksums()
            hasher = Hasher(sha256=recorded.get(SHA256) is not None, crc32c=bool(recorded))
            fd, temp_name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in stream:
                        out.write(chunk)
                        hasher.update(chunk)
                        if progress:
                            progress(len(chunk))
                recorded.check(hasher.result(), s3_uri)
                os.replace(temp_name, target)
            except BaseException:
                os.unlink(temp_name)
                raise
        return True

    # -- URLs and info ---------------------------------------------------------

    def get_presigned_url(
        self, s3_uri: str, expiry_seconds: int | None = None, method: str = "GET"
    ) -> str:
        """A URL that allows ``method`` (GET or PUT) on the object without credentials.

        With ``public_url`` the URL's scheme, host and path prefix are rewritten
        for a reverse proxy; with ``public_endpoint`` it is signed for that host.

        Raises:
            InvalidInputError: method not GET/PUT, or expiry outside 1 s..7 days.
        """
        method = method.upper()
        if method not in PRESIGN_METHODS:
            raise errors.InvalidInputError(f"method must be GET or PUT, got {method!r}")
        expiry = self._expiry(expiry_seconds)
        bucket, key, _ = self._resolve(s3_uri)
        return self._call(self.backend.presign, method, bucket, key, expiry)

    def _expiry(self, expiry_seconds: int | None) -> int:
        expiry = self.presigned_expiry if expiry_seconds is None else expiry_seconds
        if (
            not isinstance(expiry, int)
            or isinstance(expiry, bool)
            or not 1 <= expiry <= MAX_PRESIGN_SECONDS
        ):
            raise errors.InvalidInputError(
                f"expiry_seconds must be an integer from 1 to {MAX_PRESIGN_SECONDS} (7 days), "
                f"got {expiry!r}"
            )
        return expiry

    def verify_presigned_link(
        self,
        method: str,
        bucket: str,
        key: str,
        expires: str,
        signature: str,
        part: tuple[str, int] | None = None,
    ) -> None:
        """Check a presigned link of the local backend (which the gateway serves itself);
        ``part`` is the (upload id, part number) of a link for one part.

        Raises:
            PermissionDeniedError: tampered, expired, or for another method.
            InvalidInputError: the backend is MinIO, which checks its own links.
        """
        if not isinstance(self.backend, LocalBackend):
            raise errors.InvalidInputError("only the local backend's links are served here")
        self.backend.verify_presigned(method.upper(), bucket, key, expires, signature, part)

    def get_download_url(self, s3_uri: str, expiry_seconds: int | None = None) -> str:
        """Presigned GET URL (refstore 0.3.0 name)."""
        return self.get_presigned_url(s3_uri, expiry_seconds, "GET")

    def get_file_info(self, s3_uri: str) -> dict[str, Any]:
        """Size, type, ETag, modification time and user metadata of an object.

        Raises:
            ObjectNotFoundError: no such object (refstore 0.3.0 returned ``None``).
        """
        bucket, key, snapshot = self._resolve(s3_uri)
        info = self._call(self.backend.stat_object, bucket, key)
        return {
            "uri": s3_uri,
            "logic_bucket": snapshot.logical(bucket),
            "physical_bucket": bucket,
            "object_name": key,
            "size": info.size,
            "size_human": format_size(info.size),
            "content_type": info.content_type,
            "last_modified": info.last_modified,
            "etag": info.etag,
            "metadata": {k: v for k, v in info.metadata.items() if k not in RECORDED_KEYS},
            "checksums": info.checksums.as_dict(),
        }

    def file_exists(self, s3_uri: str) -> bool:
        """Whether the object exists.

        Raises:
            ConnectionError: the backend cannot be asked (never a silent False).
            URIParseError: invalid URI.
        """
        bucket, key, _ = self._resolve(s3_uri)
        try:
            self._call(self.backend.stat_object, bucket, key)
        except errors.NotFoundError:
            return False
        return True

    # -- delete ----------------------------------------------------------------

    def delete_file(self, s3_uri: str) -> bool:
        """Delete an object; deleting a missing object succeeds (S3 semantics).

        Returns:
            True.

        Raises:
            ConnectionError: the backend is unreachable.
        """
        bucket, key, _ = self._resolve(s3_uri)
        self._call(self.backend.delete_object, bucket, key)
        return True

    def delete_files(self, s3_uris: Iterable[str]) -> dict[str, Any]:
        """Delete many objects with the backend's batch API.

        Returns:
            ``{"deleted": [uri, ...], "failed": [uri, ...], "errors": {uri: message}}``;
            invalid URIs are reported as failed, not raised.

        Raises:
            ConnectionError: the backend is unreachable.
        """
        failed: dict[str, str] = {}
        by_bucket: dict[str, dict[str, list[str]]] = {}
        order: list[str] = []
        for uri in s3_uris:
            order.append(uri)
            try:
                bucket, key, _ = self._resolve(uri)
            except errors.RefStoreError as exc:
                failed[uri] = exc.detail
                continue
            by_bucket.setdefault(bucket, {}).setdefault(key, []).append(uri)
        for bucket, keys in by_bucket.items():
            try:
                failures = self._call(self.backend.delete_objects, bucket, list(keys))
            except errors.BucketNotFoundError as exc:  # MinIO refuses the whole batch
                failed.update({uri: exc.detail for uris in keys.values() for uri in uris})
                continue
            for failure in failures:
                for uri in keys.get(failure.key, []):
                    failed[uri] = failure.error.detail
        return {
            "deleted": [uri for uri in order if uri not in failed],
            "failed": [uri for uri in order if uri in failed],
            "errors": failed,
        }

    # -- list ------------------------------------------------------------------

    def iter_files(
        self,
        logic_bucket: str | None = None,
        prefix: str = "",
        recursive: bool = True,
        use_logical_uri: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield one dict per object (or common prefix when not recursive), lazily.

        Raises:
            BucketNotFoundError: no such bucket.
        """
        logic_bucket = logic_bucket or self.default_bucket
        prefix = validate_prefix(prefix)
        snapshot = self.mapping.current
        physical = validate_bucket_name(snapshot.physical(logic_bucket))
        listed: ListedObject
        for listed in self.backend.list_objects(physical, prefix, recursive):
            yield {
                "object_name": listed.key,
                "size": listed.size,
                "size_human": format_size(listed.size),
                "last_modified": listed.last_modified,
                "etag": listed.etag,
                "is_dir": listed.is_dir,
                "s3_uri": None
                if listed.is_dir
                else self._listed_uri(
                    snapshot, logic_bucket, physical, listed.key, use_logical_uri
                ),
            }

    def list_files(
        self,
        logic_bucket: str | None = None,
        prefix: str = "",
        recursive: bool = True,
        use_logical_uri: bool = False,
    ) -> list[dict[str, Any]]:
        """All of :meth:`iter_files` as a list (use ``iter_files`` for big buckets).

        Raises:
            BucketNotFoundError: no such bucket (refstore 0.3.0 returned ``[]``).
        """
        return list(self.iter_files(logic_bucket, prefix, recursive, use_logical_uri))
