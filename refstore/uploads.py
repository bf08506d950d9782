"""Multipart uploads: one object sent as numbered parts that can be retried, sent in
parallel and resumed, and that becomes visible whole on completion or not at all.

:class:`MultipartUpload` names one upload in progress; :func:`choose_part_size` picks a
part size within S3's limits (5 MiB..5 GiB per part, at most 10,000 parts).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .backends.base import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from .sizes import format_size
from .uri import encode_uri

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB


@dataclass(frozen=True)
class MultipartUpload:
    """An upload in progress of ``bucket/key`` (the physical bucket).

    Attributes:
        upload_id: The backend's id of the upload.
        part_size: Bytes of every part but the last.
        size: The object's size when it was announced, else None.
    """

    bucket: str
    key: str
    upload_id: str
    part_size: int
    size: int | None = None

    @property
    def uri(self) -> str:
        return encode_uri(self.bucket, self.key)

    @property
    def part_count(self) -> int | None:
        """How many parts an object of the announced size has (None: size unknown)."""
        if self.size is None:
            return None
        return max(1, -(-self.size // self.part_size))

    def part_range(self, number: int) -> tuple[int, int]:
        """(offset, length) of part ``number`` of an object of the announced size.

        Raises:
            InvalidPartError: the part lies beyond the announced size.
        """
        count = self.part_count
        if count is None or not 1 <= number <= count:
            raise errors.InvalidPartError(f"part {number} lies outside this upload's size")
        assert self.size is not None
        offset = (number - 1) * self.part_size
        return offset, min(self.part_size, self.size - offset)


def choose_part_size(
    size: int | None, requested: int | None = None, *, largest: int = MAX_PART_SIZE
) -> int:
    """The part size of an upload of ``size`` bytes (None: unknown): ``requested`` or
    :data:`DEFAULT_PART_SIZE`, raised (in whole MiB) until the object fits in
    MAX_PARTS parts; at most ``largest``.

    Raises:
        InvalidInputError: ``requested`` is outside MIN_PART_SIZE..``largest``.
        ObjectTooLargeError: ``size`` does not fit in MAX_PARTS parts of ``largest``.
    """
    if requested is not None and not MIN_PART_SIZE <= requested <= largest:
        raise errors.InvalidInputError(
            f"part_size must be {format_size(MIN_PART_SIZE)} to {format_size(largest)}, "
            f"got {requested}"
        )
    part_size = requested or DEFAULT_PART_SIZE
    if size is None:
        return min(part_size, largest)
    if size < 0:
        raise errors.InvalidInputError(f"size must not be negative, got {size}")
    needed = -(-size // MAX_PARTS)
    if needed > part_size:
        part_size = -(-needed // MiB) * MiB
    if part_size > largest:
        raise errors.ObjectTooLargeError(
            f"{format_size(size)} does not fit in {MAX_PARTS} parts of at most "
            f"{format_size(largest)}"
        )
    return part_size
