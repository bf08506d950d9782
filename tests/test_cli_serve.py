"""`refstore serve` as a newcomer runs it."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from servers import free_port


def test_help_explains_options_and_environment():
    out = subprocess.run(
        [sys.executable, "-m", "refstore.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for text in (
        "--host",
        "--port",
        "--workers",
        "--config",
        "REFSTORE_MINIO__ENDPOINT",
        "REFSTORE_CONFIG",
    ):
        assert text in out


def test_serve_without_config_uses_local_storage_and_prints_a_token(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "refstore.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        # uvicorn says "running on" once its socket is bound; "Application startup
        # complete" comes before that, too early to connect.
        while "Uvicorn running on" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "embedded local backend" in text
        token = re.search(r"REFSTORE_API_KEY=(\S+)", text).group(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/files/default/hello.txt",
            data=b"hi",
            method="PUT",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        assert (tmp_path / "refstore-data" / "default" / "hello.txt").read_bytes() == b"hi"

        # The printed export line is all the CLI needs.
        exported = re.search(r"export (REFSTORE_GATEWAY_URL=\S+) (REFSTORE_API_KEY=\S+)", text)
        client_env = dict(env, **dict(pair.split("=", 1) for pair in exported.groups()))
        listing = subprocess.run(
            [sys.executable, "-m", "refstore.cli", "ls"],
            capture_output=True,
            text=True,
            env=client_env,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert "s3://default/hello.txt" in listing.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_a_bad_config_file_exits_with_a_message(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("auth: {mode: sometimes}\n")
    result = subprocess.run(
        [sys.executable, "-m", "refstore.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "auth" in result.stderr


def test_config_may_come_before_or_after_serve():
    from refstore.cli import build_parser

    assert build_parser().parse_args(["--config", "a.yaml", "serve"]).config == "a.yaml"
    assert build_parser().parse_args(["serve", "--config", "b.yaml"]).config == "b.yaml"
    assert build_parser().parse_args(["serve"]).config is None
