"""Logical -> physical bucket mapping, as immutable snapshots swapped atomically.

Readers take :attr:`MappingHolder.current` once per operation and use only that
snapshot, so a concurrent update is seen entirely or not at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ConflictError, InvalidInputError
from .keys import validate_bucket_name


def content_hash(enabled: bool, bucket_map: Mapping[str, str]) -> str:
    """Stable hash of a mapping's content."""
    payload = json.dumps({"enabled": enabled, "map": dict(sorted(bucket_map.items()))})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True, order=False)
class MappingVersion:
    """Where a pushed mapping comes from, and which revision of it this is.

    For a BucketMapping resource: its uid, creation timestamp (RFC 3339) and
    ``metadata.generation``. Newer means a later-created source, or the same
    source with a higher generation.
    """

    source: str = ""
    uid: str = ""
    created: str = ""
    generation: int = 0

    def sort_key(self) -> tuple[str, int]:
        return (self.created, self.generation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "uid": self.uid,
            "created": self.created,
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MappingVersion:
        """Raises: InvalidInputError on a malformed version."""
        try:
            return cls(
                source=str(data.get("source", "")),
                uid=str(data.get("uid", "")),
                created=str(data.get("created", "")),
                generation=int(data.get("generation", 0)),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"malformed mapping version: {data!r}") from exc


@dataclass(frozen=True)
class BucketMap:
    """One immutable mapping snapshot.

    Attributes:
        enabled: Whether mapping applies at all (off: names are physical buckets).
        forward: logical -> physical.
        generation: Local counter, bumped by every applied change.
        version: Source version of a pushed mapping, if any.
    """

    enabled: bool = False
    forward: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    generation: int = 0
    version: MappingVersion | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "forward", MappingProxyType(dict(self.forward)))
        reverse = {physical: logical for logical, physical in self.forward.items()}
        object.__setattr__(self, "_reverse", MappingProxyType(reverse))

    @property
    def hash(self) -> str:
        return content_hash(self.enabled, self.forward)

    def physical(self, bucket: str) -> str:
        """Physical bucket for a logical (or already physical) name."""
        if not self.enabled:
            return bucket
        return self.forward.get(bucket, bucket)

    def logical(self, physical_bucket: str) -> str:
        """Logical name of a physical bucket (itself when unmapped)."""
        if not self.enabled:
            return physical_bucket
        reverse: Mapping[str, str] = object.__getattribute__(self, "_reverse")
        return reverse.get(physical_bucket, physical_bucket)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enable_bucket_mapping": self.enabled,
            "bucket_map": dict(self.forward),
            "generation": self.generation,
            "hash": self.hash,
            "version": self.version.to_dict() if self.version else None,
        }


class MappingHolder:
    """Holds the current :class:`BucketMap` and swaps it atomically."""

    def __init__(self, initial: BucketMap | None = None) -> None:
        self._current = initial or BucketMap()
        self._lock = threading.Lock()

    @property
    def current(self) -> BucketMap:
        return self._current

    def update(
        self,
        enabled: bool | None = None,
        bucket_map: Mapping[str, str] | None = None,
        version: MappingVersion | None = None,
    ) -> tuple[bool, BucketMap]:
        """Apply a new mapping; fields left ``None`` keep their current value.

        Without a version the update always applies. With one, it applies only if
        newer than the current version; an equal version is a no-op.

        Returns:
            ``(changed, snapshot now current)``.

        Raises:
            InvalidBucketNameError: a name in the map is invalid.
            InvalidInputError: mapping enabled with an empty map.
            ConflictError: the version is older than the current one, or equal with
                different content; ``context["current"]`` holds the current mapping.
        """
        for logical, physical in (bucket_map or {}).items():
            validate_bucket_name(logical)
            validate_bucket_name(physical)
        with self._lock:
            old = self._current
            new_enabled = old.enabled if enabled is None else enabled
            new_map = dict(old.forward if bucket_map is None else bucket_map)
            if new_enabled and not new_map:
                raise InvalidInputError("bucket mapping enabled with an empty bucket_map")
            if version is not None and old.version is not None:
                if version.sort_key() < old.version.sort_key():
                    raise ConflictError(
                        "mapping version is older than the current one",
                        current=old.to_dict(),
                    )
                if version.sort_key() == old.version.sort_key():
                    if content_hash(new_enabled, new_map) == old.hash:
                        return False, old
                    raise ConflictError(
                        "same mapping version with different content",
                        current=old.to_dict(),
                    )
            new = BucketMap(new_enabled, new_map, old.generation + 1, version or old.version)
            self._current = new
            return True, new
