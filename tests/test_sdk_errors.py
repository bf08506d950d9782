"""The SDK maps every gateway error answer back to the library's exception classes,
with the server's detail, code, HTTP status and request id; it retries what is safe
to retry, honours Retry-After, and reports an unreachable gateway as ConnectionError."""

from __future__ import annotations

import asyncio
import builtins
import io
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from gateway_helpers import http_client, unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from sdk_helpers import FACES, MiB, Progress, access_lines, leftovers, open_client
from servers import MinioServer, free_port

from refstore import errors
from refstore.gateway import AsyncGatewayClient, RetryPolicy
from refstore.gateway._core import Call, error_from_response

BUCKET = unique("sdk-err")
FULL = unique("sdk-full")
CAP = MiB
KEYS = {"reader": f"key-reader-{secrets.token_hex(8)}"}
AUTH = {
    "mode": "keys",
    "admin_tokens": [ADMIN_TOKEN],
    "api_keys": [
        {"key": KEYS["reader"], "project": "reader", "buckets": [BUCKET], "actions": ["read"]},
    ],
}
QUICK = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def gateway(minio_server: Any) -> Iterator[GatewayProcess]:
    settings = {
        **minio_server.config(),
        "default_bucket": BUCKET,
        "auth": AUTH,
        "server": {"max_upload_bytes": CAP},
    }
    with GatewayProcess(settings) as process, http_client(process.url, ADMIN_TOKEN) as admin:
        assert admin.post("/gateway/buckets", json={"name": FULL}).status_code == 200
        assert admin.put(f"/files/{FULL}/keep.txt", content=b"k").status_code == 200
        assert admin.put(f"/files/{BUCKET}/small.txt", content=b"0123456789").status_code == 200
        yield process


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SMALL = f"s3://{BUCKET}/small.txt"

# (id, key to use, call, exact class, status, code)
CASES: list[tuple[str, str, Callable[[Any], Any], type[errors.RefStoreError], int, str]] = [
    (
        "404-object",
        "admin",
        lambda c: c.download_file(f"s3://{BUCKET}/missing.txt"),
        errors.ObjectNotFoundError,
        404,
        "object_not_found",
    ),
    (
        "404-bucket",
        "admin",
        lambda c: c.list_files(unique("no-such-bucket")),
        errors.BucketNotFoundError,
        404,
        "bucket_not_found",
    ),
    (
        "401-unknown-key",
        "wrong",
        lambda c: c.get_file_info(SMALL),
        errors.AuthenticationError,
        401,
        "authentication_failed",
    ),
    (
        "403-out-of-scope",
        "reader",
        lambda c: c.upload_file(b"x", "x.txt", BUCKET, "no-write"),
        errors.PermissionDeniedError,
        403,
        "permission_denied",
    ),
    (
        "403-not-admin",
        "reader",
        lambda c: c.list_buckets(),
        errors.PermissionDeniedError,
        403,
        "permission_denied",
    ),
    (
        "409-bucket-not-empty",
        "admin",
        lambda c: c.delete_bucket(FULL),
        errors.ConflictError,
        409,
        "conflict",
    ),
    (
        "413-raw-body",
        "admin",
        lambda c: c.upload_file(os.urandom(CAP + 1), "big.bin", BUCKET, "big"),
        errors.ObjectTooLargeError,
        413,
        "too_large",
    ),
    (
        "413-multipart",
        "admin",
        lambda c: c.upload_file(os.urandom(CAP + 1), "big.bin"),
        errors.ObjectTooLargeError,
        413,
        "too_large",
    ),
    (
        "416-range",
        "admin",
        lambda c: c.download_file(SMALL, offset=10),
        errors.InvalidRangeError,
        416,
        "invalid_range",
    ),
    (
        "400-invalid-uri",
        "admin",
        lambda c: c.download_file("not-an-s3-uri"),
        errors.URIParseError,
        400,
        "invalid_uri",
    ),
    (
        "400-invalid-key",
        "admin",
        lambda c: c.list_files(BUCKET, "a/../b"),
        errors.InvalidKeyError,
        400,
        "invalid_key",
    ),
    (
        "400-invalid-bucket-name",
        "admin",
        lambda c: c.create_bucket("Not_A_Bucket"),
        errors.InvalidBucketNameError,
        400,
        "invalid_bucket_name",
    ),
    (
        "400-invalid-input",
        "admin",
        lambda c: c.get_presigned_url(SMALL, method="DELETE"),
        errors.InvalidInputError,
        400,
        "invalid_input",
    ),
    (
        "422-malformed-request",
        "admin",
        lambda c: c.get_presigned_url(SMALL, expiry_seconds="soon"),
        errors.InvalidInputError,
        422,
        "validation_error",
    ),
]


@pytest.mark.parametrize(
    ("key", "call", "expected", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_error_answer_maps_back_to_its_class(face, gateway, key, call, expected, status, code):
    token = {"admin": ADMIN_TOKEN, "wrong": "not-a-key"}.get(key) or KEYS[key]
    with open_client(face, gateway.url, api_key=token) as client, pytest.raises(expected) as info:
        call(client)
    error = info.value
    assert type(error) is expected
    assert (error.status, error.code) == (status, code)
    assert error.context["status"] == status and error.context["code"] == code
    assert error.detail and str(error) == error.detail
    assert re.fullmatch(r"[0-9a-f]{32}", error.request_id or "")
    # The request id is the one the gateway logged for this request. An early 413 can be
    # lost by an async client whose body is still being written; the SDK then sends the
    # request again with the same id, so each attempt must be logged with this status.
    lines = access_lines(gateway, error.request_id)
    attempts = 2 if status == 413 else 1
    assert 1 <= len(lines) <= attempts
    assert all(json.loads(line)["status"] == status for line in lines)


def test_errors_are_also_the_builtin_exceptions_callers_expect(face, gateway):
    with open_client(face, gateway.url) as client:
        with pytest.raises(FileNotFoundError):
            client.download_file(f"s3://{BUCKET}/missing.txt")
        with pytest.raises(ValueError):
            client.download_file("not-an-s3-uri")
    with (
        open_client(face, gateway.url, api_key=KEYS["reader"]) as reader,
        pytest.raises(PermissionError),
    ):
        reader.delete_file(SMALL)


def test_a_stale_mapping_version_carries_the_current_mapping(face, gateway):
    version = {"source": "s", "uid": unique("u"), "created": "2030-01-01T00:00:00Z"}
    with open_client(face, gateway.url) as client:
        client.update_bucket_mapping(False, {}, version={**version, "generation": 5})
        with pytest.raises(errors.ConflictError) as stale:
            client.update_bucket_mapping(False, {}, version={**version, "generation": 4})
    assert stale.value.context["current"]["version"]["generation"] == 5
    assert "older" in str(stale.value.detail)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (502, b"<html>Bad Gateway</html>", {}, errors.ConnectionError),
        (504, b"", {}, errors.OutcomeUnknownError),
        (502, b'{"detail": "remote failed", "code": "source_error"}', {}, errors.SourceError),
        (
            404,
            b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>",
            {},
            errors.ObjectNotFoundError,
        ),
        (403, b"<Error><Code>AccessDenied</Code></Error>", {}, errors.PermissionDeniedError),
        (418, b"teapot", {}, errors.InvalidInputError),
        (500, b'{"detail": "x", "code": "object_not_found"}', {}, errors.RefStoreError),
    ],
)
def test_answers_from_proxies_and_storage_map_by_status(status, body, headers, expected):
    """Answers that are not the gateway's JSON (a proxy, MinIO's XML) map by status,
    and a code that contradicts the status is not trusted."""
    call = Call("GET", "http://storage.invalid/b/k?X-Amz-Signature=secret", to_gateway=False)
    error = error_from_response(httpx.Response(status, content=body, headers=headers), call)
    assert type(error) is expected
    assert error.status == status and "secret" not in str(error.context)


# -- an unreachable gateway, and storage outages ---------------------------------------


def test_an_unreachable_gateway_is_a_connection_error(face, caplog):
    url = f"http://127.0.0.1:{free_port()}"
    with open_client(face, url, retry=0) as client, pytest.raises(errors.ConnectionError) as down:
        client.health()
    assert isinstance(down.value, builtins.ConnectionError)
    assert down.value.context["phase"] == "connect" and down.value.status is None
    assert url in str(down.value)
    caplog.set_level(logging.WARNING, "refstore.gateway")
    with open_client(face, url, retry=QUICK) as client, pytest.raises(errors.ConnectionError):
        client.get_file_info(SMALL)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2


class Unsized(io.RawIOBase):
    """A readable stream of ``size`` bytes that neither seeks nor tells its length."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"u" * n
        self.left -= n
        return n


@pytest.mark.parametrize("body", ["bytes", "unsized stream"])
def test_a_body_too_big_to_drain_is_still_object_too_large(face, gateway, body, caplog):
    """Over 64 MiB the gateway closes the connection under a refused body, which can
    lose its 413; the SDK then checks the gateway's cap instead of retrying."""
    caplog.set_level(logging.WARNING, "refstore.gateway")
    size = 80 * MiB
    data: Any = os.urandom(size) if body == "bytes" else Unsized(size)
    with open_client(face, gateway.url) as client:
        assert client.get_status()["max_upload_bytes"] == CAP
        with pytest.raises(errors.ObjectTooLargeError) as refused:
            client.upload_file(data, "huge.bin", BUCKET, "huge")
    assert refused.value.status == 413 and refused.value.code == "too_large"
    assert [r for r in caplog.records if "retry" in r.getMessage()] == []
    with http_client(gateway.url, ADMIN_TOKEN) as admin:
        info = admin.get("/info", params={"uri": f"s3://{BUCKET}/huge/huge.bin"}).json()
    assert info["exists"] is False


@pytest.fixture(scope="module")
def own_minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """MinIO of this module only: the outage tests stop it."""
    with MinioServer(tmp_path_factory.mktemp("sdk-outage-minio")) as server:
        yield server


@pytest.fixture(scope="module")
def outage_gateway(own_minio: MinioServer) -> Iterator[GatewayProcess]:
    settings = {**own_minio.config(), "default_bucket": "outage"}
    settings["minio"] = {**settings["minio"], "connect_timeout": 1, "read_timeout": 5}
    with GatewayProcess(settings) as process:
        yield process


@pytest.fixture
def storage_down(own_minio: MinioServer, outage_gateway: GatewayProcess) -> Iterator[None]:
    own_minio.stop()
    try:
        yield
    finally:
        own_minio.start()
        with http_client(outage_gateway.url) as probe:
            deadline = time.monotonic() + 20
            while probe.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)


def test_a_storage_outage_is_a_connection_error_after_retries(face, outage_gateway, storage_down):
    with (
        open_client(face, outage_gateway.url, retry=QUICK) as client,
        pytest.raises(errors.ConnectionError) as down,
    ):
        client.download_file("s3://outage/any.txt")
    error = down.value
    assert (error.status, error.code) == (503, "backend_unavailable")
    assert error.context["retry_after"] == 5
    # Three attempts under one request id: the first and two retries.
    assert len(access_lines(outage_gateway, error.request_id or "", expected=3)) == 3


def test_retry_after_is_honoured(outage_gateway, storage_down):
    with open_client("sync", outage_gateway.url, retry=RetryPolicy(1, 0.01, 10)) as client:
        started = time.monotonic()
        with pytest.raises(errors.ConnectionError):
            client.get_file_info("s3://outage/any.txt")
        assert time.monotonic() - started >= 4.9  # Retry-After: 5


def test_only_uploads_with_a_known_key_are_retried_on_503(face, outage_gateway, storage_down):
    with open_client(face, outage_gateway.url, retry=QUICK) as client:
        with pytest.raises(errors.ConnectionError) as known:
            client.upload_file(b"x", "x.txt", "outage", "retried")
        with pytest.raises(errors.ConnectionError) as generated:
            client.upload_file(b"x", "x.txt")  # a repeat could store a second object
    assert len(access_lines(outage_gateway, known.value.request_id or "", expected=3)) == 3
    assert len(access_lines(outage_gateway, generated.value.request_id or "")) == 1


@pytest.mark.parametrize("direct", [False, True], ids=["proxied", "direct"])
def test_download_to_local_leaves_no_partial_file_when_storage_fails_midway(
    face, direct, own_minio, outage_gateway, tmp_path
):
    data = os.urandom(96 * MiB)
    with http_client(outage_gateway.url, ADMIN_TOKEN) as admin:
        assert admin.put("/files/outage/big/96.bin", content=data).status_code == 200
    target = tmp_path / "big.bin"
    target.write_bytes(b"the previous version")
    progress = Progress(on_first=own_minio.kill)  # storage dies once bytes flow
    try:
        with (
            open_client(face, outage_gateway.url, retry=QUICK) as client,
            pytest.raises(errors.ConnectionError),
        ):
            client.download_to_local(
                "s3://outage/big/96.bin",
                target,
                raise_errors=True,
                direct=direct,
                progress=progress,
            )
    finally:
        own_minio.start()
        with http_client(outage_gateway.url) as probe:
            deadline = time.monotonic() + 20
            while probe.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
    assert 0 < progress.total < len(data)
    assert target.read_bytes() == b"the previous version"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("direct", [False, True], ids=["proxied", "direct"])
def test_a_download_broken_by_a_storage_restart_resumes(
    face, direct, own_minio, outage_gateway, tmp_path
):
    data = os.urandom(96 * MiB)
    with http_client(outage_gateway.url, ADMIN_TOKEN) as admin:
        assert admin.put("/files/outage/big/resume.bin", content=data).status_code == 200
    restarted = threading.Event()

    def crash() -> None:
        own_minio.kill()

        def restart() -> None:
            time.sleep(0.5)
            own_minio.start()
            restarted.set()

        threading.Thread(target=restart).start()

    progress = Progress(on_first=crash)
    patient = RetryPolicy(max_retries=10, base_delay=0.2, max_delay=1.0)
    try:
        with open_client(face, outage_gateway.url, retry=patient) as client:
            assert client.download_to_local(
                "s3://outage/big/resume.bin",
                tmp_path / "resumed.bin",
                raise_errors=True,
                direct=direct,
                progress=progress,
            )
    finally:
        assert restarted.wait(60)
    assert (tmp_path / "resumed.bin").read_bytes() == data
    assert progress.total == len(data) and leftovers(tmp_path) == []


def test_an_async_client_made_outside_an_event_loop_works_inside_one(gateway):
    client = AsyncGatewayClient(gateway.url, api_key=ADMIN_TOKEN)

    async def use() -> dict[str, Any]:
        try:
            return await client.get_file_info(SMALL)
        finally:
            await client.aclose()

    assert asyncio.run(use())["exists"]
