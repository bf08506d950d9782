"""The gateway SDK: every method of GatewayClient and AsyncGatewayClient against a real
``refstore serve`` backed by real MinIO. Each test runs on both faces."""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import http_client, unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from sdk_helpers import FACES, MiB, Progress, Unseekable, leftovers, open_client, pattern_file

import refstore
from refstore import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    InvalidRangeError,
    ObjectNotFoundError,
    PermissionDeniedError,
    URIParseError,
)
from refstore.checksums import crc32c_of, sha256_of
from refstore.gateway import AsyncGatewayClient, GatewayClient

BUCKET = unique("sdk")
KEYS = {name: f"key-{name}-{secrets.token_hex(8)}" for name in ("tenant", "reader")}
AUTH = {
    "mode": "keys",
    "admin_tokens": [ADMIN_TOKEN],
    "api_keys": [
        {"key": KEYS["tenant"], "project": "tenant", "buckets": [BUCKET], "prefix": "tenant/"},
        {"key": KEYS["reader"], "project": "reader", "buckets": [BUCKET], "actions": ["read"]},
    ],
}
UPLOADED = "File uploaded successfully"


def recorded(data: bytes) -> dict[str, str]:
    """The checksums an upload through the gateway answers (by default)."""
    return {"crc32c": crc32c_of(data), "sha256": sha256_of(data)}


@pytest.fixture(scope="module")
def gateway(minio_server: Any) -> Iterator[GatewayProcess]:
    settings = {**minio_server.config(), "default_bucket": BUCKET, "auth": AUTH}
    with GatewayProcess(settings) as process:
        yield process


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """Raw httpx, to check what the SDK did independently of it."""
    with http_client(gateway.url, ADMIN_TOKEN) as client:
        yield client


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(face: str, gateway: GatewayProcess) -> Iterator[Any]:
    with open_client(face, gateway.url) as sdk:
        yield sdk


def stored(admin: httpx.Client, uri: str) -> bytes:
    response = admin.get("/download", params={"uri": uri})
    assert response.status_code == 200, response.text
    return response.content


# -- settings ------------------------------------------------------------------------


def test_url_and_key_come_from_the_environment(face, gateway, monkeypatch):
    monkeypatch.setenv("REFSTORE_GATEWAY_URL", gateway.url + "/")
    monkeypatch.setenv("REFSTORE_API_KEY", ADMIN_TOKEN)
    with open_client(face, None, api_key=None) as client:
        assert client.gateway_url == gateway.url
        assert client.get_status()["status"] == "connected"


def test_without_a_gateway_url_the_client_refuses_to_start(monkeypatch):
    monkeypatch.delenv("REFSTORE_GATEWAY_URL", raising=False)
    for cls in (GatewayClient, AsyncGatewayClient):
        with pytest.raises(ConfigError, match="REFSTORE_GATEWAY_URL"):
            cls()
        with pytest.raises(ConfigError, match="http"):
            cls("127.0.0.1:8000")


def test_an_authorization_header_as_0_3_0_sent_it_is_kept(face, gateway, monkeypatch):
    monkeypatch.setenv("REFSTORE_API_KEY", "not-a-key")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Project": "compat"}
    with open_client(face, gateway.url, api_key=None, headers=headers) as client:
        assert client.list_buckets()["total"] >= 1
    # An explicit api_key wins over the header.
    with (
        open_client(face, gateway.url, api_key="wrong", headers=headers) as client,
        pytest.raises(AuthenticationError),
    ):
        client.list_buckets()


def test_the_seed_constructor_arguments_still_work(gateway):
    with GatewayClient(gateway.url, 30, {"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        assert client.health()["status"] == "ok"
        assert client.timeout.read == 30


def test_the_top_level_package_offers_the_clients_lazily():
    assert refstore.GatewayClient is GatewayClient
    assert refstore.AsyncGatewayClient is AsyncGatewayClient


# -- gateway administration -----------------------------------------------------------


def test_status_config_and_bucket_listing(client, minio_server):
    status = client.get_status()
    assert status["status"] == "connected" and status["default_bucket"] == BUCKET
    config = client.get_config()
    assert config["default_bucket"] == BUCKET and config["auth_mode"] == "keys"
    assert minio_server.secret_key not in str(config)
    buckets = client.list_buckets()
    assert BUCKET in {b["name"] for b in buckets["buckets"]}
    assert buckets["total"] == len(buckets["buckets"])


def test_bucket_life_cycle(client):
    name = unique("sdk-life")
    assert client.create_bucket(name) == {
        "success": True,
        "name": name,
        "message": "Bucket created",
    }
    assert client.create_bucket(name)["success"]  # exists: still a success
    info = client.get_bucket_info(name)
    assert info["exists"] and info["object_count"] == 0 and info["total_size"] == 0
    client.upload_file(b"x", "x.txt", name, "d")
    with pytest.raises(ConflictError) as conflict:
        client.delete_bucket(name)
    assert conflict.value.status == 409
    assert client.delete_bucket(name, force=True)["success"]
    # As in refstore 0.3.0, a missing bucket's info is an answer, not an error.
    assert client.get_bucket_info(name) == {
        "name": name,
        "exists": False,
        "object_count": None,
        "total_size": None,
        "total_size_human": None,
    }
    # Deleting is idempotent; listing a missing bucket is an error.
    assert client.delete_bucket(name)["success"]
    with pytest.raises(BucketNotFoundError) as missing:
        client.list_files(name)
    assert missing.value.code == "bucket_not_found"


def test_bucket_mapping_updates_and_versions(client):
    logical = unique("logical")
    source = {"source": f"BucketMapping/sdk/{logical}", "uid": logical}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    v1 = {**source, "created": created, "generation": 1}
    v2 = {**v1, "generation": 2}
    try:
        applied = client.update_bucket_mapping(True, {logical: BUCKET}, version=v1)
        assert applied["changed"] is True and applied["bucket_map"] == {logical: BUCKET}
        assert applied["version"] == v1
        assert client.get_bucket_mapping()["reverse_bucket_map"] == {BUCKET: logical}
        assert client.update_bucket_mapping(True, {logical: BUCKET}, version=v1)["changed"] is False
        assert client.update_bucket_mapping(True, {logical: BUCKET}, version=v2)["changed"]
        with pytest.raises(ConflictError) as stale:
            client.update_bucket_mapping(False, {}, version=v1)
        assert stale.value.context["current"]["version"] == v2
        # Uploads through the logical name land in the physical bucket.
        physical = client.upload_file(b"m", "m.txt", logical, "mapped")
        assert physical["uri"] == f"s3://{BUCKET}/mapped/m.txt"
        logical_result = client.upload_file(b"m", "m.txt", logical, "mapped", use_logical_uri=True)
        assert logical_result["uri"] == f"s3://{logical}/mapped/m.txt"
    finally:
        reset = client.update_bucket_mapping(False, {})
    assert reset["enable_bucket_mapping"] is False and reset["bucket_map"] == {}


# -- uploads ---------------------------------------------------------------------


def test_upload_with_bucket_and_path_keeps_the_filename(client, admin):
    result = client.upload_file(b"Hello, SDK!", "hello.txt", BUCKET, "docs")
    assert result == {
        "uri": f"s3://{BUCKET}/docs/hello.txt",
        "success": True,
        "message": UPLOADED,
        "size": 11,
        "checksums": recorded(b"Hello, SDK!"),
    }
    assert stored(admin, result["uri"]) == b"Hello, SDK!"
    info = client.get_file_info(result["uri"])
    assert info["exists"] and info["info"]["content_type"] == "text/plain"


def test_upload_without_a_bucket_goes_to_the_default_bucket(client, admin):
    result = client.upload_file(b"%PDF-1.7", "report.pdf", path="reports/2026/")
    assert result["uri"] == f"s3://{BUCKET}/reports/2026/report.pdf"
    assert client.get_file_info(result["uri"])["info"]["content_type"] == "application/pdf"
    typed = client.upload_file(b"{}", "data", BUCKET, "t", content_type="application/json")
    assert client.get_file_info(typed["uri"])["info"]["content_type"] == "application/json"


def test_upload_without_a_path_gets_a_dated_key(client, admin):
    result = client.upload_file(b"dated", "photo.JPG")
    assert re.fullmatch(
        rf"s3://{BUCKET}/\d{{4}}/\d{{2}}/\d{{2}}/[0-9a-f]{{32}}\.JPG", result["uri"]
    )
    assert stored(admin, result["uri"]) == b"dated"


def test_upload_to_an_exact_uri_even_at_the_top_of_the_bucket(client, admin):
    top = f"s3://{BUCKET}/{unique('top')}.json"
    result = client.upload_to(top, b'{"a": 1}')
    assert result == {
        "uri": top,
        "success": True,
        "message": UPLOADED,
        "size": 8,
        "checksums": recorded(b'{"a": 1}'),
    }
    assert stored(admin, top) == b'{"a": 1}'
    assert client.get_file_info(top)["info"]["content_type"] == "application/json"

    data = os.urandom(2 * MiB + 5)
    progress = Progress()
    nested = f"s3://{BUCKET}/exact/{unique('n')}/blob"
    replaced = client.upload_to(
        nested, io.BytesIO(data), content_type="x-test/blob", progress=progress
    )
    assert replaced["size"] == len(data) and progress.total == len(data)
    assert stored(admin, nested) == data
    assert client.get_file_info(nested)["info"]["content_type"] == "x-test/blob"


@pytest.mark.parametrize("uri", ["s3://{bucket}", "s3://{bucket}/a/../b", "http://x/y"])
def test_upload_to_refuses_a_bad_uri_before_any_request(client, uri):
    with pytest.raises(URIParseError):
        client.upload_to(uri.format(bucket=BUCKET), b"never sent")


def test_a_seekable_file_is_sent_from_its_current_position(client, admin):
    data = os.urandom(3 * MiB + 17)
    file = io.BytesIO(data)
    file.seek(1000)
    result = client.upload_file(file, "part.bin", BUCKET, "seek")
    assert result["size"] == len(data) - 1000
    assert stored(admin, result["uri"]) == data[1000:]


def test_an_unseekable_stream_is_streamed(client, admin):
    data = os.urandom(2 * MiB + 5)
    for bucket in (BUCKET, None):  # raw body and multipart
        progress = Progress()
        stream = Unseekable(data, piece=100_000)  # small pieces, as a pipe gives them
        result = client.upload_file(stream, "pipe.bin", bucket, "pipe", progress=progress)
        assert result["size"] == len(data)
        assert stored(admin, result["uri"]) == data
        assert progress.total == len(data)


def test_non_ascii_and_quoted_filenames_survive(client, admin):
    name = '報告 "ü".txt'
    for bucket in (BUCKET, None):
        result = client.upload_file(b"unicode", name, bucket, "intl")
        assert result["uri"] == f"s3://{BUCKET}/intl/{name}"
        assert client.download_file(result["uri"]) == b"unicode"
    for generated in (name, 'plain "quoted".md'):
        result = client.upload_file(b"unicode", generated)  # multipart: only the extension counts
        assert result["uri"].endswith((".txt", ".md")) and result["size"] == 7


def test_upload_from_local_streams_the_file_with_progress(client, admin, tmp_path):
    data = pattern_file(tmp_path / "local data.bin", 5 * MiB + 3)
    progress = Progress()
    result = client.upload_from_local(
        tmp_path / "local data.bin", BUCKET, "local", progress=progress
    )
    assert result == {
        "uri": f"s3://{BUCKET}/local/local data.bin",
        "success": True,
        "message": UPLOADED,
        "size": len(data),
        "checksums": recorded(data),
    }
    assert stored(admin, result["uri"]) == data
    assert progress.total == len(data) and min(progress.increments) > 0
    # Through the multipart form too (no bucket given).
    progress = Progress()
    form = client.upload_from_local(
        str(tmp_path / "local data.bin"), path="form", progress=progress
    )
    assert form["uri"] == f"s3://{BUCKET}/form/local data.bin"
    assert progress.total == len(data)


def test_upload_from_local_of_a_missing_file_raises_the_builtin_error(client, tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        client.upload_from_local(tmp_path / "nope.bin", BUCKET, "x")
    assert not isinstance(missing.value, refstore.RefStoreError)


def test_bytes_uploads_report_progress(client):
    progress = Progress()
    client.upload_file(os.urandom(2 * MiB + 1), "p.bin", progress=progress)
    assert progress.total == 2 * MiB + 1
    assert len(progress.increments) == 3  # chunk_size (1 MiB) pieces


# -- downloads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def thousand(admin: httpx.Client) -> tuple[str, bytes]:
    data = bytes(range(250)) * 4
    response = admin.put(f"/files/{BUCKET}/ranges/thousand.bin", content=data)
    assert response.status_code == 200, response.text
    return response.json()["uri"], data


def test_download_file_whole_and_in_ranges(client, thousand):
    uri, data = thousand
    assert client.download_file(uri) == data
    assert client.download_file(uri, offset=10, length=20) == data[10:30]
    assert client.download_file(uri, offset=990) == data[990:]
    assert client.download_file(uri, length=5) == data[:5]
    assert client.download_file(uri, offset=995, length=100) == data[995:]
    assert client.download_file(uri, offset=3, length=0) == b""
    with pytest.raises(InvalidRangeError) as beyond:
        client.download_file(uri, offset=1000)
    assert beyond.value.status == 416
    with pytest.raises(InvalidRangeError):
        client.download_file(uri, offset=-1)
    with pytest.raises(ObjectNotFoundError):
        client.download_file(f"s3://{BUCKET}/ranges/missing.bin", length=0)


def test_stream_gives_metadata_then_chunks(client, admin):
    data = os.urandom(3 * MiB + 5)
    uri = client.upload_file(data, "stream.bin", BUCKET, "stream")["uri"]
    etag = client.get_file_info(uri)["info"]["etag"]
    progress = Progress()
    with client.stream(uri, progress=progress) as download:
        assert (download.length, download.size, download.etag) == (len(data), len(data), etag)
        assert download.content_type == "application/octet-stream"
        chunks = list(download.iter_bytes(MiB))
    assert [len(c) for c in chunks] == [MiB, MiB, MiB, 5]
    assert b"".join(chunks) == data and progress.total == len(data)
    with client.stream(uri, offset=MiB, length=10) as part:
        assert (part.length, part.size) == (10, len(data))
        assert part.read() == data[MiB : MiB + 10]
    assert b"".join(client.iter_bytes(uri, offset=len(data) - 7)) == data[-7:]


def test_download_to_local_writes_the_whole_file_or_nothing(client, tmp_path):
    data = os.urandom(2 * MiB + 11)
    uri = client.upload_file(data, "dl.bin", BUCKET, "dl")["uri"]
    target = tmp_path / "new" / "nested" / "dl.bin"
    progress = Progress()
    assert client.download_to_local(uri, target, progress=progress) is True
    assert target.read_bytes() == data and progress.total == len(data)
    assert leftovers(target.parent) == []
    # A missing object: False as in refstore 0.3.0, the old file untouched, no temp file.
    target.write_bytes(b"old")
    missing = f"s3://{BUCKET}/dl/missing.bin"
    assert client.download_to_local(missing, target) is False
    assert target.read_bytes() == b"old" and leftovers(target.parent) == []
    with pytest.raises(ObjectNotFoundError) as raised:
        client.download_to_local(missing, str(target), raise_errors=True)
    assert raised.value.status == 404
    assert client.download_to_local(missing, tmp_path / "other" / "x.bin") is False


# -- presigned URLs, info, delete, list --------------------------------------------


def test_presigned_urls_for_get_and_put(client):
    uri = client.upload_file(b"presigned", "p.txt", BUCKET, "presign")["uri"]
    link = client.get_presigned_url(uri, expiry_seconds=120)
    assert link["uri"] == uri and link["expiry"] == 120 and link["method"] == "GET"
    assert httpx.get(link["url"]).content == b"presigned"
    put = client.get_presigned_url(f"s3://{BUCKET}/presign/put.txt", method="put")
    assert put["method"] == "PUT"
    assert httpx.put(put["url"], content=b"via link").status_code == 200
    assert client.download_file(f"s3://{BUCKET}/presign/put.txt") == b"via link"
    with pytest.raises(InvalidInputError):
        client.get_presigned_url(uri, method="DELETE")
    with pytest.raises(InvalidInputError):
        client.get_presigned_url(uri, expiry_seconds=0)


def test_file_info_of_present_and_missing_objects(client):
    uri = client.upload_file(b"12345", "i.txt", BUCKET, "info")["uri"]
    info = client.get_file_info(uri)
    assert info["uri"] == uri and info["exists"] is True
    assert info["info"]["size"] == 5 and info["info"]["object_name"] == "info/i.txt"
    missing = client.get_file_info(f"s3://{BUCKET}/info/none.txt")
    assert missing == {"uri": f"s3://{BUCKET}/info/none.txt", "info": None, "exists": False}


def test_delete_file_and_delete_files(client):
    uris = [client.upload_file(b"d", f"{n}.txt", BUCKET, "del")["uri"] for n in range(3)]
    assert client.delete_file(uris[0]) == {"deleted": [uris[0]], "failed": [], "errors": {}}
    assert not client.get_file_info(uris[0])["exists"]
    assert client.delete_file(uris[0])["deleted"] == [uris[0]]  # missing counts as deleted
    result = client.delete_files([uris[1], "not-a-uri", uris[2]])
    assert result["deleted"] == [uris[1], uris[2]] and result["failed"] == ["not-a-uri"]
    assert result["errors"]["not-a-uri"]
    with pytest.raises(URIParseError):
        client.delete_file("not-a-uri")


def test_list_files_by_prefix(client):
    prefix = unique("list") + "/"
    for key in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
        client.upload_file(b"l", key.rsplit("/", 1)[-1], BUCKET, prefix + key.rpartition("/")[0])
    listing = client.list_files(BUCKET, prefix)
    assert listing["logic_bucket"] == BUCKET
    names = sorted(f["object_name"] for f in listing["files"])
    assert names == [prefix + k for k in ("a.txt", "sub/b.txt", "sub/deeper/c.txt")]
    assert all(f["s3_uri"] == f"s3://{BUCKET}/{f['object_name']}" for f in listing["files"])
    shallow = client.list_files(None, prefix, recursive=False)
    assert sorted((f["object_name"], f["is_dir"]) for f in shallow["files"]) == [
        (prefix + "a.txt", False),
        (prefix + "sub/", True),
    ]
    with pytest.raises(BucketNotFoundError):
        client.list_files(unique("no-such-bucket"))


def test_health_needs_no_key_but_the_rest_does(face, gateway, monkeypatch):
    monkeypatch.delenv("REFSTORE_API_KEY", raising=False)
    with open_client(face, gateway.url, api_key="") as anonymous:
        assert anonymous.health() == {
            "status": "ok",
            "message": "RefStore is running",
            "buckets_ok": True,
        }
        with pytest.raises(AuthenticationError) as refused:
            anonymous.get_status()
    assert refused.value.status == 401 and refused.value.code == "authentication_failed"


def test_a_scoped_key_stays_in_its_prefix(face, gateway):
    with open_client(face, gateway.url, api_key=KEYS["tenant"]) as tenant:
        generated = tenant.upload_file(b"t", "t.txt", BUCKET)
        assert generated["uri"].startswith(f"s3://{BUCKET}/tenant/")
        own = tenant.upload_file(b"t", "t.txt", BUCKET, "tenant/docs")
        listed = {f["s3_uri"] for f in tenant.list_files(BUCKET, "")["files"]}
        assert {generated["uri"], own["uri"]} <= listed
        assert all(uri.startswith(f"s3://{BUCKET}/tenant/") for uri in listed)
        with pytest.raises(PermissionDeniedError) as outside:
            tenant.upload_file(b"t", "t.txt", BUCKET, "elsewhere")
        assert not isinstance(outside.value, AuthenticationError)
        with pytest.raises(PermissionDeniedError):
            tenant.list_buckets()


# -- life cycle ------------------------------------------------------------------


def test_async_close_is_an_alias_of_aclose(gateway):
    async def main() -> None:
        client = AsyncGatewayClient(gateway.url, api_key=ADMIN_TOKEN)
        assert (await client.health())["status"] == "ok"
        await client.close()  # the refstore 0.3.0 name
        assert client._http.is_closed
        async with AsyncGatewayClient(gateway.url, api_key=ADMIN_TOKEN) as scoped:
            assert (await scoped.get_status())["status"] == "connected"
        assert scoped._http.is_closed

    asyncio.run(main())


def test_an_injected_http_client_is_used_and_left_open(gateway):
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]}) as http:
        with GatewayClient(gateway.url, api_key=ADMIN_TOKEN, http_client=http) as client:
            client.health()
        assert not http.is_closed and seen == ["/health"]


def test_download_to_local_accepts_paths_and_strings(client, tmp_path: Path):
    uri = client.upload_file(b"path-like", "pl.txt", BUCKET, "pl")["uri"]
    assert client.download_to_local(uri, str(tmp_path / "s.txt"))
    assert client.download_to_local(uri, tmp_path / "p.txt")
    assert (tmp_path / "s.txt").read_bytes() == (tmp_path / "p.txt").read_bytes() == b"path-like"
