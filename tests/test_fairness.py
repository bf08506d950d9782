"""No client can hold what the others need: slow, stalled and abandoned uploads against a
real ``refstore serve`` on MinIO and on the local backend.

Every upload here is sent by hand over a socket, so that it can stall at an exact point.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from gateway_helpers import (
    BACKENDS,
    Gateway,
    HandSentUpload,
    assert_error,
    backend_settings,
    running_gateway,
    uploads_in_progress,
)
from gateway_process import ADMIN_TOKEN
from polling import wait_until
from servers import MinioServer

from refstore import errors

MiB = 1024 * 1024
KEY_A, KEY_B = "fairness-key-a", "fairness-key-b"


def settings_with(backend_part: dict[str, Any], **server: Any) -> dict[str, Any]:
    return {
        **backend_part,
        "default_bucket": "fair",
        "auth": {
            "mode": "keys",
            "admin_tokens": [ADMIN_TOKEN],
            "api_keys": [
                {"key": KEY_A, "project": "a", "buckets": ["fair"]},
                {"key": KEY_B, "project": "b", "buckets": ["fair"]},
            ],
        },
        "server": {"storage_threads": 4, **server},
    }


@contextmanager
def gateway_for(backend: str, request, tmp_path_factory, **server: Any) -> Iterator[Gateway]:
    part = backend_settings(backend, request, tmp_path_factory)
    with running_gateway(backend, settings_with(part, **server)) as gateway:
        yield gateway


def stalled_form(gateway: Gateway, path: str, token: str = ADMIN_TOKEN) -> HandSentUpload:
    """A form whose file part starts and never ends (about 200 bytes sent)."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\nsome bytes"
    ).encode()
    return HandSentUpload.form(gateway, body, boundary, token)


def short_calls_answer(gateway: Gateway, uri: str, within: float) -> dict[str, float]:
    """Each short call answers 200 within ``within`` seconds; returns their times."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    calls = {
        "info": ("/info", {"uri": uri}),
        "download": (f"/files/{bucket}/{key}", {}),
        "list": ("/list", {"logic_bucket": bucket, "prefix": "present"}),
        "ready": ("/ready", {}),
        "presigned-url": ("/presigned-url", {"uri": uri}),
    }
    times = {}
    with httpx.Client(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=within,
        trust_env=False,
    ) as client:
        for name, (path, params) in calls.items():
            started = time.monotonic()
            response = client.get(path, params=params)
            times[name] = time.monotonic() - started
            assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    return times


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["form", "raw"])
def test_32_stalled_uploads_do_not_starve_the_short_calls(backend, kind, request, tmp_path_factory):
    """32 uploads whose bodies stall (a form before its file part ends, raw PUTs after
    3 MiB) on a gateway with 4 storage threads: every short call still answers at once,
    and when the clients give up, their slots are free and nothing was stored."""
    caps = {"max_concurrent_uploads": 40, "max_uploads_per_key": 40}
    with gateway_for(backend, request, tmp_path_factory, **caps) as gateway:
        uri = gateway.put("fair", "present/object.txt", b"here before")
        with ExitStack() as stack:
            for i in range(32):
                if kind == "form":
                    upload = stalled_form(gateway, f"stalled/{i}")
                else:
                    upload = HandSentUpload.raw(gateway, f"stalled/{i}", b"x" * 3 * MiB, 8 * MiB)
                stack.callback(upload.close)
            wait_until(lambda: uploads_in_progress(gateway) == 32, 30, "32 uploads admitted")
            times = short_calls_answer(gateway, uri, within=3)
            assert max(times.values()) < 3, times
        wait_until(lambda: uploads_in_progress(gateway) == 0, 10, "slots freed")
        assert gateway.keys("fair", "stalled") == []
        short_calls_answer(gateway, uri, within=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["form", "raw"])
def test_a_stalled_body_is_answered_408_and_nothing_is_stored(
    backend, kind, request, tmp_path_factory
):
    with gateway_for(backend, request, tmp_path_factory, body_idle_timeout=1) as gateway:
        if kind == "form":
            upload = stalled_form(gateway, "idle")
        else:
            upload = HandSentUpload.raw(gateway, "idle/object", b"x" * 3 * MiB, 8 * MiB)
        try:
            started = time.monotonic()
            status, body = upload.answer(timeout=10)
            elapsed = time.monotonic() - started
        finally:
            upload.close()
        assert status == 408, body
        assert b'"code":"request_timeout"' in body and b"body_idle_timeout" in body
        assert 0.9 < elapsed < 5
        wait_until(lambda: uploads_in_progress(gateway) == 0, 5, "slot freed")
        assert gateway.keys("fair", "idle") == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trickle_under_the_minimum_rate_is_refused_and_a_steady_upload_is_not(
    backend, request, tmp_path_factory
):
    limits = {"min_body_rate": 256 * 1024, "body_rate_window": 1.0, "body_idle_timeout": 30}
    with gateway_for(backend, request, tmp_path_factory, **limits) as gateway:
        trickle = HandSentUpload.raw(gateway, "slow/trickle", b"", 4 * MiB)
        try:
            started = time.monotonic()
            for _ in range(40):  # 4 KiB every 0.1 s: 40 KiB/s, never idle
                trickle.sock.sendall(b"t" * 4096)
                time.sleep(0.1)
                trickle.sock.settimeout(0.01)
                try:
                    if trickle.sock.recv(1, socket.MSG_PEEK):
                        break
                except TimeoutError:
                    pass
            status, body = trickle.answer(timeout=5)
            elapsed = time.monotonic() - started
        finally:
            trickle.close()
        assert status == 408 and b"min_body_rate" in body, body
        assert elapsed < 4

        # 2 MiB at about 1 MiB/s, four times the minimum: stored whole.
        data = os.urandom(2 * MiB)

        def steady() -> Iterator[bytes]:
            for offset in range(0, len(data), 64 * 1024):
                yield data[offset : offset + 64 * 1024]
                time.sleep(1 / 16)

        response = gateway.admin.put("/files/fair/slow/steady", content=steady())
        assert response.status_code == 200, response.text
        assert gateway.read("fair", "slow/steady") == data
        assert gateway.keys("fair", "slow") == ["slow/steady"]


def test_upload_caps_answer_429_for_a_key_and_503_in_total(request, tmp_path_factory):
    caps = {"max_concurrent_uploads": 3, "max_uploads_per_key": 2, "retry_after": 4}
    with gateway_for("local", request, tmp_path_factory, **caps) as gateway:
        uri = gateway.put("fair", "present/object.txt", b"here before")
        with ExitStack() as stack:
            for i in range(2):
                stack.callback(stalled_form(gateway, f"held/a{i}", KEY_A).close)
            wait_until(lambda: uploads_in_progress(gateway) == 2, 10, "2 uploads admitted")
            with gateway.client(KEY_A) as client_a:
                refused = client_a.put("/files/fair/held/a-third", content=b"x")
            assert_error(refused, 429, "too_many_requests")
            assert refused.headers["retry-after"] == "4"

            stack.callback(stalled_form(gateway, "held/b0", KEY_B).close)
            wait_until(lambda: uploads_in_progress(gateway) == 3, 10, "3 uploads admitted")
            busy = gateway.admin.put("/files/fair/held/admin", content=b"x")
            assert_error(busy, 503, "busy")
            assert busy.headers["retry-after"] == "4"
            short_calls_answer(gateway, uri, within=3)  # other calls are not refused
            assert gateway.metrics()[("refstore_backend_up", ())] == 1  # busy is not down
        wait_until(lambda: uploads_in_progress(gateway) == 0, 10, "slots freed")
        with gateway.client(KEY_A) as client_a:
            assert client_a.put("/files/fair/held/a-later", content=b"x").status_code == 200
        assert gateway.keys("fair", "held") == ["held/a-later"]


def test_the_sdk_sends_a_refused_form_upload_again_and_it_lands_once(request, tmp_path_factory):
    """POST /upload is not idempotent, but a 429 says it was not acted on: the SDK waits
    Retry-After and sends it again, and exactly one object is stored."""
    from refstore.gateway import GatewayClient

    caps = {"max_concurrent_uploads": 4, "max_uploads_per_key": 1, "retry_after": 1}
    with gateway_for("local", request, tmp_path_factory, **caps) as gateway:
        held = stalled_form(gateway, "sdk/held", KEY_A)
        wait_until(lambda: uploads_in_progress(gateway) == 1, 10, "the slot held")
        threading.Timer(1.5, held.close).start()
        with GatewayClient(gateway.url, api_key=KEY_A, retry=5) as client:
            started = time.monotonic()
            # No path: the gateway makes the key up, so this is POST /upload.
            result = client.upload_file(b"payload", "report.txt")
            waited = time.monotonic() - started
        key = result["uri"].removeprefix("s3://fair/")
        assert waited >= 1
        assert gateway.keys("fair") == [key]
        assert gateway.read("fair", key) == b"payload"
        statuses = [
            e["status"]
            for e in gateway.log_entries()
            if e.get("logger") == "refstore.access" and e.get("route") == "/upload"
        ]
        assert 429 in statuses and statuses.count(200) == 1, statuses


def _form_stages() -> dict[str, bytes]:
    boundary = "b0undary"
    full = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\ngone\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return {
        "before-the-first-boundary": b"",
        "in-a-part-header": full[: full.index(b"name=")],
        "in-a-text-field": full[: full.index(b"gone") + 2],
        "in-the-file-part": full + b"y" * (2 * MiB),
        "before-the-closing-boundary": full + b"y" * 100 + f"\r\n--{boundary}".encode(),
    }


FORM_STAGES = _form_stages()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stage", [*FORM_STAGES, "raw-mid-body", "raw-all-but-one-byte"])
def test_a_client_that_goes_away_frees_its_slot_at_every_stage(
    backend, stage, request, tmp_path_factory
):
    with gateway_for(backend, request, tmp_path_factory) as gateway:
        if stage in FORM_STAGES:
            upload = HandSentUpload.form(gateway, FORM_STAGES[stage], "b0undary")
        elif stage == "raw-mid-body":
            upload = HandSentUpload.raw(gateway, "gone/raw", b"z" * (3 * MiB), 8 * MiB)
        else:
            upload = HandSentUpload.raw(gateway, "gone/raw", b"z" * (2 * MiB - 1), 2 * MiB)
        wait_until(lambda: uploads_in_progress(gateway) == 1, 10, "the upload admitted")
        upload.close()
        wait_until(lambda: uploads_in_progress(gateway) == 0, 5, "the slot freed")
        assert gateway.keys("fair", "gone") == []
        assert gateway.admin.put("/files/fair/after", content=b"ok").status_code == 200


def test_sigterm_with_stalled_uploads_exits_within_the_grace(request, tmp_path_factory):
    part = backend_settings("minio", request, tmp_path_factory)
    settings = settings_with(part, shutdown_grace=2)
    with running_gateway("minio", settings) as gateway, ExitStack() as stack:
        for i in range(8):
            stack.callback(stalled_form(gateway, f"term/{i}").close)
        stack.callback(HandSentUpload.raw(gateway, "term/raw", b"r" * MiB, 4 * MiB).close)
        wait_until(lambda: uploads_in_progress(gateway) == 9, 10, "9 uploads admitted")
        keys_before = gateway.keys("fair", "term")
        process = gateway.process.process
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        elapsed = time.monotonic() - started
        assert elapsed < 8, gateway.log()
        # uvicorn ends by re-raising the signal it handled, once shutdown is complete.
        assert process.returncode in (0, -signal.SIGTERM), gateway.log()
        assert "Application shutdown complete" in gateway.log()
    assert keys_before == []
    minio = request.getfixturevalue("minio_server")
    from minio import Minio

    client = Minio(minio.endpoint, minio.access_key, minio.secret_key, secure=False)
    if client.bucket_exists("fair"):
        assert [o.object_name for o in client.list_objects("fair", "term/", recursive=True)] == []


@pytest.fixture
def pausable_minio(tmp_path_factory) -> Iterator[MinioServer]:
    with MinioServer(tmp_path_factory.mktemp("fair-minio")) as server:
        yield server


def test_a_paused_backend_makes_ready_say_503_in_time_and_sheds_queued_calls(
    pausable_minio, tmp_path_factory
):
    settings = {**pausable_minio.config(), "default_bucket": "fair"}
    settings["minio"] = {**settings["minio"], "connect_timeout": 1, "read_timeout": 6}
    settings["server"] = {"storage_threads": 1, "max_queued_calls": 1, "ready_timeout": 1}
    with running_gateway("minio", settings) as gateway:
        uri = gateway.put("fair", "present/object.txt", b"here before")
        with pausable_minio.paused():
            for _ in range(4):  # probes stuck in the hung backend do not pile up
                started = time.monotonic()
                ready = gateway.admin.get("/ready")
                assert ready.status_code == 503 and time.monotonic() - started < 3
            assert gateway.admin.get("/health").status_code == 200

            answers: list[httpx.Response] = []

            def info() -> None:
                with gateway.client(ADMIN_TOKEN) as client:
                    answers.append(client.get("/info", params={"uri": uri}))

            threads = [threading.Thread(target=info) for _ in range(4)]
            for thread in threads:
                thread.start()
                time.sleep(0.2)  # one runs, one waits, the rest are shed
            wait_until(lambda: len(answers) >= 2, 3, "the calls past the queue answered")
            shed = [a for a in answers if a.status_code == 503]
            assert len(shed) >= 2
            for answer in shed:
                assert_error(answer, 503, "busy")
                assert int(answer.headers["retry-after"]) > 0
        for thread in threads:
            thread.join(15)
        started = time.monotonic()
        wait_until(lambda: gateway.admin.get("/ready").status_code == 200, 15, "ready again")
        assert gateway.admin.get("/info", params={"uri": uri}).json()["exists"] is True


def outcome_settings(server: MinioServer) -> dict[str, Any]:
    settings = {**server.config(), "default_bucket": "fair", "retry": {"max_retries": 0}}
    settings["minio"] = {**settings["minio"], "connect_timeout": 1, "read_timeout": 2}
    return settings


def test_a_write_sent_whole_and_unanswered_is_504_outcome_unknown(pausable_minio):
    """MinIO paused after taking a small PUT whole: the gateway cannot know whether it will
    be stored, and says so; once MinIO resumes, the object is either whole or absent."""
    with running_gateway("minio", outcome_settings(pausable_minio)) as gateway:
        gateway.put("fair", "known/bucket", b"the bucket exists")
        with pausable_minio.paused():
            started = time.monotonic()
            answer = gateway.admin.put("/files/fair/unknown/small", content=b"s" * 1000)
            elapsed = time.monotonic() - started
        assert_error(answer, 504, "outcome_unknown")
        assert int(answer.headers["retry-after"]) > 0
        assert 1.5 < elapsed < 8
        wait_until(lambda: gateway.admin.get("/ready").status_code == 200, 15, "ready again")
        assert gateway.read("fair", "unknown/small") in (None, b"s" * 1000)


def test_a_write_cut_off_before_its_end_is_503_and_never_appears(pausable_minio):
    """A body too big for the socket buffers never reaches a paused MinIO whole: that
    write did not happen (503), and nothing appears once MinIO resumes."""
    with running_gateway("minio", outcome_settings(pausable_minio)) as gateway:
        gateway.put("fair", "known/bucket", b"the bucket exists")
        with pausable_minio.paused():
            answer = gateway.admin.put("/files/fair/unknown/big", content=b"b" * (64 * MiB))
        assert_error(answer, 503, "backend_unavailable")
        wait_until(lambda: gateway.admin.get("/ready").status_code == 200, 15, "ready again")
        time.sleep(1)
        assert gateway.read("fair", "unknown/big") is None
        assert gateway.keys("fair", "unknown") == []


def test_the_sdk_does_not_repeat_a_form_upload_whose_outcome_is_unknown(pausable_minio):
    from refstore.gateway import GatewayClient

    with running_gateway("minio", outcome_settings(pausable_minio)) as gateway:
        gateway.put("fair", "known/bucket", b"the bucket exists")
        with GatewayClient(gateway.url, api_key=ADMIN_TOKEN, retry=3) as client:
            with pausable_minio.paused(), pytest.raises(errors.OutcomeUnknownError) as raised:
                client.upload_file(b"u" * 1000, "form.txt")  # no path: POST /upload
            assert raised.value.status == 504
        posts = [
            e
            for e in gateway.log_entries()
            if e.get("logger") == "refstore.access" and e.get("route") == "/upload"
        ]
        assert [e["status"] for e in posts] == [504]


def test_a_json_body_cut_off_or_stalled_is_answered_and_leaves_no_trace(request, tmp_path_factory):
    with gateway_for("local", request, tmp_path_factory, body_idle_timeout=1) as gateway:
        head = (
            "DELETE /delete HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        ).encode()
        stalled = HandSentUpload(gateway, head, b'{"uris": [')
        status, body = stalled.answer(timeout=10)
        stalled.close()
        assert status == 408 and b"request_timeout" in body, body
        HandSentUpload(gateway, head, b'{"uris": [').close()  # goes away mid-body
        assert gateway.admin.request("DELETE", "/delete", json={"uris": []}).status_code == 200
        assert "Traceback" not in gateway.log()
