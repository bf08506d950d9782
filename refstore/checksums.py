"""Object checksums: CRC32C (every object) and SHA-256, computed while bytes stream.

Values are base64 of the digest's big-endian bytes, as S3's ``x-amz-checksum-crc32c``
and ``x-amz-checksum-sha256`` carry them; the same bytes go in RFC 9530's
``Content-Digest`` / ``Repr-Digest`` dictionaries as ``crc32c`` and ``sha-256``.
CRC32C is the one every path can keep (MinIO stores it natively and checks each
part; for a multipart object it is the full object's CRC, as S3's ``FULL_OBJECT``
type defines it); SHA-256 is computed too, and kept where it is known before the
object is created (metadata is fixed when a multipart upload starts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import crc32c as _crc32c
import http_sf

from . import errors

CRC32C = "crc32c"
SHA256 = "sha256"
ALGORITHMS = (CRC32C, SHA256)
DIGEST_NAMES = {CRC32C: "crc32c", SHA256: "sha-256"}
"""RFC 9530 names (the IANA Hash Algorithms for HTTP Digest Fields registry)."""
S3_HEADERS = {CRC32C: "x-amz-checksum-crc32c", SHA256: "x-amz-checksum-sha256"}
METADATA_KEYS = {CRC32C: "refstore-crc32c", SHA256: "refstore-sha256"}
"""User-metadata names the checksums are also kept under (``x-amz-meta-...`` on S3)."""
_SIZES = {CRC32C: 4, SHA256: 32}
CHECKSUM_MODE: Mapping[str, str] = {"x-amz-checksum-mode": "ENABLED"}
"""Request header that asks MinIO to answer an object's stored checksum (with its bytes
or its metadata; also through a presigned GET)."""


@dataclass(frozen=True)
class Checksums:
    """Base64 checksums by algorithm (``crc32c``, ``sha256``); absent ones are unknown."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values)

    def get(self, algorithm: str) -> str | None:
        return self.values.get(algorithm)

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def mismatches(self, actual: Checksums) -> list[str]:
        """Algorithms both know whose values differ."""
        return [
            name
            for name, value in self.values.items()
            if actual.get(name) is not None and actual.get(name) != value
        ]

    def check(self, actual: Checksums, what: str) -> None:
        """Raises: IntegrityError when a checksum of ``self`` (expected) differs in ``actual``."""
        wrong = self.mismatches(actual)
        if wrong:
            detail = ", ".join(f"{n} {actual.get(n)} (expected {self.get(n)})" for n in wrong)
            raise errors.IntegrityError(
                f"{what}: the bytes do not match their checksum: {detail}",
                expected=self.as_dict(),
                actual=actual.as_dict(),
            )

    def metadata(self) -> dict[str, str]:
        """The user metadata that records these checksums."""
        return {METADATA_KEYS[name]: value for name, value in self.values.items()}

    def digest_header(self) -> str:
        """An RFC 9530 dictionary (``crc32c=:...:, sha-256=:...:``)."""
        return str(
            http_sf.ser(
                {
                    DIGEST_NAMES[name]: (base64.b64decode(value), {})
                    for name, value in sorted(self.values.items())
                }
            )
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], prefix: str = "") -> Checksums:
        """The checksums recorded in user metadata (``prefix``: ``x-amz-meta-`` when
        ``metadata`` holds an answer's headers)."""
        lowered = {
            k.lower()[len(prefix) :]: v for k, v in metadata.items() if k.lower().startswith(prefix)
        }
        return cls(
            {
                name: lowered[key]
                for name, key in METADATA_KEYS.items()
                if _valid(name, lowered.get(key))
            }
        )

    def merged(self, other: Checksums) -> Checksums:
        """These values, with ``other``'s for the algorithms these lack."""
        return Checksums({**other.values, **self.values})


class Hasher:
    """CRC32C and SHA-256 of the bytes fed to it so far (either can be left out)."""

    def __init__(self, sha256: bool = True, crc32c: bool = True) -> None:
        self._crc: int | None = 0 if crc32c else None
        self._sha = hashlib.sha256() if sha256 else None
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._crc is not None:
            self._crc = _crc32c.crc32c(data, self._crc)
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)

    def result(self) -> Checksums:
        values = {}
        if self._crc is not None:
            values[CRC32C] = crc32c_value(self._crc)
        if self._sha is not None:
            values[SHA256] = base64.b64encode(self._sha.digest()).decode("ascii")
        return Checksums(values)


@dataclass(frozen=True)
class ChecksumPolicy:
    """Which checksums uploads compute and record: CRC32C and SHA-256 by default
    (SHA-256 costs about 9x the CPU of CRC32C per byte). A checksum a caller declares is
    computed and checked whatever the policy."""

    crc32c: bool = True
    sha256: bool = True

    def hasher(self, expected: Checksums | None = None) -> Hasher:
        declared = expected.values if expected is not None else {}
        return Hasher(
            sha256=self.sha256 or SHA256 in declared, crc32c=self.crc32c or CRC32C in declared
        )

    def part_hasher(self, expected: Checksums | None = None) -> Hasher:
        """For one part of a multipart upload: its CRC32C (what the part is recorded and
        checked with), and what a caller declares; a SHA-256 of a part alone serves
        nothing (the object's is computed when the parts are joined, where it can be)."""
        declared = expected.values if expected is not None else {}
        return Hasher(sha256=SHA256 in declared, crc32c=self.crc32c or CRC32C in declared)


DEFAULT_POLICY = ChecksumPolicy()


def crc32c_value(crc: int) -> str:
    """A CRC32C as S3 writes it: base64 of its 4 big-endian bytes."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def crc32c_of(data: bytes | bytearray | memoryview) -> str:
    return crc32c_value(_crc32c.crc32c(data))


def sha256_of(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _valid(algorithm: str, value: str | None) -> bool:
    if value is None:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == _SIZES[algorithm]
    except (binascii.Error, ValueError):
        return False


def from_headers(
    headers: Mapping[str, str], *, digest_field: str | None = "content-digest"
) -> Checksums:
    """The checksums a request or answer declares: ``x-amz-checksum-crc32c`` /
    ``-sha256``, and the RFC 9530 field ``digest_field`` (``Content-Digest`` of a
    request, ``Repr-Digest`` of an answer). Algorithms RefStore does not compute are
    ignored.

    Raises:
        InvalidInputError: a malformed value, or two values of one algorithm that differ.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    found: dict[str, str] = {}
    for name, header in S3_HEADERS.items():
        value = lowered.get(header)
        if value is not None:
            if not _valid(name, value.strip()):
                raise errors.InvalidInputError(f"{header} is not a base64 {name} checksum")
            found[name] = value.strip()
    field_value = lowered.get(digest_field) if digest_field else None
    if field_value:
        try:
            parsed = http_sf.parse(field_value.encode("latin-1"), tltype="dictionary")
        except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError) as exc:
            raise errors.InvalidInputError(
                f"{digest_field} is not an RFC 9530 dictionary (e.g. sha-256=:<base64>:)"
            ) from exc
        members = cast(dict[str, tuple[Any, Any]], parsed) if isinstance(parsed, dict) else {}
        for name, digest_name in DIGEST_NAMES.items():
            if digest_name not in members:
                continue
            raw = members[digest_name][0]
            if not isinstance(raw, bytes) or len(raw) != _SIZES[name]:
                raise errors.InvalidInputError(f"{digest_field}: {digest_name} is not a digest")
            value = base64.b64encode(raw).decode("ascii")
            if found.get(name, value) != value:
                raise errors.InvalidInputError(f"two different {name} checksums were declared")
            found[name] = value
    return Checksums(found)


def as_checksums(value: Checksums | Mapping[str, str] | None) -> Checksums | None:
    """Expected checksums as callers give them: None, a :class:`Checksums`, or a
    mapping of algorithm (``crc32c``, ``sha256``) to base64 value.

    Raises:
        InvalidInputError: an unknown algorithm or a malformed value.
    """
    if value is None or isinstance(value, Checksums):
        return value or None
    for name, given in value.items():
        if name not in ALGORITHMS:
            raise errors.InvalidInputError(
                f"unknown checksum algorithm {name!r} (known: {', '.join(ALGORITHMS)})"
            )
        if not _valid(name, given):
            raise errors.InvalidInputError(f"{name} checksum {given!r} is not base64 of a digest")
    return Checksums(dict(value)) or None
