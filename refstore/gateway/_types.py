"""The shapes the gateway SDK returns (plain dicts at runtime, as in refstore 0.3.0)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO, TypedDict

from typing_extensions import NotRequired

from ..progress import ProgressCallback

UploadData = bytes | bytearray | memoryview | BinaryIO
"""What ``upload_file`` accepts: bytes, or a readable binary file object (streamed)."""

ResumeCallback = Callable[[int, int], None]
"""``on_resume(parts, bytes)``: a resumed upload found that much already stored."""

__all__ = [
    "DeleteResult",
    "FileInfoResult",
    "ListResult",
    "PresignedURL",
    "ProgressCallback",
    "ResumeCallback",
    "UploadData",
    "UploadResult",
]


class UploadResult(TypedDict):
    """``{"uri", "success", "message", "size", "checksums"}``, the same for proxied and
    direct uploads (``checksums``: base64 ``crc32c`` and, where known, ``sha256``)."""

    uri: str
    success: bool
    message: str | None
    size: int | None
    checksums: NotRequired[dict[str, str] | None]


class PresignedURL(TypedDict):
    """``{"url", "uri", "expiry", "method"}``."""

    url: str
    uri: str
    expiry: int | None
    method: str


class FileInfoResult(TypedDict):
    """``{"uri", "info", "exists"}``; ``info`` is None (and ``exists`` False) when missing."""

    uri: str
    info: dict[str, Any] | None
    exists: bool


class DeleteResult(TypedDict):
    """``{"deleted", "failed", "errors"}``: missing objects count as deleted."""

    deleted: list[str]
    failed: list[str]
    errors: dict[str, str]


class ListResult(TypedDict):
    """``{"logic_bucket", "files"}``; each file has ``object_name``, ``size``, ``s3_uri``..."""

    logic_bucket: str
    files: list[dict[str, Any]]
