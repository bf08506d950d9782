"""Validation and construction of bucket names and object keys.

Everything here runs before any I/O, so unsafe input never reaches a backend.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
import uuid
from datetime import datetime, timezone
from urllib.parse import unquote_to_bytes

from .errors import InvalidBucketNameError, InvalidKeyError

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255

_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", ".mrap")


def validate_bucket_name(name: str) -> str:
    """Check a bucket name against the S3 naming rules.

    Raises:
        InvalidBucketNameError: the name breaks a rule; the message says which.
    """
    if not isinstance(name, str) or not name:
        raise InvalidBucketNameError("bucket name must be a non-empty string", bucket=name)
    problem = None
    if not 3 <= len(name) <= 63:
        problem = "must be 3 to 63 characters long"
    elif not _BUCKET_CHARS.match(name):
        problem = (
            "may contain only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain '..', '.-' or '-.'"
    elif name.startswith(_RESERVED_BUCKET_PREFIXES) or name.endswith(_RESERVED_BUCKET_SUFFIXES):
        problem = "uses a prefix or suffix reserved by S3"
    elif _is_ip_address(name):
        problem = "must not be formatted as an IP address"
    if problem:
        raise InvalidBucketNameError(f"invalid bucket name {name!r}: {problem}", bucket=name)
    return name


def _is_ip_address(name: str) -> bool:
    if not name.replace(".", "").isdigit():  # the common case, without parsing
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def unquote_strict(raw: bytes) -> str:
    """Percent-decode part of a URL (a path, a query value) as UTF-8, strictly.

    Servers decode leniently, putting U+FFFD in place of what is not UTF-8, so that
    ``x%ff`` and ``x%fe`` would name one object; here that is an error. A U+FFFD sent
    as its UTF-8 (``%EF%BF%BD``) is a character like any other.

    Raises:
        InvalidKeyError: the escapes are not UTF-8 (a lone or overlong byte sequence,
            a surrogate, a truncated character).
    """
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = raw[:64].decode("ascii", "backslashreplace")
        raise InvalidKeyError(f"percent-escapes are not valid UTF-8: {shown!r}") from exc


def nfc(text: str) -> str:
    """``text`` in Unicode NFC, the one form of every key, path and filename.

    Every key RefStore builds or is given is put in this form, so a name typed on
    systems that spell it differently (NFD on macOS, NFC elsewhere) is one object.
    """
    return unicodedata.normalize("NFC", text)


def normalize_key(key: str) -> str:
    """An object key in NFC (:func:`nfc`), checked by :func:`validate_key`.

    Raises:
        InvalidKeyError: the key is unsafe or too long.
    """
    return validate_key(nfc(key) if isinstance(key, str) else key)


def validate_key(key: str) -> str:
    """Check an object key: non-empty segments, no ``.``/``..``, no control characters.

    Raises:
        InvalidKeyError: the key is unsafe or too long; the message says why.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("object key must be a non-empty string", key=key)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes", key=key[:64])
    for segment in key.split("/"):
        _check_segment(segment, key)
    return key


def _check_segment(segment: str, whole: str) -> None:
    if segment == "":
        raise InvalidKeyError(f"empty path segment ('//' or a leading/trailing '/') in {whole!r}")
    if segment in (".", ".."):
        raise InvalidKeyError(f"'{segment}' segments are not allowed: {whole!r}", key=whole)
    if _CONTROL_CHARS.search(segment):
        raise InvalidKeyError(f"control characters are not allowed: {whole!r}", key=whole)
    if "\\" in segment:
        raise InvalidKeyError(f"backslashes are not allowed: {whole!r}", key=whole)
    try:
        encoded = segment.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"not valid UTF-8 text: {whole!r}", key=whole) from exc
    if len(encoded) > MAX_SEGMENT_BYTES:
        raise InvalidKeyError(
            f"path segment longer than {MAX_SEGMENT_BYTES} bytes: {segment[:32]!r}...", key=whole
        )


def normalize_path(path: str | None) -> str:
    """Normalise a user-given directory path: NFC, no leading/trailing or doubled '/'.

    ``..`` and ``.`` segments are refused, not resolved.

    Raises:
        InvalidKeyError: the path is unsafe.
    """
    if path is None:
        return ""
    if not isinstance(path, str):
        raise InvalidKeyError(f"path must be a string, not {type(path).__name__}")
    if "\\" in path:
        raise InvalidKeyError(f"backslashes are not allowed: {path!r}", key=path)
    if _CONTROL_CHARS.search(path):
        raise InvalidKeyError(f"control characters are not allowed: {path!r}", key=path)
    segments = [s for s in nfc(path).split("/") if s]
    for segment in segments:
        _check_segment(segment, path)
    return "/".join(segments)


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: like a key, but may be empty or end mid-segment or with '/'.

    Returns:
        The prefix in NFC, the form of every key, so that it finds what it spells.

    Raises:
        InvalidKeyError: a '.' or '..' segment, a backslash or a control character.
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix must be a string, not {type(prefix).__name__}")
    if "\\" in prefix or _CONTROL_CHARS.search(prefix):
        raise InvalidKeyError(f"unsafe listing prefix: {prefix!r}", key=prefix)
    segments = prefix.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise InvalidKeyError(f"'.' and '..' segments are not allowed: {prefix!r}", key=prefix)
    if "" in segments[:-1]:
        raise InvalidKeyError(f"empty path segment in prefix {prefix!r}", key=prefix)
    return nfc(prefix)


def normalize_filename(filename: str | None) -> str:
    """Normalise an original filename (NFC; sub-directories allowed, checked like a path).

    Raises:
        InvalidKeyError: the filename is empty or unsafe.
    """
    normalized = normalize_path(filename)
    if not normalized:
        raise InvalidKeyError(f"filename must not be empty: {filename!r}")
    return normalized


def build_object_key(original_filename: str | None, path: str | None = None) -> str:
    """Object key for an upload: ``path/filename``, or ``YYYY/MM/DD/<uuid4 hex><ext>``.

    Raises:
        InvalidKeyError: the path or filename is unsafe, or the key too long.
    """
    directory = normalize_path(path)
    if directory:
        return normalize_key(f"{directory}/{normalize_filename(original_filename)}")
    extension = ""
    if original_filename:
        extension = os.path.splitext(normalize_filename(original_filename))[1]
    date = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    return normalize_key(f"{date}/{uuid.uuid4().hex}{extension}")
