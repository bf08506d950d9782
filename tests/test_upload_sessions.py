"""Upload sessions through a real ``refstore serve`` on MinIO and on the local backend:
parts through the gateway or straight through presigned part URLs, resumable, owned by
the key that started them, expiring, and swept away when abandoned."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_helpers import BACKENDS, Gateway, assert_error, backend_settings, running_gateway
from gateway_helpers import unique as unique_name

from refstore.checksums import crc32c_of

MiB = 1024 * 1024
PART = 5 * MiB
BUCKET = unique_name("sessions")
TOKENS = {name: f"tok-{name}-{secrets.token_hex(12)}" for name in ("admin", "one", "two")}


def api_key(name: str, actions: list[str]) -> dict[str, Any]:
    return {"key": TOKENS[name], "project": name, "buckets": [BUCKET], "actions": actions}


AUTH = {
    "mode": "keys",
    "admin_tokens": [TOKENS["admin"]],
    # Two keys of the same scope: each may only continue the sessions it started.
    "api_keys": [
        api_key("one", ["read", "write", "list", "presign"]),
        api_key("two", ["read", "write", "list", "presign"]),
    ],
}


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings.update(default_bucket=BUCKET, auth=AUTH)
    settings["uploads"] = {"session_expiry": 6}
    with running_gateway(
        request.param, settings, TOKENS["admin"], links_to_self=request.param == "local"
    ) as gw:
        gw.create_bucket(BUCKET)
        yield gw


@pytest.fixture(scope="module")
def one(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client(TOKENS["one"]) as client:
        yield client


@pytest.fixture(scope="module")
def two(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client(TOKENS["two"]) as client:
        yield client


def key() -> str:
    return f"large/{secrets.token_hex(6)}.bin"


def start(client: httpx.Client, uri: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/uploads", json={"uri": uri, **fields})
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def crc(data: bytes) -> dict[str, str]:
    """The header that declares a part's CRC32C."""
    return {"x-amz-checksum-crc32c": crc32c_of(data)}


def put_part(client: httpx.Client, session: dict[str, Any], number: int, data: bytes) -> Any:
    return client.put(f"/uploads/{session['upload_id']}/parts/{number}", content=data)


def test_parts_through_the_gateway_out_of_order_then_complete_make_the_object(
    gateway: Gateway, one: httpx.Client
) -> None:
    data = os.urandom(2 * PART + 999)
    uri = f"s3://{BUCKET}/{key()}"
    session = start(one, uri, size=len(data), part_size=PART)
    assert (session["part_size"], session["part_count"], session["uri"]) == (PART, 3, uri)
    for number in (3, 1, 2):
        offset = (number - 1) * PART
        answer = put_part(one, session, number, data[offset : offset + PART])
        assert answer.status_code == 200, answer.text
        assert answer.json()["size"] == len(data[offset : offset + PART])
    assert not gateway.read(BUCKET, uri.split("/", 3)[3])  # nothing until completion
    listed = one.get(f"/uploads/{session['upload_id']}").json()["parts"]
    assert [(p["part_number"], p["size"]) for p in listed] == [(1, PART), (2, PART), (3, 999)]
    done = one.post(f"/uploads/{session['upload_id']}/complete", json={})
    assert done.status_code == 200, done.text
    assert done.json()["size"] == len(data)
    got = one.get("/download", params={"uri": uri})
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    # A completed session is gone.
    assert_error(one.get(f"/uploads/{session['upload_id']}"), 404, "upload_not_found")


def test_presigned_part_urls_go_straight_to_storage_and_name_one_part(
    gateway: Gateway, one: httpx.Client
) -> None:
    data = os.urandom(PART + 10)
    uri = f"s3://{BUCKET}/{key()}"
    session = start(one, uri, size=len(data), part_size=PART)
    urls = {}
    for number in (1, 2):
        answer = one.get(f"/uploads/{session['upload_id']}/parts/{number}/url")
        assert answer.status_code == 200, answer.text
        assert answer.json()["required_headers"] == ["x-amz-checksum-crc32c"]
        urls[number] = answer.json()["url"]
    # Straight to MinIO, or to the local backend's links that the gateway serves.
    storage = gateway.process.settings.get("minio", {}).get("endpoint")
    assert urlsplit(urls[1]).netloc == (storage or urlsplit(gateway.url).netloc)
    with httpx.Client(trust_env=False, timeout=60) as anonymous:
        # Part 1's URL refuses part 2's bytes under part 2's number.
        forged = urls[1].replace("partNumber=1", "partNumber=2").replace("part=1", "part=2")
        assert anonymous.put(forged, content=b"x", headers=crc(b"x")).status_code == 403
        # A part's CRC32C must come with it, and be right.
        assert anonymous.put(urls[1], content=data[:PART]).status_code == 400
        wrong = anonymous.put(urls[1], content=data[:PART], headers=crc(b"other bytes"))
        assert wrong.status_code == 400
        assert anonymous.put(urls[1], content=data[:PART], headers=crc(data[:PART])).is_success
        assert anonymous.put(urls[2], content=data[PART:], headers=crc(data[PART:])).is_success
    done = one.post(f"/uploads/{session['upload_id']}/complete")
    assert done.status_code == 200, done.text
    assert one.get("/download", params={"uri": uri}).content == data


def test_a_part_url_is_refused_once_it_expired(gateway: Gateway, one: httpx.Client) -> None:
    session = start(one, f"s3://{BUCKET}/{key()}", part_size=PART)
    answer = one.get(f"/uploads/{session['upload_id']}/parts/1/url", params={"expiry_seconds": 1})
    assert answer.json()["expiry"] == 1
    time.sleep(2.1)
    data = os.urandom(1000)
    with httpx.Client(trust_env=False, timeout=60) as anonymous:
        late = anonymous.put(answer.json()["url"], content=data, headers=crc(data))
    assert late.status_code == 403
    assert one.get(f"/uploads/{session['upload_id']}").json()["parts"] == []


def test_only_the_key_that_started_a_session_may_continue_complete_or_abort_it(
    gateway: Gateway, one: httpx.Client, two: httpx.Client
) -> None:
    session = start(one, f"s3://{BUCKET}/{key()}", part_size=PART)
    upload_id = session["upload_id"]
    assert_error(put_part(two, session, 1, b"x"), 403, "permission_denied")
    assert_error(two.get(f"/uploads/{upload_id}"), 403, "permission_denied")
    assert_error(two.get(f"/uploads/{upload_id}/parts/1/url"), 403, "permission_denied")
    assert_error(two.post(f"/uploads/{upload_id}/complete"), 403, "permission_denied")
    assert_error(two.delete(f"/uploads/{upload_id}"), 403, "permission_denied")
    assert one.get(f"/uploads/{upload_id}").json()["parts"] == []
    assert one.delete(f"/uploads/{upload_id}").status_code == 200


def test_a_forged_or_altered_session_id_is_no_session(one: httpx.Client) -> None:
    session = start(one, f"s3://{BUCKET}/{key()}", part_size=PART)
    encoded, _, mac = session["upload_id"].partition(".")
    for forged in ("nonsense", f"{encoded}.{'A' * len(mac)}", f"{encoded[:-2]}xx.{mac}"):
        assert_error(one.get(f"/uploads/{forged}"), 404, "upload_not_found")


def test_a_session_outside_the_keys_scope_cannot_be_started(one: httpx.Client) -> None:
    assert_error(one.post("/uploads", json={"uri": "s3://elsewhere/x.bin"}), 403)
    assert_error(one.post("/uploads", json={"uri": f"s3://{BUCKET}/../x"}), 400)
    assert_error(one.post("/uploads", json={"uri": f"s3://{BUCKET}/x", "part_size": 1}), 400)


def test_completing_with_a_missing_or_corrupt_part_fails_and_creates_nothing(
    gateway: Gateway, one: httpx.Client
) -> None:
    name = key()
    session = start(one, f"s3://{BUCKET}/{name}", size=PART + 5, part_size=PART)
    first = put_part(one, session, 1, os.urandom(PART)).json()
    complete = f"/uploads/{session['upload_id']}/complete"
    assert_error(one.post(complete, json={}), 400, "invalid_part")  # part 2 missing
    bad = {"parts": [{"part_number": 1, "etag": "0" * 32}]}
    assert_error(one.post(complete, json=bad), 400, "invalid_part")
    assert gateway.read(BUCKET, name) is None
    assert put_part(one, session, 2, b"12345").status_code == 200
    stored = one.get(f"/uploads/{session['upload_id']}").json()["parts"]
    parts = [first, {"part_number": 2, "etag": stored[1]["etag"]}]
    assert one.post(complete, json={"parts": parts}).status_code == 200
    assert len(gateway.read(BUCKET, name) or b"") == PART + 5


def test_a_part_larger_than_the_part_size_or_beyond_the_size_is_refused(
    one: httpx.Client,
) -> None:
    session = start(one, f"s3://{BUCKET}/{key()}", size=PART, part_size=PART)
    assert_error(put_part(one, session, 1, b"x" * (PART + 1)), 413, "too_large")
    assert_error(put_part(one, session, 2, b"x"), 400, "invalid_part")
    assert one.put(f"/uploads/{session['upload_id']}/parts/0", content=b"x").status_code == 422


def test_an_expired_session_answers_410_and_the_sweep_removes_its_parts(
    gateway: Gateway, one: httpx.Client
) -> None:
    session = start(one, f"s3://{BUCKET}/{key()}", part_size=PART)
    assert put_part(one, session, 1, os.urandom(PART)).status_code == 200
    pending = one.get("/uploads", params={"prefix": "large/"}).json()["uploads"]
    assert session["uri"] in [u["uri"] for u in pending]
    time.sleep(max(0.0, session["expires_at"] - time.time()) + 1.1)
    assert_error(put_part(one, session, 2, b"late"), 410, "upload_expired")
    assert_error(one.post(f"/uploads/{session['upload_id']}/complete"), 410, "upload_expired")
    swept = gateway.admin.post("/gateway/uploads/sweep")
    assert swept.status_code == 200, swept.text
    assert swept.json()["aborted"] >= 1
    pending = one.get("/uploads", params={"prefix": "large/"}).json()["uploads"]
    assert session["uri"] not in [u["uri"] for u in pending]
