"""Real MinIO and nginx servers on 127.0.0.1 for the test suite (stdlib only)."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

CACHE_DIR = Path(os.environ.get("REFSTORE_CACHE", "~/.cache/refstore")).expanduser()
BIN_DIR = CACHE_DIR / "bin"

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_INSTALL_CMD = f"go install {MINIO_MODULE}@{MINIO_VERSION}"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
BIND_RETRY_WINDOW = 15.0

_live: set[MinioServer | NginxServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


def _how_to_get_minio() -> str:
    return (
        f"build it with: GOBIN={BIN_DIR} {MINIO_INSTALL_CMD} "
        "(needs Go; scripts/test does this), "
        "or set REFSTORE_MINIO_BIN to an existing minio binary"
    )


def _version_stamp() -> Path:
    return BIN_DIR / "minio.version"


def ensure_minio() -> Path:
    """Return the MinIO binary, building the pinned version into the cache if needed."""
    override = os.environ.get("REFSTORE_MINIO_BIN")
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeError(f"REFSTORE_MINIO_BIN={override} is not an executable file")
        return path

    binary = BIN_DIR / "minio"
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with open(BIN_DIR / ".minio.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _version_stamp()
        stale = stamp.exists() and stamp.read_text().strip() != MINIO_VERSION
        if binary.is_file() and os.access(binary, os.X_OK) and not stale:
            return binary

        go = shutil.which("go") or next(
            (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(p, os.X_OK)),
            None,
        )
        if go is None:
            raise RuntimeError(
                f"MinIO binary not found at {binary} and `go` is not installed; "
                + _how_to_get_minio()
            )
        print(
            f"building MinIO {MINIO_VERSION} into {BIN_DIR} (takes minutes on a cold cache)",
            file=sys.stderr,
            flush=True,
        )
        env = dict(os.environ, GOBIN=str(BIN_DIR))
        result = subprocess.run(
            [go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"],
            cwd=BIN_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=2,
            stderr=2,
            check=False,
        )
        if result.returncode != 0 or not binary.is_file():
            raise RuntimeError(
                f"building MinIO failed (exit {result.returncode}); " + _how_to_get_minio()
            )
        stamp.write_text(MINIO_VERSION + "\n")
        return binary


def ensure_nginx() -> Path:
    """Return the nginx binary or explain how to install it."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        raise RuntimeError(
            "nginx not found; install it with `apt-get install -y nginx-light` "
            "(scripts/test does this)"
        )
    return Path(found)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_status(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET url bypassing any proxy; return (status, x-minio-server-status) or (0, "")."""
    try:
        with _no_proxy.open(url, timeout=timeout) as resp:
            return resp.status, resp.headers.get("x-minio-server-status", "")
    except urllib.error.HTTPError as err:
        if err.fp is not None:
            err.close()
        status = err.headers.get("x-minio-server-status", "") if err.headers else ""
        return err.code, status
    except (OSError, urllib.error.URLError):
        return 0, ""


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class MinioServer:
    """A single-drive MinIO server on 127.0.0.1 backed by ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        access_key: str = "refstore-test",
        secret_key: str = "refstore-test-secret",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self._access_key = access_key
        self._secret_key = secret_key
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self._require_port()}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def log_path(self) -> Path:
        """MinIO's combined stdout/stderr (kept across restarts until close())."""
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="refstore-minio-log-"))
        return self._log_dir / "minio.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The server stopped (SIGSTOP) inside the block: alive, its sockets open, silent."""
        assert self._proc is not None, "the server is not running"
        os.kill(self._proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self._proc.pid, signal.SIGCONT)

    def config(self) -> dict[str, Any]:
        """Library config pointing at this server."""
        return {
            "minio": {
                "endpoint": self.endpoint,
                "access_key": self._access_key,
                "secret_key": self._secret_key,
                "secure": False,
            }
        }

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("MinIO server has no port yet; call start() first")
        return self.port

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "_MINIO"))}
        env.update(
            MINIO_ROOT_USER=self._access_key,
            MINIO_ROOT_PASSWORD=self._secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
            MINIO_CI_CD="1",
            MINIO_PROMETHEUS_AUTH_TYPE="public",
        )
        return env

    def _launch(self, binary: Path) -> subprocess.Popen[bytes]:
        port = self._require_port()
        cmd = [
            str(binary),
            "server",
            str(self.data_dir),
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
            "--quiet",
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            return subprocess.Popen(
                cmd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _port_busy(self, log_offset: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(log_offset)
            return b"already in use" in log.read()

    def _ready(self) -> bool:
        status, server_status = _http_status(f"{self.url}/minio/health/live")
        if status != 200 or server_status == "offline":
            return False
        return _http_status(f"{self.url}/minio/health/cluster")[0] == 200

    def start(self) -> MinioServer:
        """Start MinIO and wait until it serves requests."""
        if self.running:
            return self
        binary = ensure_minio()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        start = time.monotonic()
        deadline = start + START_TIMEOUT
        log_offset = self._log_size()
        proc = self._proc = self._launch(binary)
        _live.add(self)
        while True:
            if proc.poll() is not None:
                if self._port_busy(log_offset) and time.monotonic() - start < BIND_RETRY_WINDOW:
                    time.sleep(0.5)
                    log_offset = self._log_size()
                    proc = self._proc = self._launch(binary)
                    continue
                self._proc = None
                _live.discard(self)
                raise RuntimeError(
                    f"MinIO exited with code {proc.returncode} on {self.endpoint}; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"MinIO on {self.endpoint} not healthy after {START_TIMEOUT:.0f}s; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), killing after a timeout."""
        if self._proc is not None:
            _terminate(self._proc, signal.SIGTERM, STOP_TIMEOUT)
            self._proc = None
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the server now and wait for it to exit."""
        if self._proc is not None:
            _terminate(self._proc, signal.SIGKILL, STOP_TIMEOUT)
            self._proc = None
        _live.discard(self)

    def restart(self) -> MinioServer:
        """Start again on the same port and data dir (stopping first if running)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the log directory."""
        self.stop()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def __enter__(self) -> MinioServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MinioServer(data_dir={str(self.data_dir)!r}, port={self.port})"


_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    default_type application/octet-stream;
    client_max_body_size 0;
    server_tokens off;

{server}
}}
"""

_LISTEN_BARE = re.compile(r"\blisten\s+\{port\}")
_LISTEN_ANY = re.compile(r"\blisten\s")


class NginxServer:
    """nginx on 127.0.0.1 with one ``server { ... }`` block.

    ``{port}`` in the block is replaced by the chosen port; a block without a
    ``listen`` directive gets ``listen 127.0.0.1:{port};``.
    """

    def __init__(self, server_block: str) -> None:
        block = _LISTEN_BARE.sub("listen 127.0.0.1:{port}", server_block)
        if not _LISTEN_ANY.search(block):
            block = block.replace("{", "{\n    listen 127.0.0.1:{port};", 1)
        self.server_block = block
        self.port: int | None = None
        self.prefix: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("nginx has no port yet; call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        if self.prefix is None:
            raise RuntimeError("nginx not started")
        return self.prefix / "error.log"

    def _write_conf(self, prefix: Path, port: int) -> Path:
        server = self.server_block.replace("{port}", str(port))
        conf = prefix / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(prefix=prefix, server=server))
        return conf

    def start(self) -> NginxServer:
        """Start nginx on a free port and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        binary = ensure_nginx()
        if self.prefix is None:
            self.prefix = Path(tempfile.mkdtemp(prefix="refstore-nginx-"))
            (self.prefix / "tmp").mkdir()
            (self.prefix / "logs").mkdir()
        prefix = self.prefix
        out_path = prefix / "nginx.out"
        for _attempt in range(5):
            port = free_port()
            conf = self._write_conf(prefix, port)
            cmd = [str(binary), "-p", f"{prefix}/", "-c", str(conf), "-e", str(self.error_log)]
            with open(out_path, "ab") as out:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self._proc = proc
            _live.add(self)
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if _port_open(port):
                    self.port = port
                    return self
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in _tail(self.error_log):
                break
        raise RuntimeError(
            f"nginx failed to start (config {prefix / 'nginx.conf'}):\n"
            f"{_tail(out_path)}\n{_tail(self.error_log)}"
        )

    def stop(self) -> None:
        """Stop nginx (SIGTERM, then SIGKILL)."""
        if self._proc is not None:
            _terminate(self._proc, signal.SIGTERM, STOP_TIMEOUT)
            self._proc = None
        _live.discard(self)

    def close(self) -> None:
        """Stop and remove the prefix directory."""
        self.stop()
        if self.prefix is not None:
            shutil.rmtree(self.prefix, ignore_errors=True)
            self.prefix = None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NginxServer(port={self.port})"
