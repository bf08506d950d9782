import pytest

from refstore import (
    URIParseError,
    decode_uri,
    encode_uri,
    get_bucket_from_uri,
    get_file_extension,
    get_object_name_from_uri,
    get_parent_uri,
    join_uri,
    normalize_uri,
    parse_filename,
    validate_uri,
)


def test_encode_and_decode_round_trip_as_the_seed_documents():
    uri = encode_uri("my-bucket", "documents/report.pdf")
    assert uri == "s3://my-bucket/documents/report.pdf"
    assert decode_uri(uri) == ("my-bucket", "documents/report.pdf")
    assert get_bucket_from_uri(uri) == "my-bucket"
    assert get_object_name_from_uri(uri) == "documents/report.pdf"
    assert get_file_extension(uri) == ".pdf"
    assert validate_uri(uri) is True


def test_encode_strips_outer_slashes():
    assert encode_uri("bucket", "/a/b/") == "s3://bucket/a/b"


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "my-bucket/key",
        "http://bucket/key",
        "s3://",
        "s3://bucket",
        "s3://bucket/",
        "s3://Bucket/key",
        "s3://ab/key",
        "s3://bucket_1/key",
        "s3://192.168.1.1/key",
        "s3://bucket/../etc/passwd",
        "s3://bucket/a/./b",
        "s3://bucket/a//b",
        "s3://bucket/a\\b",
        "s3://bucket/a\x00b",
        "s3://bucket/a\nb",
        "s3://bucket/" + "x" * 1025,
        "s3://bucket/" + "y" * 256,
    ],
)
def test_invalid_uris_raise_uri_parse_error(uri):
    with pytest.raises(URIParseError):
        decode_uri(uri)
    assert validate_uri(uri) is False
    assert get_bucket_from_uri(uri) is None
    assert get_object_name_from_uri(uri) is None
    assert get_file_extension(uri) is None


def test_non_string_uri_is_a_parse_error():
    with pytest.raises(URIParseError):
        decode_uri(None)  # type: ignore[arg-type]


def test_extension_is_empty_without_a_dot_in_the_last_segment():
    assert get_file_extension("s3://bucket/dir.d/file") == ""
    assert get_file_extension("s3://bucket/archive.tar.gz") == ".gz"


def test_normalize_collapses_slashes():
    assert normalize_uri("s3://bucket//a///b/") == "s3://bucket/a/b"
    with pytest.raises(URIParseError):
        normalize_uri("s3://bucket/a/../b")


def test_join_and_parent():
    assert join_uri("s3://bucket/dir", "a/b.txt") == "s3://bucket/dir/a/b.txt"
    assert join_uri("s3://bucket/", "/x.txt") == "s3://bucket/x.txt"
    assert get_parent_uri("s3://bucket/a/b/c.txt") == "s3://bucket/a/b"
    assert get_parent_uri("s3://bucket/c.txt") == "s3://bucket/"
    assert join_uri(get_parent_uri("s3://bucket/c.txt"), "d.txt") == "s3://bucket/d.txt"
    with pytest.raises(URIParseError):
        join_uri("s3://bucket/dir", "../escape")


def test_parse_filename():
    assert parse_filename("a/b/c.txt") == ("a/b", "c.txt")
    assert parse_filename("c.txt") == ("", "c.txt")


def test_keys_of_uris_are_nfc_whichever_spelling_is_given():
    composed, decomposed = "s3://bucket/caf\u00e9/x", "s3://bucket/cafe\u0301/x"
    assert encode_uri("bucket", "cafe\u0301/x") == composed
    assert decode_uri(decomposed) == ("bucket", "caf\u00e9/x")
    assert normalize_uri("s3://bucket//cafe\u0301/x/") == composed
    assert join_uri("s3://bucket/cafe\u0301", "x") == composed
    assert get_object_name_from_uri(decomposed) == "caf\u00e9/x"


def test_a_replacement_character_is_a_key_character_like_any_other():
    assert decode_uri("s3://bucket/x\ufffd") == ("bucket", "x\ufffd")
