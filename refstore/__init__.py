"""RefStore: object storage on MinIO made simple.

``from refstore import RefStore`` gives the synchronous library,
``AsyncRefStore`` the asynchronous one; errors live in :mod:`refstore.errors`
and are re-exported here. Importing this package never imports the gateway
(fastapi), the SDK (httpx) or the operator (kopf).
"""

import typing

from ._version import __version__
from .errors import (
    AuthenticationError,
    BucketNotFoundError,
    BusyError,
    ConfigError,
    ConflictError,
    ConnectionError,
    FileNotFoundError,
    IntegrityError,
    InvalidBucketNameError,
    InvalidInputError,
    InvalidKeyError,
    InvalidPartError,
    InvalidRangeError,
    NotFoundError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RefStoreError,
    RequestTimeoutError,
    SourceError,
    TooManyRequestsError,
    UnsafeURLError,
    UploadExpiredError,
    UploadNotFoundError,
    URIParseError,
)
from .uri import (
    decode_uri,
    encode_uri,
    get_bucket_from_uri,
    get_file_extension,
    get_object_name_from_uri,
    get_parent_uri,
    join_uri,
    normalize_uri,
    parse_filename,
    validate_uri,
)

if typing.TYPE_CHECKING:
    from .aio import AsyncBucketManager, AsyncObjectStream, AsyncRefStore
    from .backends import ObjectInfo, ObjectStream
    from .buckets import BucketManager
    from .config import StoreConfig
    from .mapping import BucketMap, MappingVersion
    from .retry import RetryHandler, is_transient, retry_with_backoff
    from .store import RefStore
    from .validator import ConfigValidator

# The store, its config and backends load on first use: the SDK (``refstore.gateway``)
# and the CLI need the errors and URIs above, not the storage layer.
_LAZY: dict[str, tuple[str, str | None]] = {
    "AsyncBucketManager": ("refstore.aio", None),
    "AsyncObjectStream": ("refstore.aio", None),
    "AsyncRefStore": ("refstore.aio", None),
    "BucketManager": ("refstore.buckets", None),
    "BucketMap": ("refstore.mapping", None),
    "ConfigValidator": ("refstore.validator", None),
    "MappingVersion": ("refstore.mapping", None),
    "ObjectInfo": ("refstore.backends", None),
    "ObjectStream": ("refstore.backends", None),
    "RefStore": ("refstore.store", None),
    "RetryHandler": ("refstore.retry", None),
    "StoreConfig": ("refstore.config", None),
    "is_transient": ("refstore.retry", None),
    "retry_with_backoff": ("refstore.retry", None),
    "web_app": ("refstore.web", "web"),
    "init_web_service": ("refstore.web", "web"),
    "GatewayClient": ("refstore.gateway", "gateway"),
    "AsyncGatewayClient": ("refstore.gateway", "gateway"),
}


def __getattr__(name: str) -> object:
    """The names of :data:`_LAZY`, imported on first use; ``web_app`` / ``init_web_service``
    need the ``web`` extra (fastapi), ``GatewayClient`` the ``gateway`` extra (httpx)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'refstore' has no attribute {name!r}")
    import importlib

    module_name, extra = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise ImportError(f"{name} needs an extra: pip install 'refstore[{extra}]'") from exc
    value = getattr(module, name)
    if extra is None:
        globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AsyncBucketManager",
    "AsyncObjectStream",
    "AsyncRefStore",
    "AuthenticationError",
    "BucketManager",
    "BucketMap",
    "BucketNotFoundError",
    "BusyError",
    "ConfigError",
    "ConfigValidator",
    "ConflictError",
    "ConnectionError",
    "FileNotFoundError",
    "IntegrityError",
    "InvalidBucketNameError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidPartError",
    "InvalidRangeError",
    "MappingVersion",
    "NotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStream",
    "ObjectTooLargeError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RefStore",
    "RefStoreError",
    "RequestTimeoutError",
    "RetryHandler",
    "SourceError",
    "StoreConfig",
    "TooManyRequestsError",
    "URIParseError",
    "UnsafeURLError",
    "UploadExpiredError",
    "UploadNotFoundError",
    "__version__",
    "decode_uri",
    "encode_uri",
    "get_bucket_from_uri",
    "get_file_extension",
    "get_object_name_from_uri",
    "get_parent_uri",
    "is_transient",
    "join_uri",
    "normalize_uri",
    "parse_filename",
    "retry_with_backoff",
    "validate_uri",
]
