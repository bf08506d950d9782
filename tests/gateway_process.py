"""A real gateway process (``refstore serve``) on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from servers import free_port

ADMIN_TOKEN = "admin-test-token"


def wait_for_http(
    process: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    what: str,
    log: Callable[[], str],
) -> None:
    """Wait until ``url`` answers 200 while ``process`` runs.

    Raises:
        RuntimeError: the process exited or ``url`` did not answer in time (with its log).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout}s:\n{log()}")


class GatewayProcess:
    """Runs ``refstore serve --config <yaml>`` built from ``settings``.

    ``settings`` is the YAML document as a dict (see README "Configuration");
    an admin token is added unless ``auth`` is given. ``host``/``port`` are where it listens
    (default 127.0.0.1 and a free port); ``command_prefix`` is put before the command (e.g.
    ``ip netns exec NAME``, see netns.GatewayPod).
    """

    def __init__(
        self,
        settings: dict[str, Any],
        env: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.settings = dict(settings)
        self.settings.setdefault("auth", {"mode": "keys", "admin_tokens": [ADMIN_TOKEN]})
        self.host = host
        self.port = free_port() if port is None else port
        self._command_prefix = list(command_prefix)
        self._dir = Path(tempfile.mkdtemp(prefix="refstore-gateway-"))
        self.config_path = self._dir / "gateway.yaml"
        self.log_path = self._dir / "gateway.log"
        self._env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30) -> GatewayProcess:
        self.config_path.write_text(yaml.safe_dump(self.settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}
        env.update(self._env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self._command_prefix,
                    sys.executable,
                    "-m",
                    "refstore.cli",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._dir,
            )
        wait_for_http(self.process, f"{self.url}/health", timeout, "gateway", self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
