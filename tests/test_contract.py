"""Behaviour every backend must show; each test runs on MinIO and on the local backend."""

import io
import os
import re
import shutil
import urllib.request
from datetime import datetime, timezone
from types import GeneratorType

import pytest

from refstore import (
    BucketNotFoundError,
    ConflictError,
    InvalidBucketNameError,
    InvalidInputError,
    InvalidKeyError,
    InvalidRangeError,
    ObjectNotFoundError,
    RefStore,
    UnsafeURLError,
    URIParseError,
)

MiB = 1024 * 1024


class OneWayStream(io.RawIOBase):
    """A non-seekable stream of unknown length, served in small reads."""

    def __init__(self, data: bytes, read_size: int = 64 * 1024) -> None:
        self._data = io.BytesIO(data)
        self._read_size = read_size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(self._read_size, size) if size >= 0 else self._read_size)


def test_upload_with_path_keeps_the_filename(store):
    uri = store.upload_file(
        b"Hello, RefStore!", "test.txt", "text/plain", path="tenant-a/documents"
    )
    assert uri == f"s3://{store.default_bucket}/tenant-a/documents/test.txt"
    assert store.download_file(uri) == b"Hello, RefStore!"


def test_upload_without_path_uses_a_dated_uuid_key(store):
    today = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    uri = store.upload_file(b"x", "report.pdf")
    assert re.fullmatch(rf"s3://{store.default_bucket}/{today}/[0-9a-f]{{32}}\.pdf", uri)


def test_uploading_again_to_the_same_key_overwrites(store):
    first = store.upload_file(b"one", "same.txt", path="p")
    second = store.upload_file(b"two", "same.txt", path="p")
    assert first == second
    assert store.download_file(first) == b"two"


def test_empty_object_round_trips(store):
    uri = store.upload_file(b"", "empty.bin", path="p")
    assert store.download_file(uri) == b""
    assert store.get_file_info(uri)["size"] == 0


def test_stream_of_unknown_length_goes_up_in_parts(store):
    data = os.urandom(12 * MiB + 123)
    uri = store.upload_file(OneWayStream(data), "big.bin", path="streams")
    assert store.get_file_info(uri)["size"] == len(data)
    assert store.download_file(uri) == data


def test_iterable_of_chunks_is_uploaded(store):
    chunks = [os.urandom(100_000) for _ in range(7)]
    uri = store.upload_file(iter(chunks), "chunks.bin", path="streams")
    assert store.download_file(uri) == b"".join(chunks)


def test_seekable_stream_is_uploaded_from_its_current_position(store):
    stream = io.BytesIO(b"HEADER:payload")
    stream.seek(7)
    uri = store.upload_file(stream, "rest.txt", path="p")
    assert store.download_file(uri) == b"payload"


def test_progress_reports_every_byte(store):
    seen = []
    data = os.urandom(3 * MiB)
    store.upload_file(io.BytesIO(data), "p.bin", path="p", progress=seen.append)
    assert sum(seen) == len(data)


def test_content_type_and_metadata_round_trip(store):
    uri = store.upload_file(
        b"{}", "a.json", "application/json", path="p", metadata={"owner": "team-a"}
    )
    info = store.get_file_info(uri)
    assert info["content_type"] == "application/json"
    assert info["metadata"] == {"owner": "team-a"}
    assert info["size"] == 2 and info["size_human"] == "2.00 B"
    assert info["physical_bucket"] == info["logic_bucket"] == store.default_bucket
    assert info["object_name"] == "p/a.json"
    assert info["etag"]
    assert isinstance(info["last_modified"], datetime)


def test_upload_from_local_keeps_name_and_guesses_type(store, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG....")
    uri = store.upload_from_local(str(path), path="imgs")
    assert uri.endswith("/imgs/photo.png")
    assert store.get_file_info(uri)["content_type"] == "image/png"


def test_upload_from_missing_local_file_raises_builtin_file_not_found(store, tmp_path):
    with pytest.raises(FileNotFoundError):
        store.upload_from_local(tmp_path / "missing.txt")


def test_open_streams_chunks_and_ranges(store):
    data = os.urandom(3 * MiB + 17)
    uri = store.upload_file(data, "r.bin", path="p")
    with store.open(uri) as stream:
        chunks = list(stream)
        assert stream.info.size == len(data)
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= MiB
    with store.open(uri, offset=MiB, length=100) as stream:
        assert stream.read() == data[MiB : MiB + 100]
    assert store.download_file(uri, offset=len(data) - 5) == data[-5:]
    assert (
        b"".join(store.iter_file(uri, offset=10, length=MiB, chunk_size=4096))
        == data[10 : 10 + MiB]
    )


def test_file_like_reads_work_with_stdlib_helpers(store):
    data = os.urandom(200_000)
    uri = store.upload_file(data, "f.bin", path="p")
    out = io.BytesIO()
    with store.open(uri) as stream:
        assert stream.read(10) == data[:10]
        shutil.copyfileobj(stream, out)
    assert out.getvalue() == data[10:]


def test_range_beyond_the_end_is_refused(store):
    uri = store.upload_file(b"short", "s.txt", path="p")
    with pytest.raises(InvalidRangeError):
        store.download_file(uri, offset=100)
    with pytest.raises(InvalidRangeError):
        store.download_file(uri, offset=-1)


def test_missing_object_raises_not_found_everywhere(store):
    uri = f"s3://{store.default_bucket}/no/such/object.txt"
    for call in (store.download_file, store.get_file_info, store.open):
        with pytest.raises(ObjectNotFoundError) as info:
            call(uri)
        assert isinstance(info.value, FileNotFoundError)
    assert store.file_exists(uri) is False


def test_file_exists_is_true_for_an_uploaded_object(store):
    uri = store.upload_file(b"x", "here.txt", path="p")
    assert store.file_exists(uri) is True


def test_invalid_uris_raise_parse_errors_before_io(store):
    for uri in ("not-a-uri", "s3://Bad_Bucket/x", f"s3://{store.default_bucket}/../x"):
        with pytest.raises(URIParseError):
            store.download_file(uri)


@pytest.mark.parametrize(
    ("filename", "path"),
    [
        ("x.txt", "../tenant-b"),
        ("../../x.txt", "a"),
        ("x\x00.txt", None),
        ("a\\b", "p"),
        ("x" * 300, "p"),
    ],
)
def test_unsafe_keys_are_refused_and_nothing_is_written(store, filename, path):
    with pytest.raises(InvalidKeyError):
        store.upload_file(b"data", filename, path=path)
    assert store.list_files() == []


def test_invalid_bucket_name_is_refused(store):
    with pytest.raises(InvalidBucketNameError):
        store.upload_file(b"x", "x.txt", logic_bucket="Not_Valid")


def test_deleting_is_idempotent(store):
    uri = store.upload_file(b"x", "d.txt", path="p")
    assert store.delete_file(uri) is True
    assert store.file_exists(uri) is False
    assert store.delete_file(uri) is True


def test_delete_files_reports_deleted_and_failed(store):
    uris = [store.upload_file(b"x", f"{i}.txt", path="batch") for i in range(5)]
    missing = f"s3://{store.default_bucket}/batch/missing.txt"
    result = store.delete_files([*uris, missing, "garbage"])
    assert result["deleted"] == [*uris, missing]
    assert result["failed"] == ["garbage"]
    assert "s3://" in result["errors"]["garbage"]
    assert store.list_files(prefix="batch/") == []


def test_listing_is_sorted_filtered_and_lazy(store):
    for path, filename in (("b", "2.txt"), ("a", "1.txt"), ("top", "a-b.txt"), ("a/sub", "3.txt")):
        store.upload_file(b"x", filename, path=path)
    store.upload_file(b"x", "a-b.txt", path="a-b")
    names = [f["object_name"] for f in store.list_files()]
    assert names == ["a-b/a-b.txt", "a/1.txt", "a/sub/3.txt", "b/2.txt", "top/a-b.txt"]
    listing = store.list_files(prefix="a/")
    assert [f["object_name"] for f in listing] == ["a/1.txt", "a/sub/3.txt"]
    assert listing[0]["s3_uri"] == f"s3://{store.default_bucket}/a/1.txt"
    shallow = store.list_files(prefix="a/", recursive=False)
    assert [(f["object_name"], f["is_dir"]) for f in shallow] == [
        ("a/1.txt", False),
        ("a/sub/", True),
    ]
    assert isinstance(store.iter_files(prefix="a/"), GeneratorType)


def test_listing_a_missing_bucket_raises(store):
    with pytest.raises(BucketNotFoundError):
        store.list_files(logic_bucket="no-such-bucket-here")


def test_copy_duplicates_an_object(store):
    uri = store.upload_file(b"original", "o.txt", "text/plain", path="p")
    copy_uri = store.copy(uri, f"s3://{store.default_bucket}/copies/o.txt")
    assert store.download_file(copy_uri) == b"original"
    with pytest.raises(ObjectNotFoundError):
        store.copy(f"s3://{store.default_bucket}/p/none.txt", f"s3://{store.default_bucket}/x.txt")


def test_download_to_local_writes_the_whole_file(store, tmp_path):
    data = os.urandom(2 * MiB + 1)
    uri = store.upload_file(data, "d.bin", path="p")
    target = tmp_path / "downloads" / "deep" / "d.bin"
    assert store.download_to_local(uri, str(target)) is True
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["d.bin"]


def test_failed_download_leaves_the_destination_untouched(store, tmp_path):
    target = tmp_path / "downloads" / "keep.txt"
    target.parent.mkdir()
    target.write_bytes(b"previous content")
    with pytest.raises(ObjectNotFoundError):
        store.download_to_local(f"s3://{store.default_bucket}/missing.txt", target)
    assert target.read_bytes() == b"previous content"
    assert [p.name for p in target.parent.iterdir()] == ["keep.txt"]


def test_presigned_expiry_and_method_are_checked(store):
    uri = store.upload_file(b"x", "u.txt", path="p")
    for expiry in (0, -5, 7 * 24 * 3600 + 1, 1.5):
        with pytest.raises(InvalidInputError, match="expiry"):
            store.get_presigned_url(uri, expiry_seconds=expiry)
    with pytest.raises(InvalidInputError, match="method"):
        store.get_presigned_url(uri, method="DELETE")
    assert store.get_presigned_url(uri, expiry_seconds=7 * 24 * 3600)


def test_bucket_manager_lifecycle(store, bucket_name):
    manager = store.bucket_manager
    other = bucket_name + "-extra"
    assert manager.bucket_exists(other) is False
    assert manager.create_bucket(other) is True
    assert manager.create_bucket(other) is True
    assert other in [b["name"] for b in manager.list_buckets()]
    store.upload_file(b"12345", "a.txt", logic_bucket=other, path="x")
    store.upload_file(b"678", "b.txt", logic_bucket=other, path="x")
    info = manager.get_bucket_info(other)
    assert (info["object_count"], info["total_size"]) == (2, 8)
    with pytest.raises(ConflictError):
        manager.delete_bucket(other)
    assert manager.delete_bucket(other, force=True) is True
    assert manager.bucket_exists(other) is False
    assert manager.delete_bucket(other) is True


def test_upload_from_url_streams_the_body(store, http_source):
    body = os.urandom(3 * MiB)
    http_source.files["/files/data.bin"] = (body, "application/x-test")
    http_source.redirects["/go"] = "/files/data.bin"
    uri = store.upload_from_url(f"{http_source.url}/go", path="fetched")
    assert uri.endswith("/fetched/data.bin")
    assert store.download_file(uri) == body
    assert store.get_file_info(uri)["content_type"] == "application/x-test"


def test_upload_from_url_can_refuse_private_addresses(store, http_source):
    http_source.files["/x"] = (b"secret", "text/plain")
    with pytest.raises(UnsafeURLError):
        store.upload_from_url(f"{http_source.url}/x", path="fetched", block_private=True)
    with pytest.raises(UnsafeURLError):
        store.upload_from_url("file:///etc/passwd", path="fetched")
    assert store.list_files() == []


class TestBucketMapping:
    @pytest.fixture
    def mapped(self, backend_config, bucket_name):
        config = dict(backend_config)
        config.update(
            enable_bucket_mapping=True, bucket_map={"user": bucket_name}, default_bucket="user"
        )
        with RefStore(config) as mapped:
            assert mapped.init_buckets() == [bucket_name]
            yield mapped

    def test_uploads_return_physical_or_logical_uris(self, mapped, bucket_name):
        physical = mapped.upload_file(b"Hello!", "test.txt", logic_bucket="user", path="m")
        logical = mapped.upload_file(
            b"Hello!", "test.txt", logic_bucket="user", path="m", use_logical_uri=True
        )
        assert physical == f"s3://{bucket_name}/m/test.txt"
        assert logical == "s3://user/m/test.txt"
        assert mapped.download_file(physical) == mapped.download_file(logical) == b"Hello!"
        assert mapped.get_file_info(logical)["logic_bucket"] == "user"
        assert mapped.get_file_info(logical)["physical_bucket"] == bucket_name

    def test_names_translate_both_ways(self, mapped, bucket_name):
        assert mapped.get_physical_bucket("user") == bucket_name
        assert mapped.get_logical_bucket(bucket_name) == "user"

    def test_listing_can_show_logical_uris(self, mapped):
        mapped.upload_file(b"x", "l.txt", path="lst")
        assert [f["s3_uri"] for f in mapped.list_files(prefix="lst/", use_logical_uri=True)] == [
            "s3://user/lst/l.txt"
        ]

    def test_hot_update_applies_to_the_next_call(self, mapped, bucket_name):
        uri = mapped.upload_file(b"v1", "h.txt", path="hot", use_logical_uri=True)
        mapped.bucket_manager.create_bucket(bucket_name + "-new")
        mapped.update_bucket_mapping(bucket_map={"user": bucket_name + "-new"})
        with pytest.raises(ObjectNotFoundError):
            mapped.download_file(uri)
        mapped.update_bucket_mapping(bucket_map={"user": bucket_name})
        assert mapped.download_file(uri) == b"v1"


def test_presigned_get_url_serves_the_object(store):
    uri = store.upload_file(b"presigned body", "p.txt", path="p")
    url = store.get_presigned_url(uri, expiry_seconds=60)
    if store.backend.name == "local":
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        _, _, bucket, key = parts.path.split("/", 3)
        store.backend.verify_presigned(
            "GET", bucket, unquote(key), query["expires"], query["signature"]
        )
        assert (bucket, unquote(key)) == (store.default_bucket, "p/p.txt")
    else:
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"presigned body"


@pytest.mark.parametrize("prefix", ["../", "a/../../", "/etc/", "a//b"])
def test_listing_with_an_unsafe_prefix_is_refused(store, prefix):
    store.upload_file(b"x", "f.txt", path="a")
    with pytest.raises(InvalidKeyError):
        store.list_files(prefix=prefix)


def test_upload_to_an_exact_uri(store):
    info = store.upload_to(
        f"s3://{store.default_bucket}/exact/name.bin", b"12345", "application/x-test"
    )
    assert info.size == 5
    assert store.get_file_info(f"s3://{store.default_bucket}/exact/name.bin")["content_type"] == (
        "application/x-test"
    )
