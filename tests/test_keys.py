import re

import pytest

from refstore.errors import InvalidBucketNameError, InvalidKeyError
from refstore.keys import (
    build_object_key,
    nfc,
    normalize_key,
    normalize_path,
    unquote_strict,
    validate_bucket_name,
    validate_key,
    validate_prefix,
)


def test_path_and_filename_make_the_key():
    assert build_object_key("test.txt", "tenant-a/documents") == "tenant-a/documents/test.txt"


def test_paths_are_normalised():
    assert build_object_key("a.txt", "/tenant-a//docs/") == "tenant-a/docs/a.txt"
    decomposed = "cafe\u0301"
    assert normalize_path(decomposed) == "caf\u00e9"


def test_keys_built_or_given_are_nfc():
    assert build_object_key("cafe\u0301.txt", "nin\u0303o") == "ni\u00f1o/caf\u00e9.txt"
    assert normalize_key("a/cafe\u0301") == "a/caf\u00e9" == nfc("a/cafe\u0301")
    assert build_object_key("x.e\u0301").endswith(".\u00e9")  # a generated key's extension
    with pytest.raises(InvalidKeyError):
        normalize_key("a/./b")


@pytest.mark.parametrize(
    "escaped", ["x%ff", "x%c0%ae", "x%ed%a0%80", "x%e2%82", "x%f8%88%80%80%80"]
)
def test_strict_unquoting_refuses_escapes_that_are_not_utf8(escaped):
    with pytest.raises(InvalidKeyError, match="not valid UTF-8"):
        unquote_strict(escaped.encode())


def test_strict_unquoting_keeps_valid_utf8_and_an_encoded_replacement_character():
    assert unquote_strict(b"/files/b/caf%C3%A9%20%EF%BF%BD") == "/files/b/caf\u00e9 \ufffd"
    assert unquote_strict(b"a+b") == "a+b"  # a path: '+' is itself


def test_without_path_the_key_is_dated_uuid_with_extension():
    key = build_object_key("report.PDF")
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.PDF", key)
    assert build_object_key("report.PDF") != key


def test_without_filename_extension_the_key_has_none():
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/[0-9a-f]{32}", build_object_key("README"))


@pytest.mark.parametrize(
    ("filename", "path"),
    [
        ("x.txt", "../other-tenant"),
        ("x.txt", "tenant-a/../../etc"),
        ("x.txt", "./tenant"),
        ("..", "tenant"),
        ("../x.txt", "tenant"),
        ("x.txt", "tenant\\a"),
        ("a\\b.txt", None),
        ("x\x00.txt", "tenant"),
        ("x\r\n.txt", "tenant"),
        ("x.txt", "ten\x7fant"),
        ("", "tenant"),
        ("/", "tenant"),
        ("x" * 256, "tenant"),
        ("x.txt", "/".join(["d" * 200] * 6)),
    ],
)
def test_unsafe_paths_and_filenames_are_refused(filename, path):
    with pytest.raises(InvalidKeyError):
        build_object_key(filename, path)


def test_key_of_exactly_1024_bytes_is_allowed_and_1025_is_not():
    key = "/".join(["k" * 255, "k" * 255, "k" * 255, "k" * 254, "k"])
    assert len(key.encode()) == 1024
    assert validate_key(key) == key
    with pytest.raises(InvalidKeyError):
        validate_key(key + "y")


def test_multibyte_segments_count_bytes_not_characters():
    validate_key("\u00e9" * 127)  # 254 bytes
    with pytest.raises(InvalidKeyError):
        validate_key("\u00e9" * 128)  # 256 bytes


@pytest.mark.parametrize("name", ["abc", "my-project", "a.b.c", "x" * 63, "0-9"])
def test_valid_bucket_names(name):
    assert validate_bucket_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "x" * 64,
        "My-Bucket",
        "under_score",
        "-start",
        "end-",
        "a..b",
        "a.-b",
        "10.0.0.1",
        "xn--bucket",
        "bucket-s3alias",
        "",
        "bad/name",
    ],
)
def test_invalid_bucket_names_say_why(name):
    with pytest.raises(InvalidBucketNameError, match="bucket name"):
        validate_bucket_name(name)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "tenant-a/docs/", "a/b."])
def test_listing_prefixes_may_end_anywhere(prefix):
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/etc/", "../x", "a/../b", "a/./", "a//b", "a\\b", "a\x00"])
def test_unsafe_listing_prefixes_are_refused(prefix):
    with pytest.raises(InvalidKeyError):
        validate_prefix(prefix)
