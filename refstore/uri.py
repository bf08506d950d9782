"""``s3://bucket/key`` URIs: the one way RefStore names an object.

Parsing is strict: the bucket must follow the S3 naming rules and the key must
pass :func:`refstore.keys.validate_key`; anything else raises
:class:`~refstore.errors.URIParseError` before any I/O. Keys are Unicode NFC
(:func:`refstore.keys.normalize_key`): the URIs of one name spelled NFC or NFD are
one URI.
"""

from __future__ import annotations

import posixpath

from .errors import InvalidInputError, URIParseError
from .keys import normalize_key, validate_bucket_name

SCHEME = "s3://"


def _split(s3_uri: str) -> tuple[str, str]:
    """Split into (bucket, raw key) without validating the key."""
    if not isinstance(s3_uri, str) or not s3_uri:
        raise URIParseError("URI must be a non-empty string", uri=s3_uri)
    if not s3_uri.startswith(SCHEME):
        raise URIParseError(f"URI must start with 's3://': {s3_uri!r}", uri=s3_uri)
    bucket, _, key = s3_uri[len(SCHEME) :].partition("/")
    try:
        validate_bucket_name(bucket)
    except InvalidInputError as exc:
        raise URIParseError(f"{exc.detail} (in URI {s3_uri!r})", uri=s3_uri) from exc
    return bucket, key


def _checked_key(key: str, s3_uri: str) -> str:
    if not key:
        raise URIParseError(f"URI has no object key: {s3_uri!r}", uri=s3_uri)
    try:
        return normalize_key(key)
    except InvalidInputError as exc:
        raise URIParseError(f"{exc.detail} (in URI {s3_uri!r})", uri=s3_uri) from exc


def _collapse(key: str) -> str:
    return "/".join(segment for segment in key.split("/") if segment)


def encode_uri(logic_bucket: str, object_name: str) -> str:
    """Build ``s3://bucket/key``, the key in NFC; its outer slashes are dropped.

    Raises:
        URIParseError: the bucket or key is invalid.
    """
    uri = f"{SCHEME}{logic_bucket}/{(object_name or '').strip('/')}"
    bucket, key = _split(uri)
    return f"{SCHEME}{bucket}/{_checked_key(key, uri)}"


def decode_uri(s3_uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``, the key in NFC.

    Raises:
        URIParseError: not an S3 URI, invalid bucket name, or unsafe/missing key.
    """
    bucket, key = _split(s3_uri)
    return bucket, _checked_key(key, s3_uri)


def validate_uri(s3_uri: str) -> bool:
    """Return whether ``s3_uri`` is a valid object URI (never raises)."""
    try:
        decode_uri(s3_uri)
    except URIParseError:
        return False
    return True


def get_bucket_from_uri(s3_uri: str) -> str | None:
    """Bucket of an object URI, or ``None`` if the URI is invalid."""
    try:
        return decode_uri(s3_uri)[0]
    except URIParseError:
        return None


def get_object_name_from_uri(s3_uri: str) -> str | None:
    """Key of an object URI, or ``None`` if the URI is invalid."""
    try:
        return decode_uri(s3_uri)[1]
    except URIParseError:
        return None


def get_file_extension(s3_uri: str) -> str | None:
    """Extension of the key's last segment (``".pdf"``), ``""`` if none, ``None`` if invalid."""
    key = get_object_name_from_uri(s3_uri)
    if key is None:
        return None
    return posixpath.splitext(key.rsplit("/", 1)[-1])[1]


def normalize_uri(s3_uri: str) -> str:
    """Collapse repeated and trailing slashes of the key: ``s3://b//a/x/`` -> ``s3://b/a/x``.

    Raises:
        URIParseError: the URI is invalid even after normalisation.
    """
    bucket, key = _split(s3_uri)
    return encode_uri(bucket, _collapse(key))


def join_uri(base_uri: str, relative_path: str) -> str:
    """Append a relative path to a bucket or prefix URI (``s3://b/dir`` + ``a.txt``).

    Raises:
        URIParseError: the base or the result is invalid (``..`` is refused, not resolved).
    """
    bucket, key = _split(base_uri)
    return encode_uri(bucket, _collapse(f"{key}/{relative_path}"))


def get_parent_uri(s3_uri: str) -> str:
    """Parent prefix of an object URI; ``s3://b/x`` -> ``s3://b/``.

    Raises:
        URIParseError: the URI is invalid.
    """
    bucket, key = decode_uri(s3_uri)
    parent = key.rpartition("/")[0]
    return f"{SCHEME}{bucket}/{parent}"


def parse_filename(object_name: str) -> tuple[str, str]:
    """Split a key into ``(directory, filename)``; directory is ``""`` at the top level."""
    directory, _, filename = object_name.rpartition("/")
    return directory, filename
