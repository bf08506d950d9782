"""Storage backends: ``minio`` (S3 servers) and ``local`` (files under a root)."""

from __future__ import annotations

from ..config import StoreConfig
from .base import Backend, BucketInfo, DeleteFailure, ListedObject, ObjectInfo, ObjectStream

__all__ = [
    "Backend",
    "BucketInfo",
    "DeleteFailure",
    "ListedObject",
    "ObjectInfo",
    "ObjectStream",
    "create_backend",
]


def create_backend(config: StoreConfig) -> Backend:
    """Build the backend a validated config names."""
    if config.minio is not None:
        from .minio import MinioBackend

        return MinioBackend(
            config.minio,
            part_size=config.part_size,
            max_concurrency=config.max_concurrency,
            public_url=config.public_url,
            public_endpoint=config.public_endpoint,
            checksums=config.checksum_policy,
        )
    from .local import LocalBackend

    assert config.local is not None  # StoreConfig holds exactly one backend
    secret = config.local.secret.get_secret_value() if config.local.secret else None
    return LocalBackend(
        config.local.root,
        secret=secret,
        link_base=config.public_url,
        checksums=config.checksum_policy,
    )
