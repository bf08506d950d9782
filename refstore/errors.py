"""The RefStore exception hierarchy, and the one table of what each error means on the wire.

Every failure RefStore reports is one of these, raised (never printed and
turned into ``None``). Status is the gateway's HTTP answer; "T" marks the
transient errors that retries repeat::

    RefStoreError                        502  anything else
    ├── ConfigError                      500  invalid configuration
    ├── ConnectionError             T    503  backend unreachable, timing out or busy
    │   │                                     (also builtins.ConnectionError)
    │   ├── BusyError               T    503  the gateway is at capacity: refused unread
    │   │   └── TooManyRequestsError T   429  this key has its share in flight: refused unread
    │   └── OutcomeUnknownError     T    504  a write timed out once sent: it may have happened
    ├── NotFoundError                    404
    │   ├── ObjectNotFoundError          404  no such object (also builtins.FileNotFoundError)
    │   ├── BucketNotFoundError          404  no such bucket
    │   └── UploadNotFoundError          404  no such upload session (completed, aborted)
    │       └── UploadExpiredError       410  the upload session's time ran out
    ├── InvalidInputError                400  refused before any I/O (also ValueError)
    │   ├── URIParseError                400  not an ``s3://bucket/key`` URI
    │   ├── InvalidKeyError              400  unsafe or malformed object key, path or filename
    │   ├── InvalidBucketNameError       400  bucket name breaks the S3 naming rules
    │   ├── InvalidRangeError            416  byte range outside the object
    │   ├── InvalidPartError             400  a part missing, too small or not as listed
    │   ├── UnsafeURLError               400  ``upload_from_url`` refused the source URL
    │   └── IntegrityError               400  bytes that do not match their checksum
    ├── PermissionDeniedError            403  credentials lack the right
    │   │                                     (also builtins.PermissionError)
    │   └── AuthenticationError          401  credentials missing or wrong
    ├── ConflictError                    409  bucket not empty, stale mapping version...
    ├── ObjectTooLargeError              413  a size cap was exceeded
    ├── RequestTimeoutError              408  the client sent its body too slowly
    └── SourceError                      502  the remote source of ``upload_from_url`` failed

``FileNotFoundError`` is exported as an alias of :class:`ObjectNotFoundError`
for compatibility with refstore 0.3.0.

The table (:data:`SPECS`, one :class:`ErrorSpec` per class) is the only place
that knows statuses, wire codes, transience and S3 error codes; the gateway, the
SDK, the backends and :mod:`refstore.retry` ask it through these functions:

- :func:`spec_for` (an error or a class; the nearest registered class in its MRO),
  :func:`http_status`: what the gateway answers an error with;
- :func:`error_class_for` (a status and the answer's ``code``), built from
  :func:`class_for_code` and :func:`class_for_status`: what the SDK raises again;
- :func:`class_for_s3_code`: what an S3 error code (``NoSuchKey``...) stands for,
  used by the MinIO backend and by the SDK for presigned transfers.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any


class RefStoreError(Exception):
    """Base class of every RefStore error.

    Attributes:
        detail: Human-readable explanation.
        code: Stable machine-readable code (``"object_not_found"``...).
        context: Whatever else is known (bucket, key, and for errors answered by
            the gateway: ``status``, ``code``, ``request_id``, ``method``, ``url``).
    """

    code = "refstore_error"

    def __init__(self, detail: str = "", **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    @property
    def status(self) -> int | None:
        """HTTP status of the answer this error came from (e.g. via the gateway SDK), or None."""
        status = self.context.get("status")
        return status if isinstance(status, int) and not isinstance(status, bool) else None

    @property
    def request_id(self) -> str | None:
        """``X-Request-ID`` of the gateway request that failed (gateway SDK), or None."""
        request_id = self.context.get("request_id")
        return request_id if isinstance(request_id, str) else None


class ConfigError(RefStoreError):
    """The configuration is invalid."""

    code = "config_error"


class ConnectionError(RefStoreError, builtins.ConnectionError):  # noqa: A001
    """The storage backend could not be reached (after retries) or timed out."""

    code = "backend_unavailable"


class BusyError(ConnectionError):
    """The gateway is at capacity and refused the request before doing anything: it is
    safe to send again, even a write, after the answer's ``Retry-After``."""

    code = "busy"


class TooManyRequestsError(BusyError):
    """The caller's key already has as many requests of this kind in flight as one key
    may; refused before doing anything, like :class:`BusyError`."""

    code = "too_many_requests"


class OutcomeUnknownError(ConnectionError):
    """The backend did not answer a write in time after it was sent whole: it may or may
    not have taken effect. Repeating it is safe only for a write that is idempotent (to a
    key the caller names, a delete); the gateway SDK repeats only those."""

    code = "outcome_unknown"


class NotFoundError(RefStoreError):
    """Something addressed by the caller does not exist."""

    code = "not_found"


class ObjectNotFoundError(NotFoundError, builtins.FileNotFoundError):
    """The object does not exist."""

    code = "object_not_found"


FileNotFoundError = ObjectNotFoundError  # noqa: A001 - refstore 0.3.0 name


class BucketNotFoundError(NotFoundError):
    """The bucket does not exist."""

    code = "bucket_not_found"


class UploadNotFoundError(NotFoundError):
    """The upload session does not exist (never did, or was completed or aborted)."""

    code = "upload_not_found"


class UploadExpiredError(UploadNotFoundError):
    """The upload session's time ran out; its parts are (or will be) swept away."""

    code = "upload_expired"


class InvalidInputError(RefStoreError, ValueError):
    """The input was refused before any I/O."""

    code = "invalid_input"


class URIParseError(InvalidInputError):
    """The string is not a valid ``s3://bucket/key`` URI."""

    code = "invalid_uri"


class InvalidKeyError(InvalidInputError):
    """An object key, path or filename is malformed or unsafe."""

    code = "invalid_key"


class InvalidBucketNameError(InvalidInputError):
    """A bucket name breaks the S3 bucket naming rules."""

    code = "invalid_bucket_name"


class InvalidRangeError(InvalidInputError):
    """The requested byte range does not overlap the object."""

    code = "invalid_range"


class InvalidPartError(InvalidInputError):
    """A multipart upload cannot be completed or continued with these parts: one is
    missing, smaller than allowed, out of order or not the part that was stored."""

    code = "invalid_part"


class UnsafeURLError(InvalidInputError):
    """``upload_from_url`` refused a URL (scheme, or a non-global address)."""

    code = "unsafe_url"


class IntegrityError(InvalidInputError):
    """Bytes do not match their checksum: an upload whose declared checksum differs
    (nothing is stored), or a download whose bytes differ from the object's recorded
    checksum (no file is left). ``context`` holds ``expected`` and ``actual``."""

    code = "checksum_mismatch"


class PermissionDeniedError(RefStoreError, builtins.PermissionError):
    """The credentials are valid but not allowed to do this."""

    code = "permission_denied"


class AuthenticationError(PermissionDeniedError):
    """The credentials are missing or wrong."""

    code = "authentication_failed"


class ConflictError(RefStoreError):
    """The request conflicts with the current state (e.g. bucket not empty)."""

    code = "conflict"


class ObjectTooLargeError(RefStoreError):
    """A body or download exceeded its configured size cap."""

    code = "too_large"


class RequestTimeoutError(RefStoreError):
    """The client sent its request body too slowly (idle too long, or under the minimum
    rate); nothing was stored."""

    code = "request_timeout"


class SourceError(RefStoreError):
    """The remote source of ``upload_from_url`` failed (status, timeout, deadline)."""

    code = "source_error"


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorSpec:
    """What one error class means outside Python.

    Attributes:
        cls: The class.
        status: HTTP status the gateway answers it with.
        transient: True: worth repeating, retried by default; False: repeating cannot
            help, never retried even when the caller lists the class; None: unknown,
            retried only when the caller lists it (``exceptions=``).
        s3_codes: S3 error codes that stand for this class.
        fallback_statuses: Statuses an answer maps back to this class when it carries
            no code of a class with that status (a proxy, MinIO, the framework).
    """

    cls: type[RefStoreError]
    status: int
    transient: bool | None = False
    s3_codes: frozenset[str] = frozenset()
    fallback_statuses: frozenset[int] = frozenset()

    @property
    def code(self) -> str:
        """The wire code (``cls.code``)."""
        return self.cls.code


def _spec(
    cls: type[RefStoreError],
    status: int,
    *,
    transient: bool | None = False,
    s3_codes: tuple[str, ...] = (),
    fallback_statuses: tuple[int, ...] = (),
) -> ErrorSpec:
    return ErrorSpec(cls, status, transient, frozenset(s3_codes), frozenset(fallback_statuses))


SPECS: tuple[ErrorSpec, ...] = (
    _spec(RefStoreError, 502, transient=None),
    _spec(ConfigError, 500),
    _spec(
        ConnectionError,
        503,
        transient=True,
        s3_codes=(
            "SlowDown",
            "SlowDownWrite",
            "SlowDownRead",
            "RequestTimeout",
            "InternalError",
            "ServiceUnavailable",
            "XMinioServerNotInitialized",
            "XMinioReadQuorum",
            "XMinioWriteQuorum",
        ),
        fallback_statuses=(502, 503),
    ),
    _spec(OutcomeUnknownError, 504, transient=True, fallback_statuses=(504,)),
    _spec(BusyError, 503, transient=True),
    _spec(TooManyRequestsError, 429, transient=True, fallback_statuses=(429,)),
    _spec(NotFoundError, 404, fallback_statuses=(404,)),
    _spec(ObjectNotFoundError, 404, s3_codes=("NoSuchKey", "NoSuchObject")),
    _spec(BucketNotFoundError, 404, s3_codes=("NoSuchBucket",)),
    _spec(UploadNotFoundError, 404, s3_codes=("NoSuchUpload",)),
    _spec(UploadExpiredError, 410),
    _spec(InvalidInputError, 400, fallback_statuses=(400, 422)),
    _spec(URIParseError, 400),
    _spec(InvalidKeyError, 400, s3_codes=("KeyTooLongError", "XMinioInvalidObjectName")),
    _spec(InvalidBucketNameError, 400, s3_codes=("InvalidBucketName",)),
    _spec(InvalidRangeError, 416, s3_codes=("InvalidRange",), fallback_statuses=(416,)),
    _spec(
        InvalidPartError,
        400,
        s3_codes=("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "InvalidPartNumber"),
    ),
    _spec(UnsafeURLError, 400),
    _spec(
        IntegrityError,
        400,
        s3_codes=("BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"),
    ),
    _spec(
        PermissionDeniedError,
        403,
        s3_codes=("AccessDenied", "AllAccessDisabled"),
        fallback_statuses=(403,),
    ),
    _spec(
        AuthenticationError,
        401,
        s3_codes=("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"),
        fallback_statuses=(401,),
    ),
    _spec(
        ConflictError,
        409,
        s3_codes=(
            "BucketNotEmpty",
            "BucketAlreadyExists",
            "XMinioObjectExistsAsDirectory",
            "XMinioParentIsObject",
        ),
        fallback_statuses=(409,),
    ),
    _spec(ObjectTooLargeError, 413, s3_codes=("EntityTooLarge",), fallback_statuses=(413,)),
    _spec(RequestTimeoutError, 408, transient=None, fallback_statuses=(408,)),
    _spec(SourceError, 502, transient=None),
)
"""One entry per class of this module; a code, an S3 code or a fallback status names one class."""

_BY_CLASS = {spec.cls: spec for spec in SPECS}
_BY_CODE = {spec.code: spec.cls for spec in SPECS}
_BY_S3_CODE = {s3_code: spec.cls for spec in SPECS for s3_code in spec.s3_codes}
_BY_FALLBACK_STATUS = {status: spec.cls for spec in SPECS for status in spec.fallback_statuses}


def spec_for(error: BaseException | type[BaseException]) -> ErrorSpec:
    """The entry of ``error`` (an instance or a class): of its nearest registered class
    in MRO order, so a subclass defined elsewhere behaves as its parent.

    Raises:
        TypeError: ``error`` is not a :class:`RefStoreError`.
    """
    cls = error if isinstance(error, type) else type(error)
    for candidate in cls.__mro__:
        spec = _BY_CLASS.get(candidate)
        if spec is not None:
            return spec
    raise TypeError(f"{cls.__name__} is not a RefStoreError")


def http_status(error: RefStoreError | type[RefStoreError]) -> int:
    """The HTTP status the gateway answers ``error`` (an instance or a class) with."""
    return spec_for(error).status


def class_for_code(code: str | None, status: int | None = None) -> type[RefStoreError] | None:
    """The class whose wire code is ``code``; None when no class has it, or when
    ``status`` is given and is not that class's (a code that contradicts its status is
    not trusted)."""
    cls = _BY_CODE.get(code or "")
    if cls is None or (status is not None and _BY_CLASS[cls].status != status):
        return None
    return cls


def class_for_status(status: int) -> type[RefStoreError]:
    """The class an error answer with this status stands for when no code says more:
    the class listing it in ``fallback_statuses``, else :class:`InvalidInputError` for
    any other 4xx and :class:`RefStoreError` for the rest."""
    cls = _BY_FALLBACK_STATUS.get(status)
    if cls is not None:
        return cls
    return InvalidInputError if 400 <= status < 500 else RefStoreError


def error_class_for(status: int, code: str | None = None) -> type[RefStoreError]:
    """The class an error answer (HTTP ``status``, the body's ``code``) stands for: the
    class named by ``code`` if that class answers with ``status``, else by status.
    For every class, ``error_class_for(http_status(cls), cls.code) is cls``."""
    return class_for_code(code, status) or class_for_status(status)


def class_for_s3_code(s3_code: str | None) -> type[RefStoreError] | None:
    """The class an S3 error code (``NoSuchKey``, ``SlowDown``...) stands for, or None
    for a code the table does not know."""
    return _BY_S3_CODE.get(s3_code or "")
