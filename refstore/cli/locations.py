"""``s3://`` locations as the CLI takes them: an object, or a bucket and a prefix."""

from __future__ import annotations

from pathlib import Path

from .. import errors
from ..keys import validate_bucket_name, validate_prefix

SCHEME = "s3://"


def split_location(text: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket`` or ``s3://bucket/any/prefix``.

    Raises:
        URIParseError: not an ``s3://`` location, or an invalid bucket or prefix.
    """
    if not text.startswith(SCHEME):
        raise errors.URIParseError(f"expected s3://bucket[/key], got {text!r}", uri=text)
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    try:
        return validate_bucket_name(bucket), validate_prefix(prefix)
    except errors.InvalidInputError as exc:
        raise errors.URIParseError(f"{exc.detail} (in {text!r})", uri=text) from exc


def folder_prefix(prefix: str) -> str:
    """The listing prefix of a "folder": ``docs`` and ``docs/`` both mean ``docs/``,
    so ``docs2/`` is not included; the empty prefix is the whole bucket."""
    stripped = prefix.rstrip("/")
    return f"{stripped}/" if stripped else ""


def join_key(prefix: str, name: str) -> str:
    """``prefix/name`` without doubled slashes."""
    stripped = prefix.rstrip("/")
    return f"{stripped}/{name}" if stripped else name


def local_path_for(root: Path, relative_key: str) -> Path:
    """Where an object listed under a folder goes below ``root``.

    Raises:
        InvalidKeyError: the key would land outside ``root`` (``..``, absolute).
    """
    parts = [part for part in relative_key.split("/") if part]
    if not parts or any(part in (".", "..") or "\\" in part for part in parts):
        raise errors.InvalidKeyError(
            f"refusing to write object key {relative_key!r} outside {root}", key=relative_key
        )
    return root.joinpath(*parts)
