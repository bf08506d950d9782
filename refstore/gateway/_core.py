"""Everything the gateway SDK does without I/O, written once for both clients.

:class:`BaseGatewayClient` holds the settings and builds every request as a
:class:`Call`; this module also parses answers, maps HTTP errors back to the
classes of :mod:`refstore.errors` and decides retries (:class:`RetryPolicy`).
``_async_client.py`` only sends calls and moves bytes; ``_sync_client.py`` is
generated from it by ``scripts/unasync.py``.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import hashlib
import logging
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .. import errors
from ..checksums import CHECKSUM_MODE, CRC32C, S3_HEADERS, SHA256, Checksums, Hasher, from_headers
from ..keys import build_object_key, normalize_filename, normalize_path
from ..mapping import MappingVersion
from ..retry import RetryHandler
from ..uri import decode_uri, encode_uri
from ._types import ProgressCallback, ResumeCallback, UploadData, UploadResult

logger = logging.getLogger("refstore.gateway")

ENV_URL = "REFSTORE_GATEWAY_URL"
ENV_API_KEY = "REFSTORE_API_KEY"
MiB = 1024 * 1024
DEFAULT_TIMEOUT = 30.0
DEFAULT_DIRECT_THRESHOLD = 64 * MiB
CHUNK_SIZE = MiB
MAX_DIRECT_PUT = 5 * 1024 * MiB
DEFAULT_SESSION_THRESHOLD = 128 * MiB
DEFAULT_PARALLEL = 4
"""A presigned PUT is one S3 request, capped at 5 GiB; larger files go through the gateway."""
RETRY_STATUSES = frozenset({502, 503, 504})
UPLOADED = "File uploaded successfully"


# -- settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Idempotent requests (GET, DELETE, PUT to an exact key, a versioned mapping PUT,
    uploads whose key is known) are retried on connection errors and on 502, 503
    and 504; other requests only when the server cannot have acted on them: it was
    never reached, or the connection broke before it had the whole body. An upload
    body is sent again only if it can be replayed: bytes, a path, a seekable file.

    Attributes:
        max_retries: Retries after the first attempt (0: never retry).
        base_delay: First wait in seconds, doubled per retry, with 50-100% jitter.
        max_delay: Cap of one wait, also of an honoured ``Retry-After``.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise errors.ConfigError("retry settings must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based): jittered
        exponential backoff, but at least ``Retry-After`` (capped at ``max_delay``)."""
        backoff = RetryHandler(self.max_retries, self.base_delay, self.max_delay).delay(attempt)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_delay))
        return backoff


@dataclass(frozen=True)
class ClientSettings:
    """What a client was configured with (see :func:`resolve_settings`)."""

    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    retry: RetryPolicy
    direct_threshold: int | None
    chunk_size: int
    session_threshold: int | None = DEFAULT_SESSION_THRESHOLD


def resolve_settings(
    gateway_url: str | None,
    timeout: float | httpx.Timeout | None,
    headers: Mapping[str, str] | None,
    api_key: str | None,
    retry: RetryPolicy | int | None,
    direct_threshold: int | None,
    chunk_size: int,
    session_threshold: int | None = DEFAULT_SESSION_THRESHOLD,
) -> ClientSettings:
    """Settings from the arguments, falling back to ``REFSTORE_GATEWAY_URL`` and
    ``REFSTORE_API_KEY``. An ``api_key`` becomes ``Authorization: Bearer <key>``;
    without one, an ``Authorization`` in ``headers`` (as refstore 0.3.0 users sent it)
    is kept, and the environment's key is used only when there is neither.

    Raises:
        ConfigError: no or malformed gateway URL, negative sizes or retries.
    """
    url = gateway_url or os.environ.get(ENV_URL, "")
    parts = urlsplit(url)
    if not url:
        raise errors.ConfigError(f"no gateway URL: pass gateway_url= or set {ENV_URL}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.ConfigError(f"gateway URL must be http(s)://host[:port][/path], got {url!r}")
    merged = dict(headers or {})
    has_auth = any(name.lower() == "authorization" for name in merged)
    key = api_key if api_key is not None else (None if has_auth else os.environ.get(ENV_API_KEY))
    if key:
        merged = {k: v for k, v in merged.items() if k.lower() != "authorization"}
        merged["Authorization"] = f"Bearer {key}"
    if direct_threshold is not None and direct_threshold < 0:
        raise errors.ConfigError("direct_threshold must be >= 0 (or None to disable)")
    if session_threshold is not None and session_threshold < 0:
        raise errors.ConfigError("session_threshold must be >= 0 (or None to disable)")
    if chunk_size <= 0:
        raise errors.ConfigError("chunk_size must be positive")
    if retry is None:
        retry = RetryPolicy(max_retries=0)
    elif isinstance(retry, int):
        retry = RetryPolicy(max_retries=retry)
    return ClientSettings(
        base_url=url.rstrip("/"),
        headers=merged,
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        retry=retry,
        direct_threshold=direct_threshold,
        chunk_size=chunk_size,
        session_threshold=session_threshold,
    )


# -- calls and bodies ----------------------------------------------------------------


class Replay(enum.Enum):
    """When a failed call may be sent again."""

    IDEMPOTENT = "idempotent"
    """On connection errors and 502/503/504 answers."""
    UNSENT = "unsent"
    """Only when it never reached the server (connecting failed), or when the gateway
    refused it unread for capacity (429, 503 ``busy``)."""


@dataclass
class Body:
    """An upload body: bytes, a local file or a caller's file object, optionally framed
    as ``multipart/form-data`` (``head`` + data + ``tail``)."""

    data: bytes | bytearray | memoryview | None = None
    path: str | None = None
    file: BinaryIO | None = None
    start: int = 0
    size: int | None = None
    replayable: bool = True
    content_type: str = "application/octet-stream"
    head: bytes = b""
    tail: bytes = b""

    @property
    def length(self) -> int | None:
        """Bytes on the wire, or None when unknown (sent chunked)."""
        if self.size is None:
            return None
        return len(self.head) + self.size + len(self.tail)

    def inline(self, limit: int) -> bytes | None:
        """The whole body as one bytes object when it is in memory and at most ``limit``
        bytes: httpx sends that for less CPU than a stream of chunks (small uploads)."""
        if self.data is None or self.size is None or self.size > limit:
            return None
        return self.head + bytes(self.data) + self.tail


def body_from_data(file_data: UploadData) -> Body:
    """Describe ``upload_file`` data. Seekable files are sent from their current
    position (as :meth:`refstore.RefStore.upload_file` does) and can be replayed.

    Raises:
        InvalidInputError: neither bytes nor a readable file object.
    """
    if isinstance(file_data, (bytes, bytearray, memoryview)):
        return Body(data=file_data, size=memoryview(file_data).nbytes)
    if not callable(getattr(file_data, "read", None)):
        raise errors.InvalidInputError(
            f"file_data must be bytes or a binary file object, not {type(file_data).__name__}"
        )
    if _seekable(file_data):
        start = file_data.tell()
        end = file_data.seek(0, os.SEEK_END)
        file_data.seek(start)
        return Body(file=file_data, start=start, size=max(end - start, 0))
    return Body(file=file_data, replayable=False)


def body_from_path(path: str | os.PathLike[str], size: int) -> Body:
    """Describe a local file of ``size`` bytes (opened afresh for every attempt)."""
    return Body(path=os.fspath(path), size=size)


def _seekable(file: BinaryIO) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def guess_type(filename: str, given: str | None = None) -> str:
    """``given``, else the type guessed from the filename, else octet-stream."""
    return given or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _form_quote(value: str) -> str:
    # A quoted-string: the gateway's parser unescapes backslash escapes.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def form_filename(filename: str) -> str:
    """The filename to send in a multipart upload (normalised, UTF-8 on the wire).

    Raises:
        InvalidKeyError: empty or unsafe filename.
    """
    return normalize_filename(filename)


def multipart_framing(
    fields: Mapping[str, str], filename: str, content_type: str
) -> tuple[bytes, bytes, str]:
    """(head, tail, Content-Type) around a file part; fields go first, as the gateway
    asks, so the file streams straight to its final key."""
    boundary = uuid.uuid4().hex
    head = bytearray()
    for name, value in fields.items():
        head += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        head += value.encode() + b"\r\n"
    head += (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_form_quote(filename)}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return bytes(head), tail, f"multipart/form-data; boundary={boundary}"


def range_header(offset: int, length: int | None) -> str | None:
    """``Range`` value for ``offset``/``length`` (None: the whole object).

    Raises:
        InvalidRangeError: negative offset or length.
    """
    if offset < 0 or (length is not None and length < 0):
        raise errors.InvalidRangeError("offset and length must not be negative")
    if offset == 0 and length is None:
        return None
    if length is None:
        return f"bytes={offset}-"
    return f"bytes={offset}-{offset + length - 1}"


@dataclass
class Call:
    """One request as the clients send it."""

    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Body | None = None
    replay: Replay = Replay.IDEMPOTENT
    to_gateway: bool = True
    """False for presigned URLs: never send the gateway credentials there."""
    not_found: type[errors.NotFoundError] = errors.NotFoundError
    """Class for a 404 that carries no (known) code."""

    @property
    def safe_url(self) -> str:
        """The URL for messages: without the query of a presigned URL (its signature)."""
        if self.to_gateway:
            return self.url
        return urlunsplit(urlsplit(self.url)._replace(query=""))


@dataclass(frozen=True, order=True)
class StoredPart:
    """A part the storage holds: its number, ETag and size."""

    number: int
    etag: str
    size: int
    checksum: str | None = None
    """The part's CRC32C, as this client computed it or the gateway answered it."""

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"part_number": self.number, "etag": self.etag, "size": self.size}
        if self.checksum:
            answer["checksum_crc32c"] = self.checksum  # checked again on completion
        return answer

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StoredPart:
        return cls(
            int(raw["part_number"]),
            str(raw["etag"]),
            int(raw.get("size") or 0),
            raw.get("checksum_crc32c") or None,
        )


@dataclass(frozen=True)
class PartSource:
    """Where the parts of a session's object are read: a local file (opened afresh
    per attempt, so parts can be sent in parallel) or a caller's seekable file."""

    size: int
    path: str | None = None
    file: BinaryIO | None = None
    start: int = 0

    def body(self, offset: int, length: int) -> Body:
        """The part at ``offset`` (from the source's start), ``length`` bytes."""
        if self.path is not None:
            return Body(path=self.path, start=offset, size=length)
        return Body(file=self.file, start=self.start + offset, size=length)


@dataclass(frozen=True)
class SessionOptions:
    """How ``upload_large`` sends an object (its arguments, see there)."""

    parallel: int = DEFAULT_PARALLEL
    resume: bool = True
    part_size: int | None = None
    content_type: str = "application/octet-stream"
    direct: bool | None = None
    state_dir: str | os.PathLike[str] | None = None
    on_resume: ResumeCallback | None = None


@dataclass
class PartRoute:
    """How an upload session's parts travel: through presigned part URLs straight to
    storage while ``direct`` holds (the first refusal or unreachable host turns it off
    for the parts after), else through the gateway."""

    direct: bool


def lacks_sessions(exc: errors.RefStoreError) -> bool:
    """Whether a failed ``POST /uploads`` means the gateway has no upload sessions (an
    older gateway: a plain 404 or 405 rather than one of its coded errors)."""
    return exc.context.get("status") in (404, 405) and exc.code in ("not_found", "refstore_error")


def part_ranges(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """(number, offset, length) of every part of a ``size``-byte object (one empty part
    for an empty object: S3 needs at least one)."""
    if size == 0:
        return [(1, 0, 0)]
    return [
        (index + 1, offset, min(part_size, size - offset))
        for index, offset in enumerate(range(0, size, part_size))
    ]


def part_etag(response: httpx.Response) -> str:
    """The ETag a part's upload answered: S3's header, or the gateway's JSON body.

    Raises:
        RefStoreError: the answer names no ETag.
    """
    etag = str(response.headers.get("etag", "")).strip('"')
    if not etag:
        with contextlib.suppress(ValueError, AttributeError):
            etag = str(response.json().get("etag") or "")
    if not etag:
        raise errors.RefStoreError(f"the upload of a part to {response.url} answered no ETag")
    return etag


class Verifier:
    """Checks the bytes of a whole-object download against the checksums its answer
    declares: ``Repr-Digest`` and ``x-amz-checksum-*`` (the gateway, or MinIO asked
    with ``x-amz-checksum-mode``), else RefStore's ``x-amz-meta-refstore-*`` metadata."""

    def __init__(self, expected: Checksums) -> None:
        self._expected = expected
        self._hasher = Hasher(sha256=expected.get(SHA256) is not None)

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Verifier | None:
        """A verifier for an answer's declared checksums; None when it declares none
        (an object stored before RefStore recorded checksums, a composite checksum)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        usable = {k: v for k, v in lowered.items() if not k.startswith("x-amz-checksum-")}
        usable.update(
            {k: v for k, v in lowered.items() if k in S3_HEADERS.values() and "-" not in v}
        )
        try:
            declared = from_headers(usable, digest_field="repr-digest")
        except errors.InvalidInputError as exc:
            logger.warning("not verifying a download: %s", exc)
            return None
        expected = declared.merged(Checksums.from_metadata(lowered, prefix="x-amz-meta-"))
        return cls(expected) if expected else None

    def update(self, chunk: bytes) -> None:
        self._hasher.update(chunk)

    def check(self, what: str) -> None:
        """Raises: IntegrityError: the bytes differ from what the answer declared."""
        self._expected.check(self._hasher.result(), what)


def new_request_id() -> str:
    """``X-Request-ID`` of one call (the same on every attempt of it)."""
    return uuid.uuid4().hex


# -- the no-I/O half of the clients --------------------------------------------------


class BaseGatewayClient:
    """Settings and request building shared by :class:`GatewayClient` and
    :class:`AsyncGatewayClient`; subclasses only send the calls."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        # /gateway/status, once asked: the default bucket and upload cap it gives are
        # settings of the gateway, fixed while it runs.
        self._status: dict[str, Any] | None = None

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway (without a trailing '/')."""
        return self._settings.base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """Timeouts of each request (connect, read, write, pool)."""
        return self._settings.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy."""
        return self._settings.retry

    @property
    def direct_threshold(self) -> int | None:
        """Files at least this large skip the gateway's data path (None: never)."""
        return self._settings.direct_threshold

    def _url(self, path: str) -> str:
        return self._settings.base_url + path

    def _headers(self, call: Call, request_id: str) -> dict[str, str]:
        if not call.to_gateway:
            return dict(call.headers)
        return {**self._settings.headers, **call.headers, "X-Request-ID": request_id}

    @property
    def session_threshold(self) -> int | None:
        """``upload_from_local`` sends files of at least this many bytes in an upload session."""
        return self._settings.session_threshold

    @property
    def upload_owner(self) -> str:
        """This client's gateway and key, as upload state files record them: a session
        can be continued only under the key that started it. (The key itself is not
        written anywhere, only a short hash of it.)"""
        auth = next(
            (v for k, v in self._settings.headers.items() if k.lower() == "authorization"), ""
        )
        return f"{self.gateway_url}#{hashlib.sha256(auth.encode()).hexdigest()[:12]}"

    def _use_session(self, size: int) -> bool:
        threshold = self._settings.session_threshold
        return threshold is not None and size >= threshold

    def _use_direct(self, size: int, direct: bool | None) -> bool:
        if direct is False or size > MAX_DIRECT_PUT:
            return False
        if direct:
            return True
        threshold = self._settings.direct_threshold
        return threshold is not None and size >= threshold

    # gateway administration

    def _status_call(self) -> Call:
        return Call("GET", self._url("/gateway/status"))

    def _config_call(self) -> Call:
        return Call("GET", self._url("/gateway/config"))

    def _list_buckets_call(self) -> Call:
        return Call("GET", self._url("/gateway/buckets"))

    def _create_bucket_call(self, name: str, location: str | None) -> Call:
        payload: dict[str, Any] = {"name": name}
        if location:
            payload["location"] = location
        # Creating a bucket that exists succeeds, so sending it again is safe.
        return Call("POST", self._url("/gateway/buckets"), json=payload)

    def _bucket_info_call(self, name: str) -> Call:
        url = self._url(f"/gateway/buckets/{quote(name, safe='')}")
        return Call("GET", url, not_found=errors.BucketNotFoundError)

    def _delete_bucket_call(self, name: str, force: bool) -> Call:
        url = self._url(f"/gateway/buckets/{quote(name, safe='')}")
        params = {"force": "true"} if force else None
        return Call("DELETE", url, params=params, not_found=errors.BucketNotFoundError)

    def _get_mapping_call(self) -> Call:
        return Call("GET", self._url("/gateway/bucket-mapping"))

    def _update_mapping_call(
        self,
        enable_bucket_mapping: bool | None,
        bucket_map: Mapping[str, str] | None,
        version: MappingVersion | Mapping[str, Any] | None,
    ) -> Call:
        payload: dict[str, Any] = {}
        if enable_bucket_mapping is not None:
            payload["enable_bucket_mapping"] = enable_bucket_mapping
        if bucket_map is not None:
            payload["bucket_map"] = dict(bucket_map)
        if version is not None:
            if not isinstance(version, MappingVersion):
                version = MappingVersion.from_dict(version)
            payload["version"] = version.to_dict()
        # Only a versioned update is idempotent: an unversioned one bumps the generation.
        replay = Replay.IDEMPOTENT if version is not None else Replay.UNSENT
        return Call("PUT", self._url("/gateway/bucket-mapping"), json=payload, replay=replay)

    # files

    def _upload_call(
        self,
        body: Body,
        filename: str,
        bucket: str | None,
        path: str | None,
        use_logical_uri: bool,
        content_type: str | None,
    ) -> Call:
        """With a ``path`` (and the bucket, resolved by the caller) the key is known,
        ``path/filename``, and the body goes raw to ``PUT /files/{bucket}/{key}``;
        without one it goes in a streamed multipart ``POST /upload`` and the gateway
        makes up the key (under a scoped key's prefix).

        Raises:
            InvalidKeyError: unsafe path or filename.
        """
        ctype = guess_type(filename, content_type)
        if path and normalize_path(path):
            if bucket is None:
                raise ValueError("the bucket of an upload with a path must be resolved")
            return self._put_call(
                body, bucket, build_object_key(filename, path), ctype, use_logical_uri
            )
        fields: dict[str, str] = {}
        if bucket:
            fields["logic_bucket"] = bucket
        if use_logical_uri:
            fields["use_logical_uri"] = "true"
        head, tail, form_type = multipart_framing(fields, form_filename(filename), ctype)
        body = replace(body, head=head, tail=tail, content_type=form_type)
        # The gateway makes up the key: a repeat could store a second copy.
        return Call(
            "POST",
            self._url("/upload"),
            headers={"Content-Type": form_type},
            body=body,
            replay=Replay.UNSENT,
        )

    def _upload_to_call(self, uri: str, body: Body, content_type: str | None) -> Call:
        """A raw ``PUT /files/{bucket}/{key}`` to the object ``uri`` names.

        Raises:
            URIParseError: not an ``s3://bucket/key`` URI, or an unsafe key.
        """
        bucket, key = decode_uri(uri)
        ctype = guess_type(key.rsplit("/", 1)[-1], content_type)
        return self._put_call(body, bucket, key, ctype, use_logical_uri=False)

    def _put_call(
        self, body: Body, bucket: str, key: str, content_type: str, use_logical_uri: bool
    ) -> Call:
        url = self._url(f"/files/{quote(bucket, safe='')}/{quote(key, safe='/')}")
        params = {"use_logical_uri": "true"} if use_logical_uri else None
        body = replace(body, content_type=content_type)
        return Call("PUT", url, params=params, headers={"Content-Type": content_type}, body=body)

    def _download_call(self, uri: str, offset: int, length: int | None) -> Call:
        return Call(
            "GET",
            self._url("/download"),
            params={"uri": uri},
            headers=_download_headers(offset, length),
            not_found=errors.ObjectNotFoundError,
        )

    def _presign_call(self, uri: str, expiry_seconds: int | None, method: str) -> Call:
        params: dict[str, Any] = {"uri": uri, "method": method}
        if expiry_seconds is not None:
            params["expiry_seconds"] = expiry_seconds
        return Call("GET", self._url("/presigned-url"), params=params)

    def _info_call(self, uri: str) -> Call:
        return Call("GET", self._url("/info"), params={"uri": uri})

    def _delete_call(self, uris: Iterable[str]) -> Call:
        return Call("DELETE", self._url("/delete"), json={"uris": list(uris)})

    def _list_call(
        self, logic_bucket: str | None, prefix: str, recursive: bool, use_logical_uri: bool
    ) -> Call:
        params: dict[str, Any] = {"prefix": prefix, "recursive": "true" if recursive else "false"}
        if logic_bucket:
            params["logic_bucket"] = logic_bucket
        if use_logical_uri:
            params["use_logical_uri"] = "true"
        return Call("GET", self._url("/list"), params=params, not_found=errors.BucketNotFoundError)

    def _health_call(self) -> Call:
        return Call("GET", self._url("/health"))

    # upload sessions (resumable, parallel parts)

    def _session_url(self, upload_id: str, below: str = "") -> str:
        return self._url(f"/uploads/{quote(upload_id, safe='')}{below}")

    def _start_session_call(
        self, uri: str, size: int, part_size: int | None, content_type: str
    ) -> Call:
        payload: dict[str, Any] = {"uri": uri, "size": size, "content_type": content_type}
        if part_size is not None:
            payload["part_size"] = part_size
        # A repeat after a lost answer only leaves an unused session, which expires.
        return Call("POST", self._url("/uploads"), json=payload)

    def _session_call(self, upload_id: str) -> Call:
        return Call(
            "GET",
            self._session_url(upload_id),
            not_found=errors.UploadNotFoundError,
        )

    def _abort_session_call(self, upload_id: str) -> Call:
        return Call(
            "DELETE",
            self._session_url(upload_id),
            not_found=errors.UploadNotFoundError,
        )

    def _pending_uploads_call(self, logic_bucket: str | None, prefix: str) -> Call:
        params: dict[str, Any] = {"prefix": prefix}
        if logic_bucket:
            params["logic_bucket"] = logic_bucket
        return Call("GET", self._url("/uploads"), params=params)

    def _part_call(self, upload_id: str, number: int, body: Body, crc32c: str | None) -> Call:
        url = self._session_url(upload_id, f"/parts/{number}")
        headers = {S3_HEADERS[CRC32C]: crc32c} if crc32c else {}
        return Call("PUT", url, headers=headers, body=body, not_found=errors.UploadNotFoundError)

    def _part_url_call(self, upload_id: str, number: int) -> Call:
        url = self._session_url(upload_id, f"/parts/{number}/url")
        return Call("GET", url, not_found=errors.UploadNotFoundError)

    def _complete_session_call(self, upload_id: str, parts: list[StoredPart]) -> Call:
        url = self._session_url(upload_id, "/complete")
        payload = {"parts": [part.as_json() for part in sorted(parts)]}
        # Completed once, the session is gone: a repeat could only answer 404.
        return Call(
            "POST", url, json=payload, replay=Replay.UNSENT, not_found=errors.UploadNotFoundError
        )

    # direct transfers (presigned URLs)

    def _direct_target(self, filename: str, logic_bucket: str, path: str | None) -> tuple[str, str]:
        """(key, URI) a direct upload presigns: ``path/filename``, or a generated key.

        Raises:
            InvalidKeyError, URIParseError: unsafe path, filename or bucket.
        """
        key = build_object_key(filename, path)
        return key, encode_uri(logic_bucket, key)

    @staticmethod
    def _direct_put_call(url: str, body: Body, crc32c: str) -> Call:
        # Storage checks the bytes against their CRC32C and keeps it.
        headers = {"Content-Type": body.content_type, S3_HEADERS[CRC32C]: crc32c}
        return Call("PUT", url, headers=headers, body=body, to_gateway=False)

    @staticmethod
    def _direct_part_call(url: str, body: Body, crc32c: str | None) -> Call:
        # Storage checks the part against its CRC32C (a checksummed upload needs it).
        headers = {S3_HEADERS[CRC32C]: crc32c} if crc32c else {}
        return Call(
            "PUT",
            url,
            headers=headers,
            body=body,
            to_gateway=False,
            not_found=errors.UploadNotFoundError,
        )

    @staticmethod
    def _direct_get_call(url: str, offset: int, length: int | None) -> Call:
        headers = {**_download_headers(offset, length), **CHECKSUM_MODE}
        return Call(
            "GET", url, headers=headers, to_gateway=False, not_found=errors.ObjectNotFoundError
        )

    @staticmethod
    def _direct_upload_result(
        logic_bucket: str, key: str, answer: Any, expected: int | None, use_logical_uri: bool
    ) -> UploadResult:
        """The result of a direct upload, shaped as the gateway's own (physical bucket
        unless ``use_logical_uri``), from the ``/info`` answer after the PUT.

        Raises:
            RefStoreError: the object is missing or has another size than was sent.
        """
        info = answer.get("info") if isinstance(answer, dict) else None
        if not isinstance(info, dict):
            raise errors.RefStoreError(
                f"direct upload to {logic_bucket}/{key} left no object", key=key
            )
        size = int(info["size"])
        if expected is not None and size != expected:
            raise errors.RefStoreError(
                f"direct upload stored {size} bytes, {expected} were sent", key=key
            )
        bucket = logic_bucket if use_logical_uri else str(info["physical_bucket"])
        return {
            "uri": encode_uri(bucket, key),
            "success": True,
            "message": UPLOADED,
            "size": size,
            "checksums": info.get("checksums") or None,
        }

    # answers

    def _should_retry(
        self,
        call: Call,
        attempt: int,
        *,
        error: httpx.TransportError | None = None,
        answer: httpx.Response | None = None,
        sent: Transferred | None = None,
    ) -> bool:
        """Whether attempt number ``attempt`` (0-based) of ``call`` is worth repeating."""
        if attempt >= self._settings.retry.max_retries:
            return False
        started = sent is not None and sent.started
        if started and call.body is not None and not call.body.replayable:
            return False
        if error is not None:
            if _never_sent(error):
                # An unreachable presigned host is not retried: the caller falls back.
                return call.to_gateway
            if started and sent is not None and not sent.finished:
                # The server never got the whole body, so it cannot have acted on it (a
                # server answering early, e.g. 413, and closing can lose its answer).
                return True
            return call.replay is Replay.IDEMPOTENT
        if answer is not None and refused_unacted(answer):
            return True
        status = answer.status_code if answer is not None else None
        return call.replay is Replay.IDEMPOTENT and status in RETRY_STATUSES

    def _log_retry(self, call: Call, attempt: int, reason: str, delay: float) -> None:
        logger.warning(
            "%s %s failed (%s); retry %d/%d in %.2fs",
            call.method,
            call.safe_url,
            reason,
            attempt,
            self._settings.retry.max_retries,
            delay,
        )


def _download_headers(offset: int, length: int | None) -> dict[str, str]:
    # Identity, so byte counts match ranges when a download is resumed.
    headers = {"Accept-Encoding": "identity"}
    value = range_header(offset, length)
    if value is not None:
        headers["Range"] = value
    return headers


REFUSED_CODES = frozenset({errors.BusyError.code, errors.TooManyRequestsError.code})


def refused_unacted(answer: httpx.Response) -> bool:
    """Whether the gateway refused the request before acting on it, for capacity (429, or
    503 with code ``busy``): sending it again is safe even for a write that is not
    idempotent. ``answer``'s body must have been read."""
    if answer.status_code not in (429, 503):
        return False
    try:
        body = answer.json()
    except ValueError:
        return answer.status_code == 429
    code = body.get("code") if isinstance(body, dict) else None
    return code in REFUSED_CODES or (answer.status_code == 429 and code is None)


def _never_sent(error: httpx.TransportError) -> bool:
    return isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


# -- parsing answers and errors ------------------------------------------------------

_S3_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def parse_json(response: httpx.Response, call: Call) -> Any:
    """The JSON of a successful answer.

    Raises:
        RefStoreError: the body is not JSON (not a RefStore gateway?).
    """
    try:
        return response.json()
    except ValueError as exc:
        raise errors.RefStoreError(
            f"{call.method} {call.safe_url} answered {response.status_code} without JSON "
            "(is this a RefStore gateway?)",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from exc


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return cast(str, detail["message"])
    if isinstance(detail, list):  # validation errors: [{"loc", "msg", "type"}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_from_response(response: httpx.Response, call: Call) -> errors.RefStoreError:
    """The RefStore error an error answer stands for (its body must have been read).

    The gateway's ``code`` picks the class when it agrees with the status (so
    ``invalid_uri`` gives :class:`URIParseError`); else an S3 error code of a
    presigned transfer's XML body; otherwise the status does (all from the table of
    :mod:`refstore.errors`). The
    error carries ``status``, ``code``, ``request_id``, ``method``, ``url`` and the
    parsed ``body`` in ``context`` (``current`` too for a mapping conflict).
    """
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    code: str | None = None
    detail: Any = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        code = body.get("code") if isinstance(body.get("code"), str) else None
    cls = errors.class_for_code(code, status)
    if cls is None:
        s3_code = _S3_CODE.search(response.content)
        if detail is None and s3_code:  # presigned transfers: MinIO answers S3 XML
            code = s3_code.group(1).decode("ascii", "replace")
            cls = errors.class_for_s3_code(code)
            message = _S3_MESSAGE.search(response.content)
            detail = message.group(1).decode("utf-8", "replace") if message else code
        if cls is None:
            cls = call.not_found if status == 404 else errors.class_for_status(status)
    if detail is None:
        text = response.text.strip()[:500] if response.content else ""
        detail = text or f"{response.status_code} {response.reason_phrase}".strip()
    context: dict[str, Any] = {
        "status": status,
        "code": code or cls.code,
        "request_id": response.headers.get("x-request-id"),
        "method": call.method,
        "url": call.safe_url,
        "body": body if body is not None else detail,
    }
    wait = retry_after(response.headers)
    if wait is not None:
        context["retry_after"] = wait
    if isinstance(detail, dict) and "current" in detail:
        context["current"] = detail["current"]
    error = cls(_detail_text(detail), **context)
    error.code = code or cls.code
    return error


def connection_error(
    exc: httpx.TransportError, call: Call, request_id: str
) -> errors.ConnectionError:
    """A :class:`ConnectionError` for a request that got no answer.

    ``context["phase"]`` is ``"connect"`` when the server was never reached.
    """
    host = urlsplit(call.url).netloc
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    phase = "connect" if _never_sent(exc) else "transfer"
    target = "gateway" if call.to_gateway else "presigned URL host"
    error = errors.ConnectionError(
        f"{call.method} {call.safe_url} {what}: cannot reach the {target} at {host} "
        f"({type(exc).__name__}: {exc})",
        method=call.method,
        url=call.safe_url,
        request_id=request_id if call.to_gateway else None,
        phase=phase,
    )
    return error


class Transferred:
    """Bytes one attempt has sent, reported to a progress callback as they go and
    taken back (a negative increment) when the attempt fails, so that the increments
    of a successful call always add up to its size."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self.count = 0
        self.started = False
        self.finished = False

    def add(self, n: int) -> None:
        self.count += n
        if self._progress is not None and n:
            self._progress(n)

    def rollback(self) -> None:
        if self._progress is not None and self.count:
            self._progress(-self.count)
        self.count = 0


def too_large(call: Call, size: int, limit: int, request_id: str) -> errors.ObjectTooLargeError:
    """The error for a body the gateway cut off because it is over its upload cap."""
    return errors.ObjectTooLargeError(
        f"upload of {size} bytes exceeds the gateway's {limit}-byte limit",
        status=413,
        code="too_large",
        request_id=request_id,
        method=call.method,
        url=call.safe_url,
        limit=limit,
    )


def delete_failure(uri: str, result: Any) -> errors.RefStoreError:
    """The error of a one-object delete the gateway reported as failed."""
    try:
        decode_uri(uri)
    except errors.URIParseError as exc:
        return exc
    reason = result.get("errors", {}).get(uri, "") if isinstance(result, dict) else ""
    return errors.RefStoreError(f"could not delete {uri}: {reason or 'failed'}", uri=uri)


def missing_object(uri: str) -> errors.ObjectNotFoundError:
    """The error for an ``/info`` answer with ``exists: false``."""
    return errors.ObjectNotFoundError(
        f"object not found: {uri}", uri=uri, status=404, code="object_not_found"
    )


def total_size(response: httpx.Response) -> int | None:
    """Size of the whole object: from ``Content-Range`` (``bytes a-b/N``), else the
    length of a complete (200) answer."""
    content_range = response.headers.get("content-range", "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None
