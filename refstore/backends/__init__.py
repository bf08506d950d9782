"""Storage backends: ``minio`` (S3 servers) and ``local`` (files under a root)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, BucketInfo, DeleteFailure, ListedObject, ObjectInfo, ObjectStream

if TYPE_CHECKING:
    from ..config import StoreConfig

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
        )
    from .local import LocalBackend

    assert config.local is not None
    return LocalBackend(config.local.root, secret=config.local.secret, link_base=config.public_url)
