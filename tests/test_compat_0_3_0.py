"""The REAL refstore 0.3.0 GatewayClient and AsyncGatewayClient against our gateway.

refstore 0.3.0 is installed from PyPI into its own venv (cached in
``~/.cache/refstore/compat-0.3.0-venv``, or under ``$REFSTORE_CACHE``) and driven by
``compat_driver_0_3_0.py`` in a subprocess; it is never imported here. The driver
calls every public method of both clients, on MinIO and on the local backend, and
each call is checked by its own test against the shapes 0.3.0's own gateway gave.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gateway_process import ADMIN_TOKEN, GatewayProcess
from servers import CACHE_DIR, MinioServer

SEED_VERSION = "0.3.0"
# The bare package depends only on minio and requests, but `import refstore` (which
# `from refstore.gateway import ...` runs) imports its FastAPI app: the web extra
# (fastapi, pydantic, uvicorn) and python-multipart (its Form/File routes, not
# declared by 0.3.0) are needed too; the gateway extra brings aiohttp.
SEED_REQUIREMENTS = (f"refstore[gateway,web]=={SEED_VERSION}", "python-multipart")
VENV_DIR = CACHE_DIR / f"compat-{SEED_VERSION}-venv"
DRIVER = Path(__file__).resolve().parent / "compat_driver_0_3_0.py"
INSTALL_TIMEOUT = 900
DRIVER_TIMEOUT = 300
CLIENTS = ("sync", "async")

_PROBE = """
import importlib.metadata, json
import aiohttp, requests
import refstore.gateway
from refstore.gateway import AsyncGatewayClient, GatewayClient
print(json.dumps({"version": importlib.metadata.version("refstore"),
                  "file": refstore.gateway.__file__}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment for the venv's python: nothing of this process's python."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONWARNINGS")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("REFSTORE_")}
    env.update(PYTHONNOUSERSITE="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(extra)
    return env


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _probe(python: Path) -> str | None:
    """None when ``python`` imports refstore 0.3.0 from the venv, else why not."""
    if not python.exists():
        return f"{python} does not exist"
    try:
        done = subprocess.run(
            [str(python), "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tempfile.gettempdir(),
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"probe failed: {exc}"
    if done.returncode != 0:
        return f"probe exited {done.returncode}:\n{_tail(done.stderr)}"
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found["version"] != SEED_VERSION:
        return f"venv holds refstore {found['version']}, not {SEED_VERSION}"
    if not Path(found["file"]).resolve().is_relative_to(VENV_DIR.resolve()):
        return f"refstore.gateway imported from {found['file']}, outside {VENV_DIR}"
    return None


def _run_step(what: str, cmd: list[str]) -> None:
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            cwd=tempfile.gettempdir(),
            env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1"),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n"
            f"{_tail(done.stdout)}\n{_tail(done.stderr)}"
        )


def ensure_seed_venv() -> Path:
    """The venv's python with refstore 0.3.0 installed, creating the venv if needed.

    Raises:
        RuntimeError: the venv could not be created or does not work.
    """
    python = VENV_DIR / "bin" / "python"
    VENV_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV_DIR.parent / f".compat-{SEED_VERSION}-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _probe(python) is None:
            return python
        print(
            f"creating {VENV_DIR} with {' '.join(SEED_REQUIREMENTS)}", file=sys.stderr, flush=True
        )
        shutil.rmtree(VENV_DIR, ignore_errors=True)
        _run_step("creating the venv", [sys.executable, "-m", "venv", str(VENV_DIR)])
        _run_step(
            f"installing {' '.join(SEED_REQUIREMENTS)}",
            [str(python), "-m", "pip", "install", "--quiet", *SEED_REQUIREMENTS],
        )
        problem = _probe(python)
        if problem is not None:
            raise RuntimeError(f"the new venv does not work: {problem}")
        return python


@pytest.fixture(scope="session")
def seed_python() -> Path:
    """Python of a venv holding the real refstore 0.3.0 (never a skip: fails if unusable)."""
    started = time.monotonic()
    problem = None
    try:
        python = ensure_seed_venv()
    except RuntimeError as err:
        problem = str(err)
    if problem is not None:
        pytest.fail(
            f"could not prepare the refstore {SEED_VERSION} venv at {VENV_DIR} "
            f"(needs PyPI through pip): {problem}",
            pytrace=False,
        )
    print(
        f"refstore {SEED_VERSION} venv ready in {time.monotonic() - started:.1f}s", file=sys.stderr
    )
    return python


# -- one driver run per client and backend -----------------------------------------


@dataclass
class DriverRun:
    """What one driver run did, and what the checks need to know about it."""

    backend: str
    client: str
    gateway_url: str
    default_bucket: str
    bucket: str
    logical: str
    payload: bytes
    local_name: str
    local_bytes: bytes
    minio_endpoint: str | None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    stdout_noise: list[str] = field(default_factory=list)
    stderr: str = ""
    gateway_log: str = ""

    def diagnostics(self) -> str:
        noise = "\n".join(self.stdout_noise[-20:])
        return (
            f"[{self.backend}/{self.client}] driver exit {self.returncode}\n"
            f"driver stderr:\n{_tail(self.stderr)}\n"
            f"other driver output:\n{noise}\n"
            f"gateway log (tail):\n{_tail(self.gateway_log, 20)}"
        )

    def record(self, step: str) -> dict[str, Any]:
        if step not in self.records:
            pytest.fail(f"the driver reported no {step!r}\n{self.diagnostics()}", pytrace=False)
        return self.records[step]

    def result(self, step: str) -> Any:
        """The value a call returned (the test fails if it raised)."""
        record = self.record(step)
        assert record["ok"], (
            f"{record['method']} raised {record['error']['type']}: {record['error']['message']}"
        )
        return record["result"]

    def error(self, step: str) -> dict[str, str]:
        """The exception a call raised (the test fails if it returned)."""
        record = self.record(step)
        assert not record["ok"], f"{record['method']} returned {record.get('result')!r}"
        return record["error"]


def _payload() -> bytes:
    """~330 KB, every byte value, not valid UTF-8: crosses multipart chunk boundaries."""
    return (b"refstore-compat-0.3.0\r\n--boundary?\r\n" + bytes(range(256))) * 1130


def run_driver(
    python: Path, backend: str, client: str, minio: MinioServer | None, workdir: Path
) -> DriverRun:
    """Start a fresh gateway, run the driver with one client against it, stop it."""
    workdir.mkdir(parents=True)
    token = uuid.uuid4().hex[:8]
    default_bucket = f"compat-default-{token}"
    if minio is not None:
        settings: dict[str, Any] = {**minio.config(), "default_bucket": default_bucket}
    else:
        settings = {"local": {"root": str(workdir / "store")}, "default_bucket": default_bucket}
    gateway = GatewayProcess(settings)
    if minio is None:
        # Local presigned links are served by the gateway itself.
        gateway.settings["public_url"] = gateway.url
    payload = _payload()
    local_bytes = b"id,name\n1,refstore\n2,compat\n" * 50
    (workdir / "payload.bin").write_bytes(payload)
    (workdir / "report.csv").write_bytes(local_bytes)
    run = DriverRun(
        backend=backend,
        client=client,
        gateway_url=gateway.url,
        default_bucket=default_bucket,
        bucket=f"compat-{client}-{token}",
        logical=f"compat-logical-{client}-{token}",
        payload=payload,
        local_name="report.csv",
        local_bytes=local_bytes,
        minio_endpoint=minio.endpoint if minio is not None else None,
    )
    cmd = [
        str(python),
        str(DRIVER),
        "--client", client,
        "--url", gateway.url,
        "--workdir", str(workdir),
        "--bucket", run.bucket,
        "--logical", run.logical,
        "--payload", str(workdir / "payload.bin"),
        "--local-file", str(workdir / "report.csv"),
    ]  # fmt: skip
    try:
        gateway.start()
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=DRIVER_TIMEOUT,
                cwd=workdir,
                env=_clean_env(REFSTORE_COMPAT_TOKEN=ADMIN_TOKEN),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            run.stderr = f"driver timed out after {DRIVER_TIMEOUT}s\n{exc.stderr or ''}"
            stdout = exc.stdout or ""
            if isinstance(stdout, bytes):
                stdout = stdout.decode(errors="replace")
        else:
            run.returncode = done.returncode
            run.stderr = done.stderr
            stdout = done.stdout
        run.gateway_log = gateway.log()
    finally:
        gateway.stop()
        shutil.rmtree(gateway.config_path.parent, ignore_errors=True)
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            run.stdout_noise.append(line)
            continue
        if not isinstance(record, dict) or "step" not in record:
            run.stdout_noise.append(line)
        elif record["step"] == "_import":
            run.meta = record
        else:
            run.records[record["step"]] = record
    return run


@pytest.fixture(scope="module", params=["minio", "local"])
def driver_runs(
    request: pytest.FixtureRequest, seed_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, DriverRun]:
    """Both 0.3.0 clients run against a gateway on this backend (one gateway each)."""
    backend: str = request.param
    minio = request.getfixturevalue("minio_server") if backend == "minio" else None
    base = tmp_path_factory.mktemp(f"compat-{backend}")
    return {
        client: run_driver(seed_python, backend, client, minio, base / client) for client in CLIENTS
    }


# -- checks: one per client call ---------------------------------------------------


def seed_size_human(size: float) -> str:
    """refstore 0.3.0's ``_format_size``."""
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def sha(data: bytes) -> dict[str, Any]:
    return {"__bytes__": True, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def uri_a(run: DriverRun) -> str:
    return f"s3://{run.bucket}/compat/dir/hello.txt"


def uri_local(run: DriverRun) -> str:
    return f"s3://{run.bucket}/compat/local/{run.local_name}"


def has_keys(value: Any, *keys: str) -> None:
    assert isinstance(value, dict), f"expected a JSON object, got {value!r}"
    missing = [k for k in keys if k not in value]
    assert not missing, f"missing keys {missing} in {value!r}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_health(run: DriverRun) -> None:
    result = run.result("health")
    has_keys(result, "status", "message", "buckets_ok")
    assert result["status"] == "ok"
    assert isinstance(result["message"], str)
    assert result["buckets_ok"] is True


def check_get_status_without_token(run: DriverRun) -> None:
    error = run.error("get_status_without_token")
    assert error["type"] == "RuntimeError"
    assert "[401]" in error["message"], error


def check_create_bucket(run: DriverRun, step: str = "create_bucket") -> None:
    result = run.result(step)
    has_keys(result, "success", "name", "message")
    assert result["success"] is True
    assert result["name"] == run.bucket


def check_create_bucket_existing(run: DriverRun) -> None:
    check_create_bucket(run, "create_bucket_existing")


def check_list_buckets(run: DriverRun) -> None:
    result = run.result("list_buckets")
    has_keys(result, "buckets", "total")
    assert is_int(result["total"]) and result["total"] == len(result["buckets"])
    for entry in result["buckets"]:
        has_keys(entry, "name", "creation_date")
    names = {entry["name"] for entry in result["buckets"]}
    assert {run.bucket, run.default_bucket} <= names


def check_get_status(run: DriverRun) -> None:
    result = run.result("get_status")
    has_keys(
        result, "status", "endpoint", "secure", "enable_bucket_mapping", "default_bucket",
        "bucket_count",
    )  # fmt: skip
    assert result["status"] == "connected"
    assert is_int(result["bucket_count"])
    assert result["bucket_count"] == run.result("list_buckets")["total"]
    assert result["secure"] is False
    assert result["enable_bucket_mapping"] is False
    assert result["default_bucket"] == run.default_bucket
    assert isinstance(result["endpoint"], str) and result["endpoint"]
    if run.minio_endpoint is not None:
        assert result["endpoint"] == run.minio_endpoint


def check_get_config(run: DriverRun) -> None:
    result = run.result("get_config")
    has_keys(
        result, "endpoint", "secure", "enable_bucket_mapping", "bucket_map", "default_bucket",
        "presigned_expiry", "public_url",
    )  # fmt: skip
    assert result["enable_bucket_mapping"] is False
    assert result["bucket_map"] == {}
    assert result["default_bucket"] == run.default_bucket
    assert result["presigned_expiry"] == 3600
    assert result["secure"] is False
    assert result["public_url"] == (None if run.backend == "minio" else run.gateway_url)
    text = json.dumps(result)
    assert "refstore-test-secret" not in text and ADMIN_TOKEN not in text


def check_upload(run: DriverRun, step: str, uri: str) -> None:
    result = run.result(step)
    has_keys(result, "uri", "success", "message")
    assert result["success"] is True
    assert result["uri"] == uri


def check_upload_file(run: DriverRun) -> None:
    check_upload(run, "upload_file", uri_a(run))


def check_upload_file_no_path(run: DriverRun) -> None:
    result = run.result("upload_file_no_path")
    assert result["success"] is True
    pattern = rf"s3://{re.escape(run.bucket)}/\d{{4}}/\d{{2}}/\d{{2}}/[0-9a-f]{{32}}\.txt"
    assert re.fullmatch(pattern, result["uri"]), result["uri"]


def check_upload_from_local(run: DriverRun) -> None:
    check_upload(run, "upload_from_local", uri_local(run))


def check_get_bucket_info(run: DriverRun) -> None:
    result = run.result("get_bucket_info")
    has_keys(result, "name", "exists", "object_count", "total_size", "total_size_human")
    total = len(run.payload) + len(b"no path given") + len(run.local_bytes)
    assert result == {
        "name": run.bucket,
        "exists": True,
        "object_count": 3,
        "total_size": total,
        "total_size_human": seed_size_human(total),
    }


def check_download_file(run: DriverRun) -> None:
    assert run.result("download_file") == sha(run.payload)


def check_download_to_local(run: DriverRun) -> None:
    assert run.result("download_to_local") is True
    assert run.record("download_to_local")["extra"]["file"] == sha(run.payload)


def check_get_presigned_url(run: DriverRun) -> None:
    record = run.record("get_presigned_url")
    result = run.result("get_presigned_url")
    has_keys(result, "url", "uri", "expiry")
    assert result["uri"] == uri_a(run)
    assert result["expiry"] == 600
    assert result["url"].startswith("http://")
    assert "extra_error" not in record, f"fetching {result['url']}: {record['extra_error']}"
    assert record["extra"]["fetched"] == {"status": 200, "body": sha(run.payload)}


def check_get_file_info(run: DriverRun) -> None:
    result = run.result("get_file_info")
    has_keys(result, "uri", "info", "exists")
    assert result["uri"] == uri_a(run)
    assert result["exists"] is True
    info = result["info"]
    has_keys(
        info, "logic_bucket", "physical_bucket", "object_name", "size", "size_human",
        "content_type", "last_modified", "etag",
    )  # fmt: skip
    assert info["logic_bucket"] == info["physical_bucket"] == run.bucket
    assert info["object_name"] == "compat/dir/hello.txt"
    assert info["size"] == len(run.payload)
    assert info["size_human"] == seed_size_human(len(run.payload))
    assert isinstance(info["content_type"], str) and info["content_type"]
    datetime.fromisoformat(info["last_modified"].replace("Z", "+00:00"))
    assert isinstance(info["etag"], str) and info["etag"]


# refstore 0.3.0's own bug, whatever the gateway: AsyncGatewayClient.list_files sends
# recursive=True as a query value, which aiohttp's URL library (yarl) refuses with
# this TypeError before any request is made. No gateway change can fix it.
ASYNC_LIST_FILES_BUG = (
    "Invalid variable type: value should be str, int or float, got True of type <class 'bool'>"
)


def check_list_files(run: DriverRun) -> None:
    if run.client == "async":
        error = run.error("list_files")
        assert error == {"type": "TypeError", "message": ASYNC_LIST_FILES_BUG}
        return
    check_listing(run, "list_files")


def check_list_files_recursive_str(run: DriverRun) -> None:
    check_listing(run, "list_files_recursive_str")


def check_listing(run: DriverRun, step: str) -> None:
    result = run.result(step)
    has_keys(result, "logic_bucket", "files")
    assert result["logic_bucket"] == run.bucket
    by_name = {}
    for item in result["files"]:
        has_keys(item, "object_name", "size", "size_human", "last_modified", "is_dir", "s3_uri")
        by_name[item["object_name"]] = item
    assert set(by_name) == {"compat/dir/hello.txt", f"compat/local/{run.local_name}"}
    hello = by_name["compat/dir/hello.txt"]
    assert hello["s3_uri"] == uri_a(run)
    assert hello["size"] == len(run.payload)
    assert hello["size_human"] == seed_size_human(len(run.payload))
    assert hello["is_dir"] is False
    assert by_name[f"compat/local/{run.local_name}"]["size"] == len(run.local_bytes)


def check_list_files_default_bucket(run: DriverRun) -> None:
    # Nothing was uploaded to the default bucket: an upload whose form fields come
    # after the file part (AsyncGatewayClient's order) must not leave a stray object.
    assert run.result("list_files_default_bucket") == {
        "logic_bucket": run.default_bucket,
        "files": [],
    }


def mapping_shape(result: Any) -> None:
    has_keys(result, "enable_bucket_mapping", "bucket_map", "reverse_bucket_map")


def check_get_bucket_mapping(run: DriverRun) -> None:
    result = run.result("get_bucket_mapping")
    mapping_shape(result)
    assert result["enable_bucket_mapping"] is False
    assert result["bucket_map"] == {}
    assert result["reverse_bucket_map"] == {}


def check_update_bucket_mapping(run: DriverRun, step: str = "update_bucket_mapping") -> None:
    result = run.result(step)
    mapping_shape(result)
    assert result["enable_bucket_mapping"] is True
    assert result["bucket_map"] == {run.logical: run.bucket}
    assert result["reverse_bucket_map"] == {run.bucket: run.logical}


def check_get_bucket_mapping_after_update(run: DriverRun) -> None:
    check_update_bucket_mapping(run, "get_bucket_mapping_after_update")


def check_upload_file_logical_bucket(run: DriverRun) -> None:
    # 0.3.0 returns the physical URI unless use_logical_uri is set (its clients never set it).
    check_upload(run, "upload_file_logical_bucket", f"s3://{run.bucket}/compat/mapped/mapped.txt")


def check_download_file_logical_uri(run: DriverRun) -> None:
    assert run.result("download_file_logical_uri") == sha(b"mapped content")


def check_update_bucket_mapping_disable(run: DriverRun) -> None:
    # 0.3.0: a partial update keeps the map; the reverse map is empty while disabled.
    result = run.result("update_bucket_mapping_disable")
    mapping_shape(result)
    assert result["enable_bucket_mapping"] is False
    assert result["bucket_map"] == {run.logical: run.bucket}
    assert result["reverse_bucket_map"] == {}


def check_update_bucket_mapping_restore(run: DriverRun) -> None:
    result = run.result("update_bucket_mapping_restore")
    mapping_shape(result)
    assert result["enable_bucket_mapping"] is False
    assert result["bucket_map"] == {}
    assert result["reverse_bucket_map"] == {}


def check_delete_file(run: DriverRun) -> None:
    result = run.result("delete_file")
    has_keys(result, "deleted", "failed")
    assert result["deleted"] == [uri_local(run)]
    assert result["failed"] == []


def check_delete_files(run: DriverRun) -> None:
    result = run.result("delete_files")
    has_keys(result, "deleted", "failed")
    no_path = run.result("upload_file_no_path")["uri"]
    assert result["deleted"] == [uri_a(run), no_path]
    assert result["failed"] == []


def check_get_file_info_missing(run: DriverRun) -> None:
    result = run.result("get_file_info_missing")
    has_keys(result, "uri", "info", "exists")
    assert result == {**result, "uri": uri_a(run), "info": None, "exists": False}


def check_download_file_missing(run: DriverRun) -> None:
    # A clean failure: the client's RuntimeError with the status and our JSON "detail".
    error = run.error("download_file_missing")
    assert error["type"] == "RuntimeError"
    match = re.fullmatch(r"Gateway 请求失败 \[(\d+)\]: (.+)", error["message"], re.S)
    assert match, error["message"]
    assert match.group(1) == "404"
    detail = match.group(2)
    assert not detail.lstrip().startswith("{"), f"detail not extracted from JSON: {detail}"


def check_download_to_local_missing(run: DriverRun) -> None:
    assert run.result("download_to_local_missing") is False
    assert run.record("download_to_local_missing")["extra"]["file"] is None


def check_delete_bucket(run: DriverRun, step: str = "delete_bucket") -> None:
    result = run.result(step)
    has_keys(result, "success", "name", "message")
    assert result["success"] is True
    assert result["name"] == run.bucket


def check_get_bucket_info_deleted(run: DriverRun) -> None:
    # 0.3.0 answered 200 {"name", "exists": false} for a missing bucket, so its
    # clients return that dict instead of raising.
    result = run.result("get_bucket_info_deleted")
    has_keys(result, "name", "exists")
    assert result["name"] == run.bucket
    assert result["exists"] is False


def check_delete_bucket_missing(run: DriverRun) -> None:
    check_delete_bucket(run, "delete_bucket_missing")


def check_close(run: DriverRun) -> None:
    assert run.result("close") is None


CHECKS: dict[str, Callable[[DriverRun], None]] = {
    "health": check_health,
    "get_status_without_token": check_get_status_without_token,
    "create_bucket": check_create_bucket,
    "create_bucket_existing": check_create_bucket_existing,
    "list_buckets": check_list_buckets,
    "get_status": check_get_status,
    "get_config": check_get_config,
    "upload_file": check_upload_file,
    "upload_file_no_path": check_upload_file_no_path,
    "upload_from_local": check_upload_from_local,
    "get_bucket_info": check_get_bucket_info,
    "download_file": check_download_file,
    "download_to_local": check_download_to_local,
    "get_presigned_url": check_get_presigned_url,
    "get_file_info": check_get_file_info,
    "list_files": check_list_files,
    "list_files_recursive_str": check_list_files_recursive_str,
    "list_files_default_bucket": check_list_files_default_bucket,
    "get_bucket_mapping": check_get_bucket_mapping,
    "update_bucket_mapping": check_update_bucket_mapping,
    "get_bucket_mapping_after_update": check_get_bucket_mapping_after_update,
    "upload_file_logical_bucket": check_upload_file_logical_bucket,
    "download_file_logical_uri": check_download_file_logical_uri,
    "update_bucket_mapping_disable": check_update_bucket_mapping_disable,
    "update_bucket_mapping_restore": check_update_bucket_mapping_restore,
    "delete_file": check_delete_file,
    "delete_files": check_delete_files,
    "get_file_info_missing": check_get_file_info_missing,
    "download_file_missing": check_download_file_missing,
    "download_to_local_missing": check_download_to_local_missing,
    "delete_bucket": check_delete_bucket,
    "get_bucket_info_deleted": check_get_bucket_info_deleted,
    "delete_bucket_missing": check_delete_bucket_missing,
    "close": check_close,
}


@pytest.mark.parametrize("client", CLIENTS)
def test_driver_ran_the_real_0_3_0_client(driver_runs: dict[str, DriverRun], client: str) -> None:
    run = driver_runs[client]
    assert run.meta, f"the driver did not start\n{run.diagnostics()}"
    assert run.meta["version"] == SEED_VERSION
    assert Path(run.meta["module_file"]).resolve().is_relative_to(VENV_DIR.resolve())
    assert run.returncode == 0, run.diagnostics()
    assert set(run.records) == set(CHECKS), run.diagnostics()


@pytest.mark.parametrize("client", CLIENTS)
def test_every_public_method_is_called(driver_runs: dict[str, DriverRun], client: str) -> None:
    run = driver_runs[client]
    assert run.meta, f"the driver did not start\n{run.diagnostics()}"
    called = {record["method"] for record in run.records.values()}
    assert set(run.meta["public_methods"]) - called == set()


@pytest.mark.parametrize("step", list(CHECKS))
@pytest.mark.parametrize("client", CLIENTS)
def test_0_3_0_client_call(driver_runs: dict[str, DriverRun], client: str, step: str) -> None:
    CHECKS[step](driver_runs[client])
