"""The sync client is generated from the async one and cannot drift from it; both faces
offer the same methods with the same parameters; the package exports what it says."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import refstore.gateway
from refstore.gateway import AsyncDownloadStream, AsyncGatewayClient, DownloadStream, GatewayClient

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


def run_unasync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_the_committed_sync_client_is_generated_from_the_async_one():
    done = run_unasync("--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_fails_when_the_sync_client_drifts(tmp_path):
    package = tmp_path / "gateway"
    shutil.copytree(ROOT / "refstore" / "gateway", package)
    sync = package / "_sync_client.py"
    sync.write_text(sync.read_text().replace("def get_status(", "def get_state("))
    done = run_unasync("--check", "--package", str(package))
    assert done.returncode == 1
    assert "-    def get_state(" in done.stderr and "+    def get_status(" in done.stderr
    # Without --check it regenerates the file, and then the check passes.
    assert run_unasync("--package", str(package)).returncode == 0
    assert run_unasync("--check", "--package", str(package)).returncode == 0


def test_the_check_fails_when_an_async_module_has_no_twin(tmp_path):
    package = tmp_path / "gateway"
    shutil.copytree(ROOT / "refstore" / "gateway", package)
    (package / "_async_extra.py").write_text('"""An async module without a sync twin."""\n')
    done = run_unasync("--check", "--package", str(package))
    assert done.returncode == 1 and "_async_extra.py has no sync twin" in done.stderr


SYNC_NAME = {"aclose": "close", "aiter_bytes": "iter_bytes", "aread": "read"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        SYNC_NAME.get(name, name): inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in ("__init__",)
    }


def test_both_faces_have_the_same_methods_and_parameters():
    for sync_cls, async_cls in (
        (GatewayClient, AsyncGatewayClient),
        (DownloadStream, AsyncDownloadStream),
    ):
        sync, asynchronous = public_methods(sync_cls), public_methods(async_cls)
        assert set(sync) == set(asynchronous), sync_cls
        for name, signature in sync.items():
            assert list(signature.parameters) == list(asynchronous[name].parameters), name
    for name in public_methods(AsyncGatewayClient):
        method = getattr(AsyncGatewayClient, {v: k for k, v in SYNC_NAME.items()}.get(name, name))
        if name not in ("__init__", "stream", "iter_bytes"):
            assert inspect.iscoroutinefunction(method), name


def test_every_method_of_the_0_3_0_client_is_there_with_its_parameters():
    seed = {
        "get_status": [],
        "get_config": [],
        "list_buckets": [],
        "create_bucket": ["name", "location"],
        "get_bucket_info": ["name"],
        "delete_bucket": ["name", "force"],
        "get_bucket_mapping": [],
        "update_bucket_mapping": ["enable_bucket_mapping", "bucket_map"],
        "upload_file": ["file_data", "filename", "logic_bucket", "path"],
        "upload_from_local": ["local_path", "logic_bucket", "path"],
        "download_file": ["uri"],
        "download_to_local": ["uri", "local_path"],
        "get_presigned_url": ["uri", "expiry_seconds", "method"],
        "get_file_info": ["uri"],
        "delete_file": ["uri"],
        "delete_files": ["uris"],
        "list_files": ["logic_bucket", "prefix", "recursive"],
        "health": [],
        "close": [],
        "__init__": ["gateway_url", "timeout", "headers"],
    }
    for cls in (GatewayClient, AsyncGatewayClient):
        for name, positional in seed.items():
            parameters = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
            leading = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
            assert leading == positional, (cls.__name__, name)


def test_the_package_exports_a_sorted_complete_all():
    public = {n for n in dir(refstore.gateway) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(refstore.gateway, n))}
    assert set(refstore.gateway.__all__) == public - modules
    assert refstore.gateway.__all__ == sorted(refstore.gateway.__all__)
