"""The gateway's HTTP contract, through a real ``refstore serve`` process on MinIO and on
the local backend: the endpoints of refstore 0.3.0 with their JSON shapes, streaming
downloads (Range, ETag, Content-Disposition), errors, size caps, presigned links,
request ids, metrics and OpenAPI."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from gateway_helpers import (
    CONTRACT_BACKENDS,
    Gateway,
    MiB,
    answer,
    assert_error,
    backend_kind,
    backend_settings,
    multipart_body,
    running_gateway,
    unique,
)
from gateway_process import ADMIN_TOKEN

import refstore
from refstore.backends.local import LocalBackend
from refstore.checksums import crc32c_of, sha256_of

TEXT = b"Hello, gateway!\n"
RANGED = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable
CAP = MiB

local_only = pytest.mark.parametrize("gateway", ["local"], indirect=True)
minio_only = pytest.mark.parametrize("gateway", ["minio"], indirect=True)


@pytest.fixture(scope="module", params=CONTRACT_BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway per backend for the module; local links point at the gateway itself."""
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings["default_bucket"] = unique("default")
    links_to_self = request.param == "local"
    kind = backend_kind(request.param)
    with running_gateway(kind, settings, links_to_self=links_to_self) as gw:
        yield gw


@pytest.fixture(scope="module", params=CONTRACT_BACKENDS)
def capped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway with a 1 MiB upload cap."""
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings["server"] = {"max_upload_bytes": CAP}
    with running_gateway(backend_kind(request.param), settings) as gw:
        yield gw


def new_bucket(gw: Gateway) -> str:
    name = unique("contract")
    gw.create_bucket(name)
    return name


@pytest.fixture
def bucket(gateway: Gateway) -> str:
    return new_bucket(gateway)


@pytest.fixture(scope="module")
def ranged_uri(gateway: Gateway) -> str:
    """A 1024-byte object for the Range and ETag tests."""
    return gateway.put(new_bucket(gateway), "ranged/bytes.bin", RANGED)


def upload(gw: Gateway, fields: dict[str, str], filename: str, data: bytes) -> httpx.Response:
    return gw.admin.post("/upload", data=fields, files={"file": (filename, data, "text/plain")})


def download(gw: Gateway, uri: str, **headers: str) -> httpx.Response:
    return gw.admin.get("/download", params={"uri": uri}, headers=headers)


def presign(gw: Gateway, uri: str, method: str = "GET", expiry: int | None = None) -> str:
    params: dict[str, Any] = {"uri": uri, "method": method}
    if expiry is not None:
        params["expiry_seconds"] = expiry
    response = gw.admin.get("/presigned-url", params=params)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def mapping(gw: Gateway) -> dict[str, Any]:
    response = gw.admin.get("/gateway/bucket-mapping")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def put_mapping(gw: Gateway, **body: Any) -> httpx.Response:
    return gw.admin.put("/gateway/bucket-mapping", json=body)


def paused(*pieces: bytes, pause: float = 0.5) -> Iterator[bytes]:
    """The pieces of a body with a pause between them (sent chunked)."""
    for index, piece in enumerate(pieces):
        if index:
            time.sleep(pause)
        yield piece


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """``data`` as a generator, so httpx sends it without Content-Length (chunked)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# -- the endpoints of refstore 0.3.0 ------------------------------------------------------


def test_multipart_upload_answers_uri_success_and_message(gateway, bucket):
    response = upload(gateway, {"logic_bucket": bucket, "path": "docs/2024"}, "hello.txt", TEXT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uri"] == f"s3://{bucket}/docs/2024/hello.txt"
    assert body["success"] is True
    assert isinstance(body["message"], str) and body["message"]
    assert gateway.read(bucket, "docs/2024/hello.txt") == TEXT


def test_multipart_upload_without_path_uses_a_dated_uuid_key(gateway, bucket):
    today = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    response = upload(gateway, {"logic_bucket": bucket}, "report.pdf", TEXT)
    assert response.status_code == 200, response.text
    assert re.fullmatch(rf"s3://{bucket}/{today}/[0-9a-f]{{32}}\.pdf", response.json()["uri"])


def test_download_by_uri_returns_the_uploaded_bytes(gateway, bucket):
    uri = upload(gateway, {"logic_bucket": bucket, "path": "d"}, "a.txt", TEXT).json()["uri"]
    response = download(gateway, uri)
    assert response.status_code == 200
    assert response.content == TEXT
    assert response.headers["content-type"].startswith("text/plain")


def test_raw_put_and_get_by_path_round_trip_with_the_content_type(gateway, bucket):
    data = os.urandom(3 * MiB + 17)  # several ~1 MiB chunks
    response = gateway.admin.put(
        f"/files/{bucket}/raw/data.bin", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "uri": f"s3://{bucket}/raw/data.bin",
        "success": True,
        "message": response.json()["message"],
        "size": len(data),
        "checksums": {"crc32c": crc32c_of(data), "sha256": sha256_of(data)},
    }
    fetched = gateway.admin.get(f"/files/{bucket}/raw/data.bin")
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-type"] == "image/png"


def test_raw_put_overwrites_an_existing_key(gateway, bucket):
    gateway.put(bucket, "same/key.txt", b"one")
    gateway.put(bucket, "same/key.txt", b"two")
    assert gateway.read(bucket, "same/key.txt") == b"two"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_presigned_url_answers_url_uri_and_expiry(gateway, bucket, method):
    uri = gateway.put(bucket, "p/x.txt", TEXT)
    response = gateway.admin.get(
        "/presigned-url", params={"uri": uri, "expiry_seconds": 120, "method": method}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uri"] == uri
    assert body["expiry"] == 120
    assert urlsplit(body["url"]).scheme == "http"


def test_presigned_url_defaults_to_the_configured_expiry(gateway, bucket):
    uri = gateway.put(bucket, "p/default.txt", TEXT)
    response = gateway.admin.get("/presigned-url", params={"uri": uri})
    assert response.status_code == 200, response.text
    assert response.json()["expiry"] == 3600


def test_info_describes_an_existing_object(gateway, bucket):
    uri = gateway.put(bucket, "meta/doc.json", b'{"a": 1}', "application/json")
    response = gateway.admin.get("/info", params={"uri": uri})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uri"] == uri
    assert body["exists"] is True
    info = body["info"]
    assert info["size"] == 8
    assert info["object_name"] == "meta/doc.json"
    assert info["logic_bucket"] == info["physical_bucket"] == bucket
    assert info["content_type"] == "application/json"
    assert info["etag"]


def test_info_of_a_missing_object_says_it_does_not_exist(gateway, bucket):
    uri = f"s3://{bucket}/never/was.txt"
    response = gateway.admin.get("/info", params={"uri": uri})
    assert response.status_code == 200, response.text
    assert response.json() == {"uri": uri, "info": None, "exists": False}


def test_delete_removes_the_given_uris_and_reports_invalid_ones(gateway, bucket):
    first = gateway.put(bucket, "del/a.txt", b"a")
    second = gateway.put(bucket, "del/b.txt", b"b")
    missing = f"s3://{bucket}/del/never.txt"
    response = gateway.admin.request(
        "DELETE", "/delete", json={"uris": [first, second, missing, "not-a-uri"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["deleted"]) == sorted([first, second, missing])
    assert body["failed"] == ["not-a-uri"]
    assert gateway.keys(bucket) == []


def test_list_answers_the_files_under_a_prefix(gateway, bucket):
    for key in ("dir/a.txt", "dir/sub/b.txt", "other/c.txt"):
        gateway.put(bucket, key, key.encode())
    response = gateway.admin.get(
        "/list", params={"logic_bucket": bucket, "prefix": "dir/", "recursive": "true"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["logic_bucket"] == bucket
    assert [(f["object_name"], f["size"], f["is_dir"], f["s3_uri"]) for f in body["files"]] == [
        ("dir/a.txt", 9, False, f"s3://{bucket}/dir/a.txt"),
        ("dir/sub/b.txt", 13, False, f"s3://{bucket}/dir/sub/b.txt"),
    ]


def test_non_recursive_list_shows_sub_directories(gateway, bucket):
    for key in ("dir/a.txt", "dir/sub/b.txt"):
        gateway.put(bucket, key, b"x")
    response = gateway.admin.get(
        "/list", params={"logic_bucket": bucket, "prefix": "dir/", "recursive": "false"}
    )
    assert response.status_code == 200, response.text
    files = response.json()["files"]
    assert [(f["object_name"], f["is_dir"]) for f in files] == [
        ("dir/a.txt", False),
        ("dir/sub/", True),
    ]


def test_health_answers_without_a_key(gateway):
    with gateway.client() as anonymous:
        response = anonymous.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["buckets_ok"] is True
    assert body["message"]


def test_root_describes_the_api(gateway):
    response = gateway.admin.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == refstore.__version__
    assert body["docs"] == "/docs"
    assert body["health"] == "/health"
    assert body["name"]


def test_gateway_status_reports_the_backend(gateway):
    response = gateway.admin.get("/gateway/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "connected"
    assert body["backend"] == gateway.backend
    assert body["default_bucket"] == gateway.process.settings["default_bucket"]
    assert body["enable_bucket_mapping"] is False
    assert isinstance(body["bucket_count"], int) and body["bucket_count"] >= 1
    assert body["secure"] is False


def test_gateway_config_never_shows_a_credential(gateway):
    response = gateway.admin.get("/gateway/config")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == gateway.backend
    assert body["default_bucket"] == gateway.process.settings["default_bucket"]
    assert body["auth_mode"] == "keys"
    assert body["presigned_expiry"] == 3600
    for secret in (*gateway.secrets, ADMIN_TOKEN):
        assert secret not in response.text


def test_gateway_buckets_are_created_listed_described_and_deleted(gateway):
    name = unique("bucket")
    created = gateway.admin.post("/gateway/buckets", json={"name": name})
    assert created.status_code == 200, created.text
    assert created.json()["success"] is True
    assert created.json()["name"] == name
    again = gateway.admin.post("/gateway/buckets", json={"name": name})
    assert again.status_code == 200, "creating an existing bucket succeeds"

    listed = gateway.admin.get("/gateway/buckets").json()
    assert name in [b["name"] for b in listed["buckets"]]
    assert listed["total"] == len(listed["buckets"])

    gateway.put(name, "a.txt", b"12345")
    gateway.put(name, "b/c.txt", b"1234567")
    detail = gateway.admin.get(f"/gateway/buckets/{name}")
    assert detail.status_code == 200, detail.text
    described = detail.json()
    assert (described["name"], described["exists"]) == (name, True)
    assert (described["object_count"], described["total_size"]) == (2, 12)


def test_deleting_a_non_empty_bucket_needs_force(gateway):
    name = new_bucket(gateway)
    gateway.put(name, "keep.txt", b"x")
    refused = gateway.admin.delete(f"/gateway/buckets/{name}")
    assert_error(refused, 409, "conflict")
    assert gateway.read(name, "keep.txt") == b"x"

    forced = gateway.admin.delete(f"/gateway/buckets/{name}", params={"force": "true"})
    assert forced.status_code == 200, forced.text
    assert forced.json()["success"] is True
    gone = gateway.admin.get(f"/gateway/buckets/{name}")
    assert gone.status_code == 200, gone.text
    assert gone.json()["exists"] is False
    listed = gateway.admin.get("/gateway/buckets").json()
    assert name not in [b["name"] for b in listed["buckets"]]


def test_bucket_mapping_put_honours_versions(gateway):
    logical, physical = unique("logical"), unique("physical")
    start = mapping(gateway)
    assert start["version"] is None
    v1 = {"source": "test/mapping", "uid": unique("uid"), "created": "2030-01-01T00:00:00Z"}
    v1["generation"] = 5
    try:
        applied = put_mapping(
            gateway, enable_bucket_mapping=True, bucket_map={logical: physical}, version=v1
        )
        assert applied.status_code == 200, applied.text
        assert applied.json()["changed"] is True
        assert applied.json()["version"] == v1
        assert applied.json()["generation"] == start["generation"] + 1
        assert applied.json()["bucket_map"] == {logical: physical}
        assert applied.json()["reverse_bucket_map"] == {physical: logical}

        older = put_mapping(
            gateway, bucket_map={logical: unique("elsewhere")}, version={**v1, "generation": 4}
        )
        detail = assert_error(older, 409, "conflict")
        assert detail["current"]["version"] == v1
        assert detail["current"]["bucket_map"] == {logical: physical}
        assert mapping(gateway)["bucket_map"] == {logical: physical}

        equal = put_mapping(
            gateway, enable_bucket_mapping=True, bucket_map={logical: physical}, version=v1
        )
        assert equal.status_code == 200, equal.text
        assert equal.json()["changed"] is False
        assert equal.json()["generation"] == start["generation"] + 1

        v2 = {**v1, "generation": 6}
        newer = put_mapping(gateway, bucket_map={logical: physical + "-2"}, version=v2)
        assert newer.status_code == 200, newer.text
        assert newer.json()["changed"] is True
        assert newer.json()["version"] == v2
        assert mapping(gateway)["bucket_map"] == {logical: physical + "-2"}
        assert mapping(gateway)["generation"] == start["generation"] + 2
    finally:
        put_mapping(gateway, enable_bucket_mapping=False, bucket_map={})


def test_unversioned_mapping_put_replaces_the_map_and_bumps_generation(gateway):
    logical, other, physical = unique("logical"), unique("logical"), unique("physical")
    start = mapping(gateway)["generation"]
    try:
        first = put_mapping(
            gateway,
            enable_bucket_mapping=True,
            bucket_map={logical: unique("physical"), other: unique("physical")},
        )
        assert first.status_code == 200, first.text
        assert first.json()["generation"] == start + 1
        second = put_mapping(gateway, bucket_map={logical: physical})
        assert second.status_code == 200, second.text
        assert second.json()["bucket_map"] == {logical: physical}
        assert second.json()["generation"] == start + 2
        assert mapping(gateway)["enable_bucket_mapping"] is True

        fields = {"logic_bucket": logical, "path": "mapped"}
        as_logical = upload(gateway, {**fields, "use_logical_uri": "true"}, "l.txt", b"l")
        assert as_logical.json()["uri"] == f"s3://{logical}/mapped/l.txt"
        as_physical = upload(gateway, fields, "p.txt", b"p")
        assert as_physical.json()["uri"] == f"s3://{physical}/mapped/p.txt"
        assert gateway.keys(physical) == ["mapped/l.txt", "mapped/p.txt"]
        listed = gateway.admin.get(
            "/list", params={"logic_bucket": logical, "prefix": "mapped/", "use_logical_uri": True}
        )
        assert listed.status_code == 200, listed.text
        assert [f["s3_uri"] for f in listed.json()["files"]] == [
            f"s3://{logical}/mapped/l.txt",
            f"s3://{logical}/mapped/p.txt",
        ]
    finally:
        put_mapping(gateway, enable_bucket_mapping=False, bucket_map={})


# -- downloads ----------------------------------------------------------------------------


def test_download_sends_length_etag_last_modified_and_filename(gateway, bucket):
    data = os.urandom(2 * MiB + 5)
    uri = gateway.put(bucket, "reports/q1.csv", data, "text/csv")
    info = gateway.admin.get("/info", params={"uri": uri}).json()["info"]
    response = download(gateway, uri)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="q1.csv"'
    assert response.headers["etag"] == f'"{info["etag"].strip(chr(34))}"'
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert abs((datetime.now(timezone.utc) - modified).total_seconds()) < 120
    assert response.headers["accept-ranges"] == "bytes"


def test_non_ascii_filename_is_sent_as_rfc6266_filename_star(gateway, bucket):
    uri = gateway.put(bucket, "docs/报告.pdf", b"%PDF-1.4", "application/pdf")
    assert uri == f"s3://{bucket}/docs/报告.pdf"
    response = download(gateway, uri)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.4"
    disposition = response.headers["content-disposition"]
    assert disposition.isascii()
    assert disposition.startswith("attachment; ")
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf" in disposition
    assert re.search(r'filename="[ -~]+\.pdf"', disposition)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=1000-", 1000, 1023),
        ("bytes=1020-5000", 1020, 1023),
        ("bytes=-5", 1019, 1023),
        ("bytes=-5000", 0, 1023),
    ],
)
def test_range_answers_206_with_content_range(gateway, ranged_uri, header, first, last):
    response = download(gateway, ranged_uri, Range=header)
    assert response.status_code == 206, response.text
    assert response.content == RANGED[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/1024"
    assert response.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_answers_416_with_the_size(gateway, ranged_uri, header):
    response = download(gateway, ranged_uri, Range=header)
    assert_error(response, 416, "invalid_range")
    assert response.headers["content-range"] == "bytes */1024"


def test_if_none_match_with_the_etag_answers_304(gateway, ranged_uri):
    etag = download(gateway, ranged_uri).headers["etag"]
    cached = download(gateway, ranged_uri, **{"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    changed = download(gateway, ranged_uri, **{"If-None-Match": '"another-etag"'})
    assert changed.status_code == 200
    assert changed.content == RANGED


# -- errors -------------------------------------------------------------------------------


def error_case(
    name: str, method: str, url: str, status: int, code: str | None = None, **kwargs: Any
) -> Any:
    """A request that must fail; "{bucket}" in it stands for an existing, empty bucket."""
    return pytest.param(method, url, kwargs, status, code, id=name)


JSON = {"Content-Type": "application/json"}
ERROR_CASES = [
    error_case("uri-not-s3", "GET", "/download", 400, "invalid_uri", params={"uri": "not-a-uri"}),
    error_case("uri-bad-bucket", "GET", "/info", 400, "invalid_uri", params={"uri": "s3://Bad/x"}),
    error_case("uri-no-key", "GET", "/presigned-url", 400, params={"uri": "s3://{bucket}/"}),
    error_case("uri-dotdot", "GET", "/download", 400, params={"uri": "s3://{bucket}/a/../b"}),
    error_case("raw-put-dotdot", "PUT", "/files/{bucket}/a/%2E%2E/b.txt", 400, content=b"x"),
    error_case("missing-object", "GET", "/download", 404, params={"uri": "s3://{bucket}/no"}),
    error_case("missing-object-by-path", "GET", "/files/{bucket}/no/such.txt", 404),
    error_case("missing-bucket", "GET", "/download", 404, params={"uri": "s3://no-bkt-x1/a"}),
    error_case("list-missing-bucket", "GET", "/list", 404, params={"logic_bucket": "no-bkt-x1"}),
    error_case(
        "expiry-zero", "GET", "/presigned-url", 400,
        params={"uri": "s3://{bucket}/a", "expiry_seconds": 0},
    ),
    error_case(
        "presign-method", "GET", "/presigned-url", 400,
        params={"uri": "s3://{bucket}/a", "method": "DELETE"},
    ),
    error_case(
        "expiry-not-a-number", "GET", "/presigned-url", 422, "validation_error",
        params={"uri": "s3://{bucket}/a", "expiry_seconds": "soon"},
    ),
    error_case("uri-missing", "GET", "/download", 422, "validation_error"),
    error_case(
        "delete-invalid-json", "DELETE", "/delete", 422, "validation_error",
        content=b"{not json", headers=JSON,
    ),
    error_case(
        "delete-wrong-shape", "DELETE", "/delete", 422, "validation_error",
        json={"uris": "s3://{bucket}/a"},
    ),
    error_case(
        "upload-not-multipart", "POST", "/upload", 400,
        content=b"plain", headers={"Content-Type": "text/plain"},
    ),
    error_case(
        "upload-without-file", "POST", "/upload", 400,
        data={"logic_bucket": "{bucket}"}, files={"other": ("a.txt", b"a")},
    ),
    error_case(
        "bucket-bad-name", "POST", "/gateway/buckets", 400, "invalid_bucket_name",
        json={"name": "Bad_Name"},
    ),
    error_case(
        "bucket-invalid-json", "POST", "/gateway/buckets", 422, "validation_error",
        content=b"[", headers=JSON,
    ),
    error_case(
        "mapping-bad-name", "PUT", "/gateway/bucket-mapping", 400,
        json={"bucket_map": {"Bad_Name": "x"}},
    ),
    error_case("no-such-route", "GET", "/no/such/route", 404, "not_found"),
    error_case("wrong-method", "DELETE", "/health", 405, "method_not_allowed"),
]  # fmt: skip


def _with_bucket(value: Any, bucket: str) -> Any:
    if isinstance(value, str):
        return value.replace("{bucket}", bucket)
    if isinstance(value, dict):
        return {k: _with_bucket(v, bucket) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "code"), ERROR_CASES)
def test_errors_are_json_with_the_right_status(gateway, bucket, method, url, kwargs, status, code):
    response = gateway.admin.request(
        method, _with_bucket(url, bucket), **_with_bucket(kwargs, bucket)
    )
    assert_error(response, status, code)
    assert gateway.keys(bucket) == []


@pytest.mark.parametrize("path", ["../x", "a/../../x", "./x", "a/..", "a\\..\\x"])
def test_path_traversal_in_path_is_refused_and_nothing_is_stored(gateway, bucket, path):
    response = upload(gateway, {"logic_bucket": bucket, "path": path}, "evil.txt", TEXT)
    assert_error(response, 400, "invalid_key")
    assert gateway.keys(bucket) == []


@pytest.mark.parametrize(
    ("late_path", "code"),
    [("../x", "invalid_key"), ("p" * (64 * 1024 + 1), "invalid_input")],
    ids=["traversal", "oversized-field"],
)
def test_a_bad_path_sent_after_the_file_is_refused_and_nothing_is_stored(
    gateway, bucket, late_path, code
):
    body, content_type = multipart_body(
        [
            ("logic_bucket", bucket),
            ("file", ("evil.txt", TEXT, "text/plain")),
            ("path", late_path),
        ]
    )
    # Pause once the file part has ended, so its upload is complete before the path arrives.
    split = body.index(b'name="path"')
    response = gateway.admin.post(
        "/upload",
        content=paused(body[:split], body[split:]),
        headers={"Content-Type": content_type},
    )
    assert_error(response, 400, code)
    assert gateway.keys(bucket) == []


# -- fields after the file part -----------------------------------------------------------


@pytest.mark.parametrize("late", [("path",), ("logic_bucket", "path", "use_logical_uri")])
def test_fields_after_the_file_part_still_place_the_object(gateway, bucket, late):
    default_bucket = gateway.process.settings["default_bucket"]
    default_before = gateway.keys(default_bucket)
    fields = {"logic_bucket": bucket, "path": "late/dir", "use_logical_uri": "false"}
    early = [(name, value) for name, value in fields.items() if name not in late]
    after = [(name, value) for name, value in fields.items() if name in late]
    body, content_type = multipart_body(
        [*early, ("file", ("late.txt", TEXT, "text/plain")), *after]
    )
    response = gateway.admin.post("/upload", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["uri"] == f"s3://{bucket}/late/dir/late.txt"
    assert gateway.keys(bucket) == ["late/dir/late.txt"]
    assert gateway.read(bucket, "late/dir/late.txt") == TEXT
    assert gateway.keys(default_bucket) == default_before


# -- max_upload_bytes ---------------------------------------------------------------------


def test_an_upload_of_exactly_the_cap_is_accepted(capped):
    bucket = new_bucket(capped)
    response = capped.admin.put(f"/files/{bucket}/exact.bin", content=b"e" * CAP)
    assert response.status_code == 200, response.text
    assert response.json()["size"] == CAP


def test_raw_put_declared_over_the_cap_is_refused_before_the_body_is_read(capped):
    bucket = new_bucket(capped)
    request_id = unique("declared-over-cap")
    response = capped.admin.put(
        f"/files/{bucket}/big.bin",
        content=b"x" * (CAP + 1),
        headers={"X-Request-ID": request_id},
    )
    assert_error(response, 413, "too_large")
    assert capped.access_entry(request_id)["bytes_in"] == 0
    assert capped.keys(bucket) == []


def test_chunked_raw_put_over_the_cap_is_refused_and_leaves_no_object(capped):
    bucket = new_bucket(capped)
    request_id = unique("chunked-over-cap")
    response = capped.admin.put(
        f"/files/{bucket}/big.bin",
        content=chunked(b"y" * (8 * CAP)),
        headers={"X-Request-ID": request_id},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large")
    assert capped.access_entry(request_id)["bytes_in"] < 2 * CAP, "stops reading at the cap"
    assert capped.keys(bucket) == []


def test_a_body_a_little_over_the_cap_is_drained_so_its_413_arrives(capped):
    """Clients that send the whole body before reading the answer (http.client, httpx,
    requests) must not find the connection reset under them, which would lose the 413."""
    bucket = new_bucket(capped)
    parts = urlsplit(capped.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for _ in range(3):
            connection.request(
                "PUT",
                f"/files/{bucket}/over.bin",
                body=b"o" * (CAP + 1),
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            response = connection.getresponse()
            assert response.status == 413
            assert response.getheader("connection") != "close"
            assert json.loads(response.read())["code"] == "too_large"
        first_socket = connection.sock
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert (response.status, connection.sock) == (200, first_socket)
        response.read()
    finally:
        connection.close()
    assert capped.keys(bucket) == []


@pytest.mark.parametrize("send", ["declared", "chunked"])
def test_an_upload_over_the_cap_is_cut_off_not_drained(capped, send):
    """The client learns of the 413 without having to send the rest of a refused body."""
    bucket = new_bucket(capped)
    total, sent = 256 * MiB, 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += MiB
            yield b"w" * MiB

    headers = {"Content-Length": str(total)} if send == "declared" else {}
    response = capped.admin.put(f"/files/{bucket}/huge.bin", content=endless(), headers=headers)
    assert_error(response, 413, "too_large")
    assert sent < 64 * MiB, f"the client had to send {sent // MiB} MiB of a refused body"
    assert capped.keys(bucket) == []


@pytest.mark.parametrize("send", ["declared", "chunked"])
def test_multipart_upload_over_the_cap_is_refused_and_leaves_no_object(capped, send):
    bucket = new_bucket(capped)
    body, content_type = multipart_body(
        [
            ("logic_bucket", bucket),
            ("path", "big"),
            ("file", ("big.bin", b"z" * (CAP + MiB // 2), "application/octet-stream")),
        ]
    )
    content = body if send == "declared" else chunked(body)
    response = capped.admin.post("/upload", content=content, headers={"Content-Type": content_type})
    assert_error(response, 413, "too_large")
    assert capped.keys(bucket) == []


# -- presigned links ----------------------------------------------------------------------


def test_local_presigned_link_points_at_the_gateway_that_made_it(tmp_path):
    """Without public_url, a local-backend link must still reach the gateway serving it
    (not the documented default port 8000 of another process)."""
    settings = {"local": {"root": str(tmp_path / "store")}}
    with running_gateway("local", settings) as gw:
        bucket = new_bucket(gw)
        url = presign(gw, gw.put(bucket, "a.txt", TEXT))
        assert url.startswith(f"{gw.url}/presigned/{bucket}/a.txt?")
        with gw.client() as anonymous:
            assert anonymous.get(url).content == TEXT


@local_only
def test_local_presigned_get_link_downloads_without_a_key(gateway, bucket):
    uri = gateway.put(bucket, "shared/报告.txt", TEXT)
    url = presign(gateway, uri, expiry=300)
    assert url.startswith(f"{gateway.url}/presigned/{bucket}/")
    with gateway.client() as anonymous:
        response = anonymous.get(url)
        ranged = anonymous.get(url, headers={"Range": "bytes=0-4"})
    assert response.status_code == 200, response.text
    assert response.content == TEXT
    assert ranged.status_code == 206
    assert ranged.content == TEXT[:5]


@local_only
def test_local_presigned_put_link_uploads_without_a_key(gateway, bucket):
    url = presign(gateway, f"s3://{bucket}/in/upload.bin", method="PUT", expiry=300)
    with gateway.client() as anonymous:
        response = anonymous.put(url, content=b"via link")
    assert response.status_code == 200, response.text
    assert response.json()["uri"] == f"s3://{bucket}/in/upload.bin"
    assert gateway.read(bucket, "in/upload.bin") == b"via link"


def _flip_signature(url: str) -> str:
    head, signature = url.rsplit("signature=", 1)
    return f"{head}signature={signature[:-1]}{'0' if signature[-1] != '0' else '1'}"


def _other_key(url: str) -> str:
    return url.replace("/secret.txt?", "/other.txt?")


def _later_expiry(url: str) -> str:
    return re.sub(r"expires=(\d+)", lambda m: f"expires={int(m.group(1)) + 3600}", url)


@local_only
@pytest.mark.parametrize("tamper", [_flip_signature, _other_key, _later_expiry])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_local_tampered_presigned_link_is_refused(gateway, bucket, tamper, method):
    gateway.put(bucket, "t/secret.txt", TEXT)
    gateway.put(bucket, "t/other.txt", b"other")
    url = tamper(presign(gateway, f"s3://{bucket}/t/secret.txt", method=method, expiry=300))
    with gateway.client() as anonymous:
        response = anonymous.request(method, url, content=b"forged" if method == "PUT" else None)
    assert_error(response, 403, "permission_denied")
    assert gateway.read(bucket, "t/secret.txt") == TEXT
    assert gateway.read(bucket, "t/other.txt") == b"other"


@local_only
def test_local_get_link_does_not_allow_put(gateway, bucket):
    uri = gateway.put(bucket, "t/keep.txt", TEXT)
    url = presign(gateway, uri, method="GET", expiry=300)
    with gateway.client() as anonymous:
        response = anonymous.put(url, content=b"overwrite")
    assert_error(response, 403, "permission_denied")
    assert gateway.read(bucket, "t/keep.txt") == TEXT


@local_only
def test_local_expired_presigned_links_are_refused(gateway, bucket):
    """Links that expired an hour ago, signed with the gateway's own key by a backend on its
    root whose clock is an hour behind: no waiting for a link to run out."""
    uri = gateway.put(bucket, "t/brief.txt", TEXT)
    before = int(time.time())
    expires = int(parse_qs(urlsplit(presign(gateway, uri, expiry=60)).query)["expires"][0])
    assert before + 60 <= expires <= int(time.time()) + 60
    root = gateway.process.settings["local"]["root"]
    late = LocalBackend(root, link_base=gateway.url, clock=lambda: time.time() - 3600)
    on_time = LocalBackend(root, link_base=gateway.url)
    with gateway.client() as anonymous:
        refused = anonymous.get(late.presign("GET", bucket, "t/brief.txt", 60))
        assert "expired" in assert_error(refused, 403, "permission_denied")
        refused = anonymous.put(late.presign("PUT", bucket, "t/brief.txt", 60), content=b"late")
        assert "expired" in assert_error(refused, 403, "permission_denied")
        # The same key signs links the gateway takes while they last.
        assert anonymous.get(on_time.presign("GET", bucket, "t/brief.txt", 60)).content == TEXT
    assert gateway.read(bucket, "t/brief.txt") == TEXT


@minio_only
def test_minio_presigned_urls_reach_minio_directly(gateway, bucket, minio_server):
    uri = gateway.put(bucket, "direct/a.bin", TEXT)
    get_url = presign(gateway, uri, expiry=300)
    put_url = presign(gateway, f"s3://{bucket}/direct/b.bin", method="PUT", expiry=300)
    assert urlsplit(get_url).netloc == urlsplit(put_url).netloc == minio_server.endpoint
    with httpx.Client(trust_env=False, timeout=30) as direct:
        fetched = direct.get(get_url)
        stored = direct.put(put_url, content=b"straight to minio")
    assert fetched.status_code == 200
    assert fetched.content == TEXT
    assert stored.status_code == 200, stored.text
    assert gateway.read(bucket, "direct/b.bin") == b"straight to minio"


# -- request ids, metrics, OpenAPI --------------------------------------------------------


def test_request_id_is_echoed_and_logged(gateway):
    request_id = unique("trace.id:1")
    response = gateway.admin.get("/health", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    entry = gateway.access_entry(request_id)
    assert entry["route"] == "/health"
    assert entry["status"] == 200


@pytest.mark.parametrize("sent", [None, "not a safe id <script>"])
def test_request_id_is_generated_when_absent_or_unsafe(gateway, sent):
    headers = {"X-Request-ID": sent} if sent else {}
    ids = {gateway.admin.get("/health", headers=headers).headers["x-request-id"] for _ in "ab"}
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)


def _sample(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_and_bytes_moved(gateway, bucket):
    before = gateway.metrics()
    data = os.urandom(12345)
    uri = gateway.put(bucket, "m/data.bin", data)
    assert download(gateway, uri).content == data
    assert gateway.admin.get(f"/gateway/buckets/{bucket}").status_code == 200
    assert gateway.admin.get(f"/no-route/{bucket}").status_code == 404
    after = gateway.metrics()

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    requests = "refstore_http_requests_total"
    assert delta("refstore_transfer_bytes_total", direction="in") == len(data)
    assert delta("refstore_transfer_bytes_total", direction="out") == len(data)
    assert delta(requests, method="GET", route="/download", status="200") == 1
    assert delta(requests, method="GET", route="/gateway/buckets/{name}", status="200") == 1
    assert delta("refstore_http_request_duration_seconds_count", method="GET", route="/download")
    routes = {dict(labels)["route"] for name, labels in after if name == requests}
    assert not [route for route in routes if bucket in route], routes
    assert _sample(after, "refstore_backend_up") == 1
    generation = mapping(gateway)["generation"]
    assert _sample(gateway.metrics(), "refstore_bucket_mapping_generation") == generation


FILE_ROUTES = [
    ("post", "/upload"),
    ("put", "/files/{bucket}/{key}"),
    ("get", "/files/{bucket}/{key}"),
    ("get", "/download"),
    ("get", "/presigned-url"),
    ("get", "/info"),
    ("delete", "/delete"),
    ("get", "/list"),
]
OTHER_ROUTES = [
    ("get", "/"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/gateway/status"),
    ("get", "/gateway/config"),
    ("get", "/gateway/buckets"),
    ("post", "/gateway/buckets"),
    ("get", "/gateway/buckets/{name}"),
    ("delete", "/gateway/buckets/{name}"),
    ("get", "/gateway/bucket-mapping"),
    ("put", "/gateway/bucket-mapping"),
]
LOCAL_LINK_ROUTES = [("get", "/presigned/{bucket}/{key}"), ("put", "/presigned/{bucket}/{key}")]


def openapi(gw: Gateway) -> dict[str, Any]:
    response = gw.admin.get("/openapi.json")
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def test_openapi_lists_every_route(gateway):
    paths = openapi(gateway)["paths"]
    operations = {(method, path) for path, item in paths.items() for method in item}
    assert set(FILE_ROUTES + OTHER_ROUTES) <= operations
    assert (set(LOCAL_LINK_ROUTES) <= operations) is (gateway.backend == "local")


@pytest.mark.parametrize(("method", "path"), FILE_ROUTES)
def test_file_routes_document_their_error_responses(gateway, method, path):
    spec = openapi(gateway)
    responses = spec["paths"][path][method]["responses"]
    expected = {"400", "401", "403", "422", "503"}
    if method == "get" and path in ("/download", "/files/{bucket}/{key}"):
        expected |= {"404", "416"}
    if path in ("/upload", "/files/{bucket}/{key}") and method != "get":
        expected |= {"413"}
    for status in sorted(expected):
        assert status in responses, f"{method.upper()} {path} does not document {status}"
        assert responses[status]["description"]
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    error_schema = spec["components"]["schemas"]["ErrorResponse"]
    assert set(error_schema["required"]) == {"detail", "code"}


def test_docs_page_serves_the_interactive_documentation(gateway):
    response = gateway.admin.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


def test_multipart_upload_keeps_a_non_ascii_filename(gateway, bucket):
    response = gateway.admin.post(
        "/upload",
        data={"logic_bucket": bucket, "path": "intl"},
        files={"file": ("报告.pdf", b"%PDF-1.4")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["uri"] == f"s3://{bucket}/intl/报告.pdf"


# -- the fast object routes answer as the declared ones ---------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "get",
        "get-range",
        "get-etag-match",
        "get-range-beyond",
        "get-missing",
        "get-no-key",
        "get-bad-key",
        "get-bad-bucket",
        "download",
        "download-bad-uri",
        "download-missing",
    ],
)
def test_fast_reads_answer_exactly_as_the_declared_routes(gateway, ranged_uri, case):
    """GET /files and /download are answered by the fast routes (refstore.web.fast_routes);
    an extra query parameter sends the same request through FastAPI's declared route instead."""
    bucket, key = ranged_uri.removeprefix("s3://").split("/", 1)
    etag = gateway.admin.get(f"/files/{bucket}/{key}").headers["etag"]
    path, params, headers, token = f"/files/{bucket}/{key}", {}, {}, ADMIN_TOKEN
    if case == "get-range":
        headers = {"Range": "bytes=10-19"}
    elif case == "get-etag-match":
        headers = {"If-None-Match": etag}
    elif case == "get-range-beyond":
        headers = {"Range": "bytes=5000-"}
    elif case == "get-missing":
        path = f"/files/{bucket}/nothing/here"
    elif case == "get-no-key":
        token = None
    elif case == "get-bad-key":
        token = "not-a-key"
    elif case == "get-bad-bucket":
        path = "/files/Bad_Bucket/x"
    elif case.startswith("download"):
        path = "/download"
        uri = {"download": ranged_uri, "download-bad-uri": "s3://x/../y"}.get(
            case, f"s3://{bucket}/missing"
        )
        params = {"uri": uri}
    with gateway.client(token) as client:
        fast = client.get(path, params=params, headers=headers)
        declared = client.get(path, params={**params, "via": "fastapi"}, headers=headers)
    assert answer(fast) == answer(declared)
    assert fast.status_code in (200, 206, 304, 400, 401, 404, 416)


@pytest.mark.parametrize("query", ["", "?use_logical_uri=true", "?use_logical_uri=no"])
def test_fast_writes_answer_exactly_as_the_declared_route(gateway, bucket, query):
    fast = gateway.admin.put(f"/files/{bucket}/fast/a.txt{query}", content=b"fast")
    declared_query = f"{query}&via=fastapi" if query else "?via=fastapi"
    declared = gateway.admin.put(f"/files/{bucket}/fast/a.txt{declared_query}", content=b"fast")
    assert fast.status_code == declared.status_code == 200
    assert (
        fast.json()
        == declared.json()
        == {
            "uri": f"s3://{bucket}/fast/a.txt",
            "success": True,
            "message": "File uploaded successfully",
            "size": 4,
            "checksums": {"crc32c": crc32c_of(b"fast"), "sha256": sha256_of(b"fast")},
        }
    )
    bad = gateway.admin.put(f"/files/{bucket}/fast/a.txt?use_logical_uri=maybe", content=b"x")
    assert_error(bad, 422)


def test_fast_routes_are_counted_under_their_route_templates(gateway, ranged_uri):
    bucket, key = ranged_uri.removeprefix("s3://").split("/", 1)
    before = gateway.metrics()
    gateway.admin.get(f"/files/{bucket}/{key}")
    gateway.admin.put(f"/files/{bucket}/counted.txt", content=b"c")
    after = gateway.metrics()
    template = "/files/{bucket}/{key:path}"
    for method in ("GET", "PUT"):
        labels = {"method": method, "route": template, "status": "200"}
        counted = _sample(after, "refstore_http_requests_total", **labels)
        assert counted - _sample(before, "refstore_http_requests_total", **labels) == 1
