"""RefStore: object storage on MinIO made simple.

``from refstore import RefStore`` gives the synchronous library,
``AsyncRefStore`` the asynchronous one; errors live in :mod:`refstore.errors`
and are re-exported here. Importing this package never imports the gateway
(fastapi), the SDK (httpx) or the operator (kopf).
"""

from .aio import AsyncBucketManager, AsyncObjectStream, AsyncRefStore
from .backends import ObjectInfo, ObjectStream
from .buckets import BucketManager
from .config import ConfigValidator, StoreConfig
from .errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigError,
    ConflictError,
    ConnectionError,
    FileNotFoundError,
    InvalidBucketNameError,
    InvalidInputError,
    InvalidKeyError,
    InvalidRangeError,
    NotFoundError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PermissionDeniedError,
    RefStoreError,
    SourceError,
    UnsafeURLError,
    URIParseError,
)
from .mapping import BucketMap, MappingVersion
from .retry import RetryHandler, is_transient, retry_with_backoff
from .store import RefStore
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

__version__ = "0.4.0.dev0"

_LAZY = {
    "web_app": ("refstore.web", "web"),
    "init_web_service": ("refstore.web", "web"),
    "GatewayClient": ("refstore.gateway", "gateway"),
    "AsyncGatewayClient": ("refstore.gateway", "gateway"),
}


def __getattr__(name: str) -> object:
    """``refstore.web_app`` / ``init_web_service`` (need fastapi) and ``GatewayClient`` /
    ``AsyncGatewayClient`` (need httpx), imported on first use."""
    if name in _LAZY:
        import importlib

        module_name, extra = _LAZY[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"{name} needs an extra: pip install 'refstore[{extra}]'") from exc
        return getattr(module, name)
    raise AttributeError(f"module 'refstore' has no attribute {name!r}")


__all__ = [
    "AsyncBucketManager",
    "AsyncObjectStream",
    "AsyncRefStore",
    "AuthenticationError",
    "BucketManager",
    "BucketMap",
    "BucketNotFoundError",
    "ConfigError",
    "ConfigValidator",
    "ConflictError",
    "ConnectionError",
    "FileNotFoundError",
    "InvalidBucketNameError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidRangeError",
    "MappingVersion",
    "NotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStream",
    "ObjectTooLargeError",
    "PermissionDeniedError",
    "RefStore",
    "RefStoreError",
    "RetryHandler",
    "SourceError",
    "StoreConfig",
    "URIParseError",
    "UnsafeURLError",
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
