"""The MinIO (or any S3-compatible server) backend, on the ``minio`` SDK.

All SDK and transport errors are translated here, once, into
:mod:`refstore.errors` classes.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit
from xml.etree import ElementTree

import certifi
import urllib3
from minio import Minio
from minio.datatypes import CompleteMultipartUploadResult, Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import md5sum_hash
from minio.xml import Element, SubElement, getbytes

from .. import errors
from ..checksums import (
    CHECKSUM_MODE,
    CRC32C,
    DEFAULT_POLICY,
    S3_HEADERS,
    ChecksumPolicy,
    Checksums,
    crc32c_of,
)
from ..config import MinioSettings
from ..progress import ProgressCallback
from .base import (
    CHUNK_SIZE,
    MAX_PARTS,
    BucketInfo,
    DeleteFailure,
    ListedObject,
    ObjectInfo,
    ObjectStream,
    PendingUpload,
    UploadedPart,
)

logger = logging.getLogger(__name__)

_CHECKSUM_MODE: dict[str, str | list[str] | tuple[str]] = {**CHECKSUM_MODE}
"""Asks MinIO to answer an object's stored checksum with its bytes or metadata."""
CRC32C_UPLOAD = {"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"}
"""A multipart upload whose every part carries its CRC32C, checked by MinIO, and whose
object gets the CRC32C of all its bytes (MinIO combines the parts')."""
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

UNKNOWN_LENGTH_PARALLEL_PARTS = 2
"""Parts of a stream of unknown length uploaded at once. Peak memory is about
(this + 3) x part_size (minio-py also holds the part being read, a copy of it and
finished parts until its workers take new ones), plus allocator slack for sources
that yield small chunks."""


def error_for_s3_code(code: str, message: str, bucket: str, key: str) -> errors.RefStoreError:
    """The :mod:`refstore.errors` instance for an S3 error code (the class from the
    table in :mod:`refstore.errors`; :class:`~refstore.errors.RefStoreError` for a
    code it does not know)."""
    where = f"{bucket}/{key}" if key else bucket
    cls = errors.class_for_s3_code(code) or errors.RefStoreError
    if cls is errors.ConnectionError:
        detail = f"storage backend busy ({code}): {where}"
    elif cls is errors.ObjectNotFoundError:
        detail = f"object not found: {where}"
    elif cls is errors.BucketNotFoundError:
        detail = f"bucket not found: {bucket}"
    else:
        detail = f"{code}: {message} ({where})"
    return cls(detail, bucket=bucket, key=key, s3_code=code)


def translate_error(
    exc: BaseException, bucket: str = "", key: str = "", *, write: bool = False
) -> BaseException:
    """Map a minio/urllib3/socket exception to a :mod:`refstore.errors` class.

    A ``write`` whose answer did not come in time (the request was sent whole: urllib3
    raises ``ReadTimeoutError`` only while waiting for the answer) may still take effect,
    so it is :class:`~refstore.errors.OutcomeUnknownError`, not "unreachable".
    Exceptions that did not come from the server or the network (for example
    an error raised by the caller's input stream) are returned unchanged.
    """
    where = f"{bucket}/{key}" if key else bucket
    if isinstance(exc, errors.RefStoreError):
        return exc
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if write and isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return errors.OutcomeUnknownError(
            f"storage backend did not answer a write in time; it may or may not have "
            f"taken effect: {where}",
            bucket=bucket,
            key=key,
        )
    if isinstance(exc, S3Error):
        return error_for_s3_code(exc.code or "", exc.message or "", bucket, key)
    if isinstance(exc, ServerError):
        return errors.ConnectionError(f"storage backend error (HTTP {exc.status_code}): {where}")
    if isinstance(exc, InvalidResponseError):
        return errors.ConnectionError(f"storage backend sent an invalid response: {exc}")
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return errors.ConnectionError(f"storage backend unreachable: {type(exc).__name__}: {exc}")
    return exc


class _Progress:
    """Adapter from minio-py's progress protocol to a byte-count callback."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    def set_meta(self, object_name: str, total_length: int) -> None:
        pass

    def update(self, size: int) -> None:
        self._callback(size)


class _UploadGuard:
    """Shared between the reading thread and minio-py's part-upload workers."""

    def __init__(
        self, policy: ChecksumPolicy = DEFAULT_POLICY, expected: Checksums | None = None
    ) -> None:
        self.failure: BaseException | None = None
        self.upload_id: str | None = None
        self.multipart = False
        self.hasher = policy.hasher(expected)
        self.expected = expected

    def check(self, what: str) -> Checksums:
        """The checksums of every byte read so far, checked against ``expected``.

        Raises:
            IntegrityError: they differ.
        """
        checksums = self.hasher.result()
        if self.expected is not None:
            self.expected.check(checksums, what)
        return checksums

    @property
    def may_have_stored(self) -> bool:
        """Whether an upload that failed may still take effect: a single PUT, or a
        multipart upload whose every part went (only its completion can have failed).
        One that failed creating the upload or in a part was never completed."""
        return not self.multipart or (self.upload_id is not None and self.failure is None)


class _UploadGuards:
    """The guards of the multipart uploads in flight, by upload id.

    Uploads add and discard theirs from their own threads while part-upload workers
    look them up from theirs, so every access holds the lock, and :meth:`items` is a
    snapshot that later changes do not disturb.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_upload_id: dict[str, _UploadGuard] = {}

    def add(self, upload_id: str, guard: _UploadGuard) -> None:
        with self._lock:
            guard.upload_id = upload_id
            self._by_upload_id[upload_id] = guard

    def get(self, upload_id: str) -> _UploadGuard | None:
        with self._lock:
            return self._by_upload_id.get(upload_id)

    def discard(self, guard: _UploadGuard) -> None:
        with self._lock:
            if guard.upload_id is not None:
                self._by_upload_id.pop(guard.upload_id, None)

    def items(self) -> list[tuple[str, _UploadGuard]]:
        with self._lock:
            return list(self._by_upload_id.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_upload_id)


class _GuardedReader:
    """Input stream that stops the upload as soon as any part upload has failed.

    minio-py uploads parts in worker threads and would otherwise keep reading
    the caller's whole stream before reporting the first failure.
    """

    def __init__(self, data: BinaryIO, guard: _UploadGuard) -> None:
        self._data = data
        self._guard = guard
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self._guard.failure is not None:
            raise self._guard.failure
        chunk = self._data.read(size)
        self.count += len(chunk)
        self._guard.hasher.update(chunk)
        return chunk


class _Minio(Minio):
    """Minio client that fails multipart uploads fast and never leaves them behind.

    A failed part stops the upload at the next read (see :class:`_GuardedReader`).
    When the server dies mid-upload, minio-py's own abort fails too; the upload
    id is kept and aborted on the next call that reaches the server.

    The private methods overridden here are minio-py's own, with their signatures
    (``minio`` is pinned to its major version; ``tests/test_minio.py`` checks them).
    """

    def __init__(self, *args: Any, checksums: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checksums = checksums
        """Whether bodies go with their CRC32C (and multipart uploads are checksummed)."""
        self.pending_aborts: list[tuple[str, str, str]] = []
        self.pending_lock = threading.Lock()
        self._current = threading.local()
        self.guards = _UploadGuards()
        self._part_checksums: dict[tuple[str, int], str] = {}

    def guarded_put(self, data: _GuardedReader, guard: _UploadGuard, **kwargs: Any) -> Any:
        self._current.guard = guard
        try:
            return self.put_object(data=data, **kwargs)  # type: ignore[arg-type]
        finally:
            self._current.guard = None
            self.guards.discard(guard)

    def _put_object(
        self,
        bucket_name: str,
        object_name: str,
        data: bytes,
        headers: Any = None,
        query_params: Any = None,
    ) -> Any:
        """Every body minio-py sends is in memory: it goes with its CRC32C, which MinIO
        checks and keeps. An object sent in one request also records both checksums
        in its metadata (a multipart object's are known only once it is complete)."""
        guard = getattr(self._current, "guard", None)
        if not self.checksums:
            if guard is not None and guard.expected is not None and not query_params:
                guard.check(f"{bucket_name}/{object_name}")
            return super()._put_object(bucket_name, object_name, data, headers, query_params)
        headers = dict(headers or {})
        if query_params and "uploadId" in query_params:
            # A part: its CRC32C, unless the caller computed it already.
            crc = headers.get(S3_HEADERS[CRC32C]) or crc32c_of(data)
            headers[S3_HEADERS[CRC32C]] = crc
            key = (str(query_params["uploadId"]), int(query_params["partNumber"]))
            with self.pending_lock:
                self._part_checksums[key] = crc
        else:
            # The whole object: the guarded reader has its checksums already.
            if guard is not None and guard.hasher.size == len(data):
                checksums = guard.hasher.result()
            else:
                checksums = Checksums({CRC32C: crc32c_of(data)})
            if guard is not None and guard.expected is not None:
                guard.expected.check(checksums, f"{bucket_name}/{object_name}")
            headers[S3_HEADERS[CRC32C]] = checksums.get(CRC32C) or crc32c_of(data)
            headers.update({f"x-amz-meta-{k}": v for k, v in checksums.metadata().items()})
        return super()._put_object(bucket_name, object_name, data, headers, query_params)

    def _complete_multipart_upload(
        self,
        bucket_name: str,
        object_name: str,
        upload_id: str,
        parts: list[Part],
        ssec: Any = None,
    ) -> CompleteMultipartUploadResult:
        """minio-py's request, with each part's CRC32C (MinIO refuses the parts of a
        checksummed upload without them); a guarded upload's bytes are checked first."""
        guard = getattr(self._current, "guard", None)
        if guard is not None:
            guard.check(f"{bucket_name}/{object_name}")  # raising aborts the upload
        if not self.checksums:
            return super()._complete_multipart_upload(
                bucket_name, object_name, upload_id, parts, ssec
            )
        known = self.forget_part_checksums(upload_id)
        if any(part.part_number not in known for part in parts):
            known = {**self.listed_part_checksums(bucket_name, object_name, upload_id), **known}
        element = Element("CompleteMultipartUpload")
        for part in parts:
            tag = SubElement(element, "Part")
            SubElement(tag, "PartNumber", str(part.part_number))
            SubElement(tag, "ETag", '"' + part.etag + '"')
            if known.get(part.part_number):
                SubElement(tag, "ChecksumCRC32C", known[part.part_number])
        body = getbytes(element)
        headers: dict[str, Any] = {
            "Content-Type": "application/xml",
            "Content-MD5": md5sum_hash(body),
        }
        if ssec:
            headers.update(ssec.headers())
        response = self._execute(
            "POST",
            bucket_name,
            object_name,
            body=body,
            headers=headers,
            query_params={"uploadId": upload_id},
        )
        return CompleteMultipartUploadResult(response)

    def forget_part_checksums(self, upload_id: str) -> dict[int, str]:
        """Take the CRC32C noted for the parts of ``upload_id`` (by part number)."""
        with self.pending_lock:
            return {
                number: self._part_checksums.pop((uid, number))
                for (uid, number) in list(self._part_checksums)
                if uid == upload_id
            }

    def name_part_checksums(self, upload_id: str, checksums: dict[int, str]) -> None:
        """The CRC32C the completion of ``upload_id`` names for these parts."""
        with self.pending_lock:
            for number, crc in checksums.items():
                self._part_checksums[(upload_id, number)] = crc

    def listed_part_checksums(self, bucket: str, key: str, upload_id: str) -> dict[int, str]:
        """The CRC32C of every stored part of an upload, as MinIO lists them (parts
        sent straight to MinIO through presigned URLs were never seen here)."""
        found: dict[int, str] = {}
        marker = "0"
        while True:
            response = self._execute(
                "GET",
                bucket,
                key,
                query_params={
                    "uploadId": upload_id,
                    "max-parts": "1000",
                    "part-number-marker": marker,
                },
            )
            root = ElementTree.fromstring(response.data)
            for part in root.iter(f"{S3_NS}Part"):
                number = part.findtext(f"{S3_NS}PartNumber")
                crc = part.findtext(f"{S3_NS}ChecksumCRC32C")
                if number and crc:
                    found[int(number)] = crc
            marker = root.findtext(f"{S3_NS}NextPartNumberMarker") or ""
            if root.findtext(f"{S3_NS}IsTruncated") != "true" or not marker:
                return found

    def _create_multipart_upload(self, bucket_name: str, object_name: str, headers: Any) -> str:
        guard = getattr(self._current, "guard", None)
        if guard is not None:
            guard.multipart = True
        headers = {**(headers or {}), **(CRC32C_UPLOAD if self.checksums else {})}
        upload_id: str = super()._create_multipart_upload(bucket_name, object_name, headers)
        if guard is not None:
            self.guards.add(upload_id, guard)
        return upload_id

    def _upload_part(
        self,
        bucket_name: str,
        object_name: str,
        data: bytes,
        headers: Any,
        upload_id: str,
        part_number: int,
    ) -> str:
        try:
            etag: str = super()._upload_part(
                bucket_name, object_name, data, headers, upload_id, part_number
            )
        except Exception as exc:
            guard = self.guards.get(upload_id)
            if guard is not None and guard.failure is None:
                guard.failure = exc
            raise
        return etag

    def _abort_multipart_upload(self, bucket_name: str, object_name: str, upload_id: str) -> None:
        self.forget_part_checksums(upload_id)
        try:
            super()._abort_multipart_upload(bucket_name, object_name, upload_id)
        except Exception as exc:
            logger.warning(
                "could not abort upload %s of %s/%s (%s); will retry",
                upload_id,
                bucket_name,
                object_name,
                type(exc).__name__,
            )
            with self.pending_lock:
                self.pending_aborts.append((bucket_name, object_name, upload_id))

    def retry_pending_aborts(self) -> None:
        with self.pending_lock:
            pending, self.pending_aborts = self.pending_aborts, []
        for bucket_name, object_name, upload_id in pending:
            try:
                super()._abort_multipart_upload(bucket_name, object_name, upload_id)
            except S3Error as exc:
                if exc.code != "NoSuchUpload":
                    logger.warning("abort of upload %s failed: %s", upload_id, exc)
            except Exception:
                with self.pending_lock:
                    self.pending_aborts.append((bucket_name, object_name, upload_id))


def _parse_http_date(value: str | None) -> Any:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _info_from_headers(bucket: str, key: str, headers: Any) -> ObjectInfo:
    content_range = headers.get("Content-Range", "")
    if "/" in content_range:
        size = int(content_range.rsplit("/", 1)[1])
    else:
        size = int(headers.get("Content-Length", 0))
    metadata = {
        name[len("x-amz-meta-") :]: value
        for name, value in headers.items()
        if name.lower().startswith("x-amz-meta-")
    }
    return ObjectInfo(
        bucket=bucket,
        key=key,
        size=size,
        etag=headers.get("ETag", "").strip('"'),
        last_modified=_parse_http_date(headers.get("Last-Modified")),
        content_type=headers.get("Content-Type", "application/octet-stream"),
        metadata={k.lower(): v for k, v in metadata.items()},
        checksums=_recorded_checksums(headers),
    )


def _recorded_checksums(headers: Any) -> Checksums:
    """The checksums an object's headers record: MinIO's own CRC32C (it checked it
    against the bytes when they were written), else RefStore's metadata, which also
    has SHA-256 for objects written in one request."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    recorded = Checksums.from_metadata(lowered, prefix="x-amz-meta-")
    native = lowered.get(S3_HEADERS[CRC32C])
    if native and "-" not in native:  # "...-N" is a composite of parts, not the bytes'
        recorded = Checksums({**recorded.values, CRC32C: native})
    return recorded


class MinioBackend:
    """Backend on a MinIO / S3 server.

    Args:
        settings: Connection settings (endpoint, credentials, timeouts).
        part_size: Multipart part size for uploads of unknown length.
        max_concurrency: Connection pool size.
        public_url: Base URL that presigned URLs are rewritten to (reverse proxy).
        public_endpoint: ``scheme://host[:port]`` that presigned URLs are signed for.
    """

    name = "minio"

    def __init__(
        self,
        settings: MinioSettings,
        *,
        part_size: int = 8 * 1024 * 1024,
        max_concurrency: int = 32,
        public_url: str | None = None,
        public_endpoint: str | None = None,
        checksums: ChecksumPolicy = DEFAULT_POLICY,
    ) -> None:
        self.settings = settings
        self.checksums = checksums
        self.part_size = part_size
        self.public_url = public_url
        secret_key = settings.secret_key.get_secret_value()
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            maxsize=max_concurrency + 4,
            cert_reqs="CERT_REQUIRED" if settings.cert_check else "CERT_NONE",
            ca_certs=certifi.where(),
            retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
        )
        self.client = _Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=self._http,
            checksums=checksums.crc32c,
        )
        self._signer: Minio | None = None
        if public_endpoint:
            parts = urlsplit(public_endpoint)
            self._signer = Minio(
                parts.netloc,
                access_key=settings.access_key,
                secret_key=secret_key,
                secure=parts.scheme == "https",
                region=settings.region or "us-east-1",
                http_client=self._http,
            )

    @classmethod
    def from_client(cls, client: Minio) -> MinioBackend:
        """Wrap an existing ``minio.Minio`` client (refstore 0.3.0's BucketManager takes one)."""
        backend = cls.__new__(cls)
        backend.settings = None  # type: ignore[assignment]
        backend.part_size = 8 * 1024 * 1024
        backend.public_url = None
        backend._http = client._http
        backend.client = client  # type: ignore[assignment]
        backend._signer = None
        return backend

    def _before(self) -> None:
        if getattr(self.client, "pending_aborts", None):
            self.client.retry_pending_aborts()

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
        self._before()
        guard = _UploadGuard(self.checksums, expected)
        reader = _GuardedReader(data, guard)
        try:
            if isinstance(self.client, _Minio):
                put: Any = functools.partial(self.client.guarded_put, guard=guard)
            else:
                put = self.client.put_object
            result = put(
                data=reader,
                bucket_name=bucket,
                object_name=key,
                length=length,
                content_type=content_type,
                metadata=dict(metadata) or None,
                part_size=self.part_size if length < 0 else 0,
                num_parallel_uploads=UNKNOWN_LENGTH_PARALLEL_PARTS if length < 0 else 3,
                progress=_Progress(progress) if progress else None,
            )
        except errors.IntegrityError:
            raise  # checked before the object was created: nothing is stored
        except Exception as exc:
            raise translate_error(exc, bucket, key, write=guard.may_have_stored) from exc
        checksums = guard.hasher.result()
        if not isinstance(self.client, _Minio) and expected is not None:
            try:  # a plain client cannot check before: the object goes again
                expected.check(checksums, f"{bucket}/{key}")
            except errors.IntegrityError:
                self.delete_object(bucket, key)
                raise
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=reader.count,
            etag=(result.etag or "").strip('"'),
            last_modified=None,
            content_type=content_type,
            metadata=dict(metadata),
            checksums=checksums,
        )

    def open_object(
        self, bucket: str, key: str, *, offset: int = 0, length: int | None = None
    ) -> ObjectStream:
        self._before()
        if length == 0:
            info = self.stat_object(bucket, key)
            return ObjectStream(
                None,
                info=info,
                offset=offset,
                length=0,
                translate=lambda exc: exc,
                release=lambda: None,
            )
        try:
            response = self.client.get_object(
                bucket, key, offset=offset, length=length or 0, request_headers=_CHECKSUM_MODE
            )
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc
        info = _info_from_headers(bucket, key, response.headers)

        def release() -> None:
            response.close()
            response.release_conn()

        return ObjectStream(
            response,
            info=info,
            offset=offset,
            length=int(response.headers.get("Content-Length", 0)),
            translate=lambda exc: translate_error(exc, bucket, key),
            release=release,
        )

    def stat_object(self, bucket: str, key: str) -> ObjectInfo:
        self._before()
        try:
            stat = self.client.stat_object(bucket, key, extra_headers=_CHECKSUM_MODE)
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc
        metadata = {
            name.lower()[len("x-amz-meta-") :]: value
            for name, value in (stat.metadata or {}).items()
            if name.lower().startswith("x-amz-meta-")
        }
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=stat.size or 0,
            etag=(stat.etag or "").strip('"'),
            last_modified=stat.last_modified,
            content_type=stat.content_type or "application/octet-stream",
            metadata=metadata,
            checksums=_recorded_checksums(stat.metadata or {}),
        )

    def delete_object(self, bucket: str, key: str) -> None:
        self._before()
        try:
            self.client.remove_object(bucket, key)
        except Exception as exc:
            raise translate_error(exc, bucket, key, write=True) from exc

    def delete_objects(self, bucket: str, keys: Iterable[str]) -> list[DeleteFailure]:
        self._before()
        try:
            return [
                DeleteFailure(
                    failure.name or "",
                    error_for_s3_code(
                        failure.code, failure.message or "", bucket, failure.name or ""
                    ),
                )
                for failure in self.client.remove_objects(
                    bucket, (DeleteObject(key) for key in keys)
                )
            ]
        except Exception as exc:
            raise translate_error(exc, bucket, write=True) from exc

    def list_objects(
        self, bucket: str, prefix: str = "", recursive: bool = True
    ) -> Iterator[ListedObject]:
        self._before()
        try:
            for obj in self.client.list_objects(bucket, prefix=prefix or None, recursive=recursive):
                yield ListedObject(
                    key=obj.object_name or "",
                    size=obj.size or 0,
                    last_modified=obj.last_modified,
                    etag=(obj.etag or "").strip('"') or None,
                    is_dir=obj.is_dir,
                )
        except Exception as exc:
            raise translate_error(exc, bucket, prefix) from exc

    def copy_object(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        from minio.commonconfig import CopySource

        self._before()
        try:
            self.client.copy_object(dst_bucket, dst_key, CopySource(src_bucket, src_key))
        except Exception as exc:
            raise translate_error(exc, dst_bucket, dst_key, write=True) from exc
        return self.stat_object(dst_bucket, dst_key)

    # multipart uploads (minio-py's own S3 calls; tests/test_minio.py checks their names)

    def create_multipart(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        self._before()
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": content_type}
        headers.update({f"x-amz-meta-{name}": value for name, value in metadata.items()})
        try:
            upload_id: str = self.client._create_multipart_upload(bucket, key, headers)
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc
        return upload_id

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
        if not 1 <= number <= MAX_PARTS:
            raise errors.InvalidPartError(f"part numbers are 1 to {MAX_PARTS}, got {number}")
        # minio-py signs a part's body, so it sends bytes: a part is held once, whole.
        body = bytearray()
        while len(body) < length:
            chunk = data.read(min(CHUNK_SIZE, length - len(body)))
            if not chunk:
                raise errors.InvalidInputError(
                    f"stream ended after {len(body)} of {length} announced bytes",
                    bucket=bucket,
                    key=key,
                )
            body += chunk
        hasher = self.checksums.part_hasher(expected)
        hasher.update(body)
        checksums = hasher.result()
        if expected is not None:
            expected.check(checksums, f"part {number} of {bucket}/{key}")
        crc = checksums.get(CRC32C)
        # Our client sends the part with its CRC32C: the one just computed.
        headers = {S3_HEADERS[CRC32C]: crc} if crc and isinstance(self.client, _Minio) else None
        self._before()
        try:
            etag = self.client._upload_part(bucket, key, bytes(body), headers, upload_id, number)
        except Exception as exc:
            raise translate_error(exc, bucket, key, write=True) from exc
        return UploadedPart(number, etag.strip('"'), len(body), checksums.get(CRC32C))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]:
        self._before()
        parts: list[UploadedPart] = []
        marker: str | None = None
        try:
            while True:
                result = self.client._list_parts(
                    bucket, key, upload_id, max_parts=1000, part_number_marker=marker
                )
                parts += [UploadedPart(p.part_number, p.etag, p.size or 0) for p in result.parts]
                if not result.is_truncated or not result.next_part_number_marker:
                    return parts
                marker = result.next_part_number_marker
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc

    def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> ObjectInfo:
        self._before()
        listed = [Part(part.number, part.etag.strip('"')) for part in parts]
        if not listed:
            raise errors.InvalidPartError("an upload is completed with at least one part")
        if isinstance(self.client, _Minio):
            # Checksums the caller names go in the request; MinIO checks each against
            # the stored part (InvalidPart). The others come from MinIO's own listing.
            self.client.name_part_checksums(
                upload_id, {part.number: part.checksum for part in parts if part.checksum}
            )
        try:
            self.client._complete_multipart_upload(bucket, key, upload_id, listed)
        except Exception as exc:
            raise translate_error(exc, bucket, key, write=True) from exc
        return self.stat_object(bucket, key)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._before()
        try:
            # minio-py's own call: the guarded override keeps failed aborts for later.
            Minio._abort_multipart_upload(self.client, bucket, key, upload_id)
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc

    def list_multipart(self, bucket: str, prefix: str = "") -> list[PendingUpload]:
        self._before()
        pending: list[PendingUpload] = []
        key_marker: str | None = None
        id_marker: str | None = None
        try:
            while True:
                # MinIO lists by an exact key or by none: the prefix is applied here.
                result = self.client._list_multipart_uploads(
                    bucket, key_marker=key_marker, upload_id_marker=id_marker, max_uploads=1000
                )
                pending += [
                    PendingUpload(bucket, u.object_name, u.upload_id or "", u.initiated_time)
                    for u in result.uploads
                    if u.object_name.startswith(prefix)
                ]
                if not result.is_truncated or not result.uploads:
                    return pending
                key_marker = result.uploads[-1].object_name
                id_marker = result.uploads[-1].upload_id
        except Exception as exc:
            raise translate_error(exc, bucket) from exc

    def presign_part(
        self, bucket: str, key: str, upload_id: str, number: int, expiry_seconds: int
    ) -> str:
        if not 1 <= number <= MAX_PARTS:
            raise errors.InvalidPartError(f"part numbers are 1 to {MAX_PARTS}, got {number}")
        query: dict[str, str | list[str] | tuple[str]] = {
            "uploadId": upload_id,
            "partNumber": str(number),
        }
        return self._presign("PUT", bucket, key, expiry_seconds, query)

    def presign(self, method: str, bucket: str, key: str, expiry_seconds: int) -> str:
        return self._presign(method, bucket, key, expiry_seconds)

    def _presign(
        self,
        method: str,
        bucket: str,
        key: str,
        expiry_seconds: int,
        query: dict[str, str | list[str] | tuple[str]] | None = None,
    ) -> str:
        signer = self._signer or self.client
        try:
            url = signer.get_presigned_url(
                method,
                bucket,
                key,
                expires=timedelta(seconds=expiry_seconds),
                extra_query_params=query,
            )
        except Exception as exc:
            raise translate_error(exc, bucket, key) from exc
        return rewrite_url_base(url, self.public_url) if self.public_url else url

    def bucket_exists(self, bucket: str) -> bool:
        self._before()
        try:
            return bool(self.client.bucket_exists(bucket))
        except Exception as exc:
            raise translate_error(exc, bucket) from exc

    def make_bucket(self, bucket: str, location: str | None = None) -> None:
        self._before()
        try:
            self.client.make_bucket(bucket, location=location)
        except S3Error as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise translate_error(exc, bucket) from exc
        except Exception as exc:
            raise translate_error(exc, bucket) from exc

    def remove_bucket(self, bucket: str) -> None:
        self._before()
        try:
            self.client.remove_bucket(bucket)
        except Exception as exc:
            raise translate_error(exc, bucket) from exc

    def list_buckets(self) -> list[BucketInfo]:
        self._before()
        try:
            return [BucketInfo(b.name, b.creation_date) for b in self.client.list_buckets()]
        except Exception as exc:
            raise translate_error(exc) from exc

    def ping(self) -> None:
        self.list_buckets()

    def close(self) -> None:
        self._http.clear()


def rewrite_url_base(url: str, public_url: str) -> str:
    """Move ``url``'s path and query under ``public_url`` (scheme, host and path prefix)."""
    original = urlsplit(url)
    public = urlsplit(public_url)
    path = public.path.rstrip("/") + "/" + original.path.lstrip("/")
    query = f"?{original.query}" if original.query else ""
    return f"{public.scheme}://{public.netloc}{path}{query}"


__all__ = ["CHUNK_SIZE", "MinioBackend", "rewrite_url_base", "translate_error"]
