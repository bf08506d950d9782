"""Retries across a gateway restart: idempotent calls and replayable uploads go through
once a new gateway answers on the same port; a stream that cannot be replayed is not
sent twice; a broken download resumes where it stopped."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_helpers import http_client, unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from sdk_helpers import FACES, MiB, Progress, Unseekable, open_client, pattern_file

from refstore import errors
from refstore.gateway import RetryPolicy

PATIENT = RetryPolicy(max_retries=8, base_delay=0.2, max_delay=1.0)


class Restartable:
    """A gateway process that can be killed and brought back on the same port."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.process = GatewayProcess(settings).start()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return self.process.url

    def kill(self) -> None:
        """SIGKILL: connections break mid-request, as in a crash or OOM kill."""
        assert self.process.process is not None
        self.process.process.kill()
        self.process.process.wait()

    def restart_later(self, delay: float) -> None:
        """Start a new gateway on the same port after ``delay`` seconds, in a thread."""
        old = self.process

        def run() -> None:
            try:
                time.sleep(delay)
                new = GatewayProcess(self.settings)
                new.port = old.port
                self.process = new.start()
            except BaseException as exc:  # reported by wait()
                self._failure = exc
            finally:
                old.__exit__(None, None, None)  # its log and config go too

        self._thread = threading.Thread(target=run, name="gateway-restart")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        self.wait()
        self.process.__exit__(None, None, None)


@pytest.fixture
def gateway(minio_server: Any) -> Iterator[Restartable]:
    bucket = unique("sdk-retry")
    gateway = Restartable({**minio_server.config(), "default_bucket": bucket})
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    return len([r for r in caplog.records if "; retry " in r.getMessage()])


def test_idempotent_calls_succeed_across_a_gateway_restart(face, gateway, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "refstore.gateway")
    bucket = gateway.settings["default_bucket"]
    local = pattern_file(tmp_path / "local.bin", 3 * MiB)
    with open_client(face, gateway.url, retry=PATIENT) as client:
        uri = client.upload_file(b"before", "before.txt", bucket, "r")["uri"]
        gateway.process.stop()
        gateway.restart_later(1.0)
        # Every one of these is sent while the gateway is down, or just back.
        assert client.download_file(uri) == b"before"
        assert client.get_file_info(uri)["exists"]
        assert [f["s3_uri"] for f in client.list_files(bucket, "r/")["files"]] == [uri]
        sent = client.upload_file(io.BytesIO(b"seekable"), "s.txt", bucket, "r")
        from_disk = client.upload_from_local(tmp_path / "local.bin", bucket, "r", direct=False)
        assert client.download_file(from_disk["uri"]) == local
        assert client.download_file(sent["uri"]) == b"seekable"
        assert client.delete_files([sent["uri"]])["deleted"] == [sent["uri"]]
        gateway.wait()
    assert retries_logged(caplog) >= 1


def test_uploads_are_resent_only_when_the_body_can_be_replayed(face, gateway, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "refstore.gateway")
    bucket = gateway.settings["default_bucket"]
    data = pattern_file(tmp_path / "big.bin", 48 * MiB)
    with open_client(face, gateway.url, retry=PATIENT) as client:
        # A pipe-like stream: once bytes are sent, the gateway's crash is final.
        pipe = Progress(on_first=gateway.kill)
        with pytest.raises(errors.ConnectionError) as broken:
            client.upload_file(Unseekable(data), "pipe.bin", bucket, "u", progress=pipe)
        assert broken.value.context["phase"] == "transfer"
        assert retries_logged(caplog) == 0
        assert pipe.total == 0  # the bytes sent were taken back
        gateway.restart_later(0.2)
        gateway.wait()

        # A file: sent again from its start once the new gateway answers.
        def crash() -> None:
            gateway.kill()
            gateway.restart_later(0.5)

        progress = Progress(on_first=crash)
        result = client.upload_from_local(
            tmp_path / "big.bin", bucket, "u", progress=progress, direct=False
        )
        gateway.wait()
        assert result["size"] == len(data)
        assert client.download_file(result["uri"]) == data
        assert progress.total == len(data) and min(progress.increments) < 0
    assert retries_logged(caplog) >= 1


def test_the_parts_of_a_large_upload_are_retried_one_by_one_across_a_crash(
    face, gateway, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, "refstore.gateway")
    bucket = gateway.settings["default_bucket"]
    data = pattern_file(tmp_path / "large.bin", 6 * 5 * MiB + 7)

    def crash() -> None:
        gateway.kill()
        gateway.restart_later(0.5)

    progress = Progress(on_first=crash)
    with open_client(face, gateway.url, retry=PATIENT) as client:
        result = client.upload_large(
            tmp_path / "large.bin",
            f"s3://{bucket}/parts/large.bin",
            part_size=5 * MiB,
            direct=False,  # through the gateway that crashes
            progress=progress,
            state_dir=tmp_path / "state",
        )
        gateway.wait()
        assert client.download_file(result["uri"]) == data
    # The parts cut off were taken back and sent again; the session outlived the crash.
    assert progress.total == len(data) and min(progress.increments) < 0
    assert retries_logged(caplog) >= 1


def test_a_download_broken_by_a_crash_resumes_where_it_stopped(face, gateway, caplog):
    caplog.set_level(logging.WARNING, "refstore.gateway")
    bucket = gateway.settings["default_bucket"]
    data = os.urandom(96 * MiB)
    with http_client(gateway.url, ADMIN_TOKEN) as admin:
        assert admin.put(f"/files/{bucket}/big.bin", content=data).status_code == 200

    def crash() -> None:
        gateway.kill()
        gateway.restart_later(0.5)

    progress = Progress(on_first=crash)
    with open_client(face, gateway.url, retry=PATIENT) as client:
        received = client.download_file(f"s3://{bucket}/big.bin", progress=progress)
    gateway.wait()
    assert received == data and progress.total == len(data)
    assert any("resuming" in r.getMessage() for r in caplog.records)
