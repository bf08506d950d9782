"""``upload_large`` and ``refstore upload`` of large files, through real ``refstore serve``
processes on MinIO and on the local backend: parallel parts (straight to storage when
the key may presign), resumed after a SIGKILL by running the same upload again, a
changed source started afresh, and sessions that stay their starter's."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import BACKENDS, Gateway, backend_settings, running_gateway
from gateway_helpers import unique as unique_name
from polling import wait_until
from sdk_helpers import Progress, Unseekable, open_client, upload_killed_at

from refstore import errors
from refstore.checksums import crc32c_of

MiB = 1024 * 1024
PART = 5 * MiB
BIG = 256 * MiB
BIG_PART = 16 * MiB
PARALLEL = 4
BUCKET = unique_name("large")
TOKENS = {name: f"tok-{name}-{secrets.token_hex(12)}" for name in ("admin", "one", "two", "nop")}


def api_key(name: str, actions: list[str]) -> dict[str, Any]:
    return {"key": TOKENS[name], "project": name, "buckets": [BUCKET], "actions": actions}


AUTH = {
    "mode": "keys",
    "admin_tokens": [TOKENS["admin"]],
    "api_keys": [
        api_key("one", ["read", "write", "list", "presign"]),
        api_key("two", ["read", "write", "list", "presign"]),
        api_key("nop", ["read", "write", "list"]),  # may not presign: parts via the gateway
    ],
}
PART_URL = "/uploads/{upload_id}/parts/{part_number}/url"
PART_PUT = "/uploads/{upload_id}/parts/{part_number}"


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings.update(default_bucket=BUCKET, auth=AUTH)
    with running_gateway(
        request.param, settings, TOKENS["admin"], links_to_self=request.param == "local"
    ) as gw:
        gw.create_bucket(BUCKET)
        yield gw


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "checkpoint.bin"
    with path.open("wb") as file:
        for _ in range(BIG // (16 * MiB)):
            file.write(os.urandom(16 * MiB))
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def new_uri(name: str = "data.bin") -> str:
    return f"s3://{BUCKET}/large/{secrets.token_hex(6)}/{name}"


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def routes_since(gateway: Gateway, mark: int) -> list[str]:
    """The routes of the access-log lines after the first ``mark`` lines of the log."""
    time.sleep(0.2)  # access lines are written just after each answer
    return [
        entry["route"]
        for entry in gateway.log_entries()[mark:]
        if entry.get("logger") == "refstore.access"
    ]


def log_mark(gateway: Gateway) -> int:
    time.sleep(0.2)  # access lines are written just after each answer
    return len(gateway.log_entries())


class Interrupted(Exception):
    """Raised from a progress callback to cut an upload off in the middle."""


def interrupt(client: Any, source: Path, uri: str, state_dir: Path, limit: int) -> None:
    """Start ``upload_large`` and cut it off after about ``limit`` bytes."""

    def report(n: int) -> None:
        report.total += n  # type: ignore[attr-defined]
        if report.total >= limit:  # type: ignore[attr-defined]
            raise Interrupted

    report.total = 0  # type: ignore[attr-defined]
    with pytest.raises(Interrupted):
        client.upload_large(
            source, uri, part_size=PART, parallel=2, state_dir=state_dir, progress=report
        )


@pytest.mark.parametrize("face", ["sync", "async"])
def test_parts_go_straight_to_storage_in_parallel_and_the_object_is_whole(
    gateway: Gateway, face: str, tmp_path: Path, state_dir: Path
) -> None:
    source = tmp_path / "video.mp4"
    data = write_random(source, 3 * PART + 12345)
    uri = new_uri("video.mp4")
    progress = Progress()
    mark = log_mark(gateway)
    with open_client(face, gateway.url, api_key=TOKENS["one"]) as client:
        result = client.upload_large(
            source, uri, part_size=PART, parallel=PARALLEL, progress=progress, state_dir=state_dir
        )
        info = client.get_file_info(uri)["info"]
    checksums = result.pop("checksums")
    assert result == {
        "uri": uri,
        "success": True,
        "message": "File uploaded successfully",
        "size": len(data),
    }
    assert checksums["crc32c"] == info["checksums"]["crc32c"] == crc32c_of(data)
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data
    assert info["content_type"] == "video/mp4"
    assert progress.total == len(data) and min(progress.increments) > 0
    routes = routes_since(gateway, mark)
    # Four presigned part URLs, and no part body through the session route.
    assert routes.count(PART_URL) == 4 and PART_PUT not in routes
    assert list(state_dir.glob("*.json")) == []  # the finished upload leaves no state


def test_a_key_that_may_not_presign_sends_its_parts_through_the_gateway(
    gateway: Gateway, tmp_path: Path, state_dir: Path
) -> None:
    source = tmp_path / "data.bin"
    data = write_random(source, 2 * PART + 1)
    uri = new_uri()
    mark = log_mark(gateway)
    with open_client("sync", gateway.url, api_key=TOKENS["nop"]) as client:
        client.upload_large(source, uri, part_size=PART, state_dir=state_dir)
        with pytest.raises(errors.PermissionDeniedError):
            client.upload_large(source, new_uri(), part_size=PART, direct=True)
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data
    assert routes_since(gateway, mark).count(PART_PUT) == 3


def test_a_seekable_file_object_is_sent_in_parts_from_its_position(gateway: Gateway) -> None:
    data = os.urandom(2 * PART + 77)
    stream = io.BytesIO(b"header" + data)
    stream.seek(6)
    uri = new_uri()
    with open_client("async", gateway.url, api_key=TOKENS["one"]) as client:
        assert client.upload_large(stream, uri, part_size=PART)["size"] == len(data)
        with pytest.raises(errors.InvalidInputError):
            client.upload_large(Unseekable(data), new_uri())
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data


@pytest.mark.parametrize("face", ["sync", "async"])
def test_an_interrupted_upload_resumes_with_the_missing_parts_only(
    gateway: Gateway, face: str, tmp_path: Path, state_dir: Path
) -> None:
    source = tmp_path / "data.bin"
    data = write_random(source, 6 * PART + 10)
    uri = new_uri()
    resumed: list[tuple[int, int]] = []
    progress = Progress()
    with open_client(face, gateway.url, api_key=TOKENS["one"]) as client:
        interrupt(client, source, uri, state_dir, 3 * PART)
        [pending] = client.resumable_uploads(state_dir=state_dir)
        assert (pending["uri"], pending["source"], pending["size"]) == (uri, str(source), len(data))
        stored = client.get_upload(pending["upload_id"])["parts"]
        assert stored, "the parts sent before the cut are stored"
        result = client.upload_large(
            source,
            uri,
            part_size=PART,
            state_dir=state_dir,
            progress=progress,
            on_resume=lambda parts, size: resumed.append((parts, size)),
        )
        assert client.resumable_uploads(state_dir=state_dir) == []
        with pytest.raises(errors.UploadNotFoundError):
            client.get_upload(pending["upload_id"])  # completed: the session is gone
    assert result["size"] == len(data)
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data
    # (A part in flight at the cut may still have landed after the listing above.)
    [(parts, skipped)] = resumed
    assert len(stored) <= parts < 7 and skipped == parts * PART
    # The skipped parts are reported first, in one call; the rest are sent once.
    assert progress.increments[0] == skipped and progress.total == len(data)


def test_a_changed_source_file_is_not_resumed_but_sent_again(
    gateway: Gateway, tmp_path: Path, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "data.bin"
    write_random(source, 4 * PART)
    uri = new_uri()
    resumed: list[Any] = []
    with open_client("sync", gateway.url, api_key=TOKENS["one"]) as client:
        interrupt(client, source, uri, state_dir, 2 * PART)
        [old] = client.resumable_uploads(state_dir=state_dir)
        changed = write_random(source, 4 * PART)  # same size, new bytes and mtime
        os.utime(source, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        with caplog.at_level(logging.WARNING, logger="refstore.gateway"):
            client.upload_large(
                source, uri, part_size=PART, state_dir=state_dir, on_resume=resumed.append
            )
        with pytest.raises(errors.UploadNotFoundError):
            client.get_upload(old["upload_id"])  # the old session was aborted
    assert resumed == [] and "changed since its upload was interrupted" in caplog.text
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == changed


def test_a_state_whose_session_is_gone_starts_again(
    gateway: Gateway, tmp_path: Path, state_dir: Path
) -> None:
    source = tmp_path / "data.bin"
    data = write_random(source, 3 * PART)
    uri = new_uri()
    with open_client("sync", gateway.url, api_key=TOKENS["one"]) as client:
        interrupt(client, source, uri, state_dir, PART)
        [old] = client.resumable_uploads(state_dir=state_dir)
        # Aborted behind the state file's back (as an expired session is swept).
        with gateway.client(TOKENS["one"]) as raw:
            assert raw.delete(f"/uploads/{old['upload_id']}").status_code == 200
        client.upload_large(source, uri, part_size=PART, state_dir=state_dir)
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data


def test_another_key_neither_finds_nor_continues_the_session(
    gateway: Gateway, tmp_path: Path, state_dir: Path
) -> None:
    source = tmp_path / "data.bin"
    data = write_random(source, 3 * PART)
    uri = new_uri()
    with open_client("sync", gateway.url, api_key=TOKENS["one"]) as one:
        interrupt(one, source, uri, state_dir, PART)
        [pending] = one.resumable_uploads(state_dir=state_dir)
        with open_client("sync", gateway.url, api_key=TOKENS["two"]) as two:
            assert two.resumable_uploads(state_dir=state_dir) == []
            with pytest.raises(errors.PermissionDeniedError):
                two.get_upload(pending["upload_id"])
            with pytest.raises(errors.PermissionDeniedError):
                two.abort_upload(pending["upload_id"], state_dir=state_dir)
            two.upload_large(source, uri, part_size=PART, state_dir=state_dir)  # its own
        assert one.get_upload(pending["upload_id"])["uri"] == uri  # still open
        one.abort_upload(pending["upload_id"], state_dir=state_dir)
        assert one.resumable_uploads(state_dir=state_dir) == []
        with pytest.raises(errors.UploadNotFoundError):
            one.get_upload(pending["upload_id"])
    assert gateway.read(BUCKET, uri.split("/", 3)[3]) == data


def test_upload_from_local_sends_files_above_the_session_threshold_in_a_session(
    gateway: Gateway, tmp_path: Path
) -> None:
    source = tmp_path / "report.pdf"
    data = write_random(source, 2 * PART)
    small = tmp_path / "small.txt"
    small.write_bytes(b"small")
    mark = log_mark(gateway)
    with open_client(
        "sync", gateway.url, api_key=TOKENS["one"], session_threshold=2 * PART
    ) as client:
        with_path = client.upload_from_local(source, BUCKET, "reports")
        generated = client.upload_from_local(source, BUCKET)
        below = client.upload_from_local(small, BUCKET, "reports")
    routes = routes_since(gateway, mark)
    assert routes.count("/uploads") == 2 and routes.count("/files/{bucket}/{key:path}") == 1
    assert with_path["uri"] == f"s3://{BUCKET}/reports/report.pdf"
    assert generated["uri"].endswith(".pdf") and generated["size"] == len(data)
    for result in (with_path, generated):
        assert gateway.read(BUCKET, result["uri"].split("/", 3)[3]) == data
    assert below["size"] == 5


# -- killed processes -----------------------------------------------------------------


def test_a_process_killed_at_half_resumes_sending_at_most_the_missing_and_in_flight_parts(
    gateway: Gateway, big_file: Path, state_dir: Path
) -> None:
    uri = new_uri("checkpoint.bin")
    reported = upload_killed_at(
        gateway.url,
        TOKENS["one"],
        big_file,
        uri,
        state_dir,
        part_size=BIG_PART,
        parallel=PARALLEL,
        at=BIG // 2,
    )
    assert reported < BIG
    mark = log_mark(gateway)
    resumed: list[tuple[int, int]] = []
    progress = Progress()
    with open_client("sync", gateway.url, api_key=TOKENS["one"]) as client:
        result = client.upload_large(
            big_file,
            uri,
            state_dir=state_dir,
            progress=progress,
            on_resume=lambda parts, size: resumed.append((parts, size)),
        )
    assert result["size"] == BIG
    [(parts, skipped)] = resumed
    sent = progress.total - skipped
    # At most the parts not yet reported plus those that were in flight at the kill.
    assert sent <= BIG - reported + PARALLEL * BIG_PART, (sent, reported, skipped)
    assert sent == BIG - skipped and skipped >= BIG // 2 - PARALLEL * BIG_PART
    routes = routes_since(gateway, mark)
    # Only the missing parts were sent again (straight, or through the gateway).
    assert routes.count(PART_URL) + routes.count(PART_PUT) == BIG // BIG_PART - parts
    assert_same_object(gateway, uri, big_file)


def assert_same_object(gateway: Gateway, uri: str, source: Path) -> None:
    with gateway.admin.stream("GET", "/download", params={"uri": uri}) as response:
        assert response.status_code == 200
        with source.open("rb") as expected:
            for chunk in response.iter_bytes(4 * MiB):
                assert chunk == expected.read(len(chunk)), "the object differs from the file"
            assert expected.read(1) == b"", "the object is shorter than the file"


def test_the_cli_resumes_a_killed_upload_says_so_and_lists_and_aborts_sessions(
    gateway: Gateway, big_file: Path, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")},
        "REFSTORE_GATEWAY_URL": gateway.url,
        "REFSTORE_API_KEY": TOKENS["one"],
        "REFSTORE_STATE_DIR": str(tmp_path / "state"),
    }
    folder = f"s3://{BUCKET}/cli-{secrets.token_hex(4)}/"
    command = [sys.executable, "-m", "refstore.cli", "upload", str(big_file), folder]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "refstore.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done

    def stop_after_parts(count: int, how: signal.Signals = signal.SIGKILL) -> str:
        mark = log_mark(gateway)
        with subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as process:
            wait_until(
                lambda: (
                    len([r for r in routes_since(gateway, mark) if r in (PART_URL, PART_PUT)])
                    >= count
                    or process.poll() is not None
                ),
                timeout=120,
                what="the CLI upload sending its parts",
            )
            process.send_signal(how)
            _, stderr = process.communicate(timeout=30)
        stopped = -how if how == signal.SIGKILL else 130  # Ctrl-C: the CLI's own status
        assert process.returncode == stopped, f"the upload was not stopped: {stderr}"
        return stderr

    stop_after_parts(8)
    listed = json.loads(run("--json", "uploads", "ls").stdout)
    [pending] = listed["resumable"]
    assert pending["source"] == str(big_file)
    assert f"{folder}checkpoint.bin" in [u["uri"] for u in listed["in_progress"]]
    done = run("upload", str(big_file), folder)
    assert "resuming the interrupted upload of" in done.stderr and "already stored" in done.stderr
    assert done.stdout.strip() == f"upload: {big_file} -> {folder}checkpoint.bin"
    assert_same_object(gateway, f"{folder}checkpoint.bin", big_file)
    assert json.loads(run("--json", "uploads", "ls").stdout)["resumable"] == []

    # Ctrl-C: a prompt exit that says how to resume, without retrying the parts cut off.
    interrupted = stop_after_parts(2, signal.SIGINT)
    assert "run the same command again to resume" in interrupted
    assert "; retry " not in interrupted
    aborted = run("uploads", "abort", str(big_file))
    assert "aborted the upload to" in aborted.stdout
    listed = json.loads(run("--json", "uploads", "ls").stdout)
    assert listed["resumable"] == []
    assert f"{folder}checkpoint.bin" not in [u["uri"] for u in listed["in_progress"]]
