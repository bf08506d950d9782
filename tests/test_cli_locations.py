"""How the CLI reads s3:// locations and where downloaded keys land (no I/O)."""

from pathlib import Path

import pytest

from refstore.cli.locations import folder_prefix, join_key, local_path_for, split_location
from refstore.errors import InvalidKeyError, URIParseError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/docs", ("bucket", "docs")),
        ("s3://bucket/docs/", ("bucket", "docs/")),
        ("s3://bucket/a/b.txt", ("bucket", "a/b.txt")),
    ],
)
def test_split_location_gives_bucket_and_prefix(text, expected):
    assert split_location(text) == expected


@pytest.mark.parametrize(
    "text", ["bucket/key", "http://bucket/key", "s3://", "s3://Bad_Bucket/x", "s3://bkt/a/../b"]
)
def test_split_location_refuses_what_is_not_a_safe_location(text):
    with pytest.raises(URIParseError):
        split_location(text)


def test_a_folder_is_its_name_with_one_slash():
    assert folder_prefix("docs") == folder_prefix("docs/") == "docs/"
    assert folder_prefix("") == ""
    assert join_key("docs/", "a.txt") == join_key("docs", "a.txt") == "docs/a.txt"
    assert join_key("", "a.txt") == "a.txt"


def test_downloaded_keys_stay_below_the_target_directory(tmp_path: Path):
    assert local_path_for(tmp_path, "sub/a.txt") == tmp_path / "sub" / "a.txt"
    assert local_path_for(tmp_path, "sub//a.txt") == tmp_path / "sub" / "a.txt"
    for key in ("../escape.txt", "sub/../../x", "./a", "a\\..\\b", "", "/"):
        with pytest.raises(InvalidKeyError):
            local_path_for(tmp_path, key)
