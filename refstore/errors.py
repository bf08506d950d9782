"""The RefStore exception hierarchy.

Every failure RefStore reports is one of these, raised (never printed and
turned into ``None``)::

    RefStoreError
    ├── ConfigError                      invalid configuration
    ├── ConnectionError                  backend unreachable or timing out
    │                                    (also builtins.ConnectionError)
    ├── NotFoundError
    │   ├── ObjectNotFoundError          no such object (also builtins.FileNotFoundError)
    │   └── BucketNotFoundError          no such bucket
    ├── InvalidInputError                refused before any I/O (also ValueError)
    │   ├── URIParseError                not an ``s3://bucket/key`` URI
    │   ├── InvalidKeyError              unsafe or malformed object key, path or filename
    │   ├── InvalidBucketNameError       bucket name breaks the S3 naming rules
    │   ├── InvalidRangeError            byte range outside the object
    │   └── UnsafeURLError               ``upload_from_url`` refused the source URL
    ├── PermissionDeniedError            credentials lack the right (also builtins.PermissionError)
    │   └── AuthenticationError          credentials missing or wrong
    ├── ConflictError                    state conflict (bucket not empty, stale mapping version)
    ├── ObjectTooLargeError              a size cap was exceeded
    └── SourceError                      the remote source of ``upload_from_url`` failed

``FileNotFoundError`` is exported as an alias of :class:`ObjectNotFoundError`
for compatibility with refstore 0.3.0.
"""

from __future__ import annotations

import builtins
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


class UnsafeURLError(InvalidInputError):
    """``upload_from_url`` refused a URL (scheme, or a non-global address)."""

    code = "unsafe_url"


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


class SourceError(RefStoreError):
    """The remote source of ``upload_from_url`` failed (status, timeout, deadline)."""

    code = "source_error"


HTTP_STATUS_BY_ERROR: tuple[tuple[type[RefStoreError], int], ...] = (
    (InvalidRangeError, 416),
    (InvalidInputError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ObjectTooLargeError, 413),
    (ConnectionError, 503),
    (SourceError, 502),
    (ConfigError, 500),
    (RefStoreError, 502),
)
"""HTTP status of each error class, most specific first (the first match wins): the
gateway answers with it and the SDK maps it back to the same class."""
