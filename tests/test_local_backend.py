"""The embedded local backend: atomic files, signed links, nothing outside its root."""

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from refstore import ConflictError, PermissionDeniedError, RefStore
from refstore.backends.local import LocalBackend


@pytest.fixture
def local(tmp_path):
    with RefStore({"local": {"root": str(tmp_path / "root")}, "default_bucket": "files"}) as store:
        store.init_buckets()
        yield store


def link_parts(url):
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    _, _, bucket, key = parts.path.split("/", 3)
    return bucket, unquote(key), query


def test_presigned_links_are_signed_for_one_object_and_method(local):
    uri = local.upload_file(b"x", "a b.txt", path="docs")
    bucket, key, query = link_parts(local.get_presigned_url(uri, 60))
    backend = local.backend
    backend.verify_presigned("GET", bucket, key, query["expires"], query["signature"])
    with pytest.raises(PermissionDeniedError, match="signature"):
        backend.verify_presigned("PUT", bucket, key, query["expires"], query["signature"])
    with pytest.raises(PermissionDeniedError, match="signature"):
        backend.verify_presigned(
            "GET", bucket, "docs/other.txt", query["expires"], query["signature"]
        )
    with pytest.raises(PermissionDeniedError, match="signature"):
        backend.verify_presigned(
            "GET", bucket, key, str(int(query["expires"]) + 3600), query["signature"]
        )
    with pytest.raises(PermissionDeniedError, match="malformed"):
        backend.verify_presigned("GET", bucket, key, "soon", query["signature"])


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_presigned_links_expire_after_their_expiry_seconds(local):
    clock = Clock(1_700_000_000.25)
    local.backend.clock = clock
    uri = local.upload_file(b"x", "e.txt", path="docs")
    bucket, key, query = link_parts(local.get_presigned_url(uri, 60))
    assert query["expires"] == "1700000060"
    clock.now = 1_700_000_060.0  # the link's last valid moment
    local.backend.verify_presigned("GET", bucket, key, query["expires"], query["signature"])
    clock.now = 1_700_000_060.5
    with pytest.raises(PermissionDeniedError, match="expired"):
        local.backend.verify_presigned("GET", bucket, key, query["expires"], query["signature"])


def test_the_clock_can_be_given_to_the_backend(tmp_path):
    backend = LocalBackend(tmp_path, clock=Clock(100.0))
    _, _, query = link_parts(backend.presign("PUT", "bucket", "k.txt", 5))
    assert query["expires"] == "105"


def test_links_point_at_the_public_url_when_set(tmp_path):
    config = {"local": {"root": str(tmp_path)}, "public_url": "https://files.example.com/store"}
    with RefStore(config) as store:
        store.init_buckets()
        uri = store.upload_file(b"x", "f.txt", path="p")
        assert store.get_presigned_url(uri).startswith(
            "https://files.example.com/store/presigned/default/p/f.txt?"
        )


def test_the_signing_key_persists_across_restarts(tmp_path):
    first = LocalBackend(tmp_path)
    url = first.presign("GET", "bucket", "k.txt", 60)
    second = LocalBackend(tmp_path)
    _, key, query = link_parts(url)
    second.verify_presigned("GET", "bucket", key, query["expires"], query["signature"])
    assert (tmp_path / ".refstore" / "secret").stat().st_mode & 0o077 == 0


def test_objects_stay_inside_the_root_and_temp_files_are_cleaned(local, tmp_path):
    local.upload_file(b"data", "x.txt", path="a/b")
    files = sorted(
        p.relative_to(tmp_path / "root").as_posix()
        for p in (tmp_path / "root").rglob("*")
        if p.is_file()
    )
    assert files == [".refstore/meta/files/a/b/x.txt.json", ".refstore/secret", "files/a/b/x.txt"]


def test_deleting_prunes_empty_directories(local, tmp_path):
    uri = local.upload_file(b"data", "x.txt", path="a/b")
    local.delete_file(uri)
    assert not (tmp_path / "root" / "files" / "a").exists()
    assert local.list_files(recursive=False) == []


def test_key_clashing_with_a_prefix_is_a_conflict(local):
    uri = local.upload_file(b"data", "x.txt", path="a")
    with pytest.raises(ConflictError):
        local.upload_file(b"other", "y.txt", path="a/x.txt")
    with pytest.raises(ConflictError):
        local.copy(uri, "s3://files/a")
    assert local.download_file(uri) == b"data"
