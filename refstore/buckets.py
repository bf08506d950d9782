"""BucketManager: create, inspect and delete buckets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .keys import validate_bucket_name
from .retry import RetryHandler
from .sizes import format_size

if TYPE_CHECKING:
    from .backends import Backend

_DELETE_BATCH = 1000


class BucketManager:
    """Bucket administration on a backend.

    Args:
        backend: A RefStore backend, or a ``minio.Minio`` client (as in refstore 0.3.0).
        retry: Retry policy for transient failures (default: 3 quick retries).

    Unlike refstore 0.3.0, failures raise typed errors instead of printing and
    returning ``False``/``None``.
    """

    def __init__(self, backend: Any, retry: RetryHandler | None = None) -> None:
        from minio import Minio

        if isinstance(backend, Minio):
            from .backends.minio import MinioBackend

            backend = MinioBackend.from_client(backend)
        self.backend: Backend = backend
        self._retry = retry or RetryHandler(max_retries=3, base_delay=0.2, max_delay=5.0)

    def create_bucket(self, bucket_name: str, location: str | None = None) -> bool:
        """Create a bucket if it does not exist; returns True.

        Raises:
            InvalidBucketNameError: the name breaks the S3 rules.
            ConnectionError: the backend is unreachable.
        """
        validate_bucket_name(bucket_name)
        if not self._retry.execute(self.backend.bucket_exists, bucket_name):
            self._retry.execute(self.backend.make_bucket, bucket_name, location)
        return True

    def bucket_exists(self, bucket_name: str) -> bool:
        """Whether the bucket exists.

        Raises:
            InvalidBucketNameError, ConnectionError.
        """
        validate_bucket_name(bucket_name)
        return self._retry.execute(self.backend.bucket_exists, bucket_name)

    def list_buckets(self) -> list[dict[str, Any]]:
        """``[{"name": ..., "creation_date": ...}, ...]``.

        Raises:
            ConnectionError: the backend is unreachable.
        """
        return [
            {"name": b.name, "creation_date": b.creation_date}
            for b in self._retry.execute(self.backend.list_buckets)
        ]

    def get_bucket_info(self, bucket_name: str) -> dict[str, Any]:
        """Name, object count and total size (counted by streaming the listing).

        Raises:
            BucketNotFoundError: no such bucket (refstore 0.3.0 returned ``None``).
        """
        validate_bucket_name(bucket_name)
        count = total = 0
        for listed in self.backend.list_objects(bucket_name, "", recursive=True):
            count += 1
            total += listed.size
        return {
            "name": bucket_name,
            "exists": True,
            "object_count": count,
            "total_size": total,
            "total_size_human": format_size(total),
        }

    def delete_bucket(self, bucket_name: str, force: bool = False) -> bool:
        """Delete a bucket; with ``force``, delete its objects first (batch API).

        Deleting a missing bucket succeeds. Returns True.

        Raises:
            ConflictError: the bucket is not empty and ``force`` is False.
            ConnectionError: the backend is unreachable.
        """
        if not self.bucket_exists(bucket_name):
            return True
        if force:
            self.clear_bucket(bucket_name)
        self._retry.execute(self.backend.remove_bucket, bucket_name)
        return True

    def clear_bucket(self, bucket_name: str) -> int:
        """Delete every object in the bucket; returns how many were deleted.

        Raises:
            RefStoreError: an object could not be deleted.
        """
        deleted = 0
        batch: list[str] = []
        for listed in self.backend.list_objects(bucket_name, "", recursive=True):
            batch.append(listed.key)
            if len(batch) == _DELETE_BATCH:
                deleted += self._delete_batch(bucket_name, batch)
                batch = []
        if batch:
            deleted += self._delete_batch(bucket_name, batch)
        return deleted

    def _delete_batch(self, bucket_name: str, keys: list[str]) -> int:
        failures = self._retry.execute(self.backend.delete_objects, bucket_name, keys)
        if failures:
            raise failures[0].error
        return len(keys)
