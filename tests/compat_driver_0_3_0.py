"""Drive the real refstore 0.3.0 GatewayClient / AsyncGatewayClient against a gateway.

Run by tests/test_compat_0_3_0.py with the python of a separate venv holding
``refstore==0.3.0`` from PyPI; never imported by the test process (our own
``refstore`` package is a different one with the same name).

    python compat_driver_0_3_0.py --client sync|async --url URL --workdir DIR \
        --bucket B --logical L --payload FILE --local-file FILE

The admin token comes from $REFSTORE_COMPAT_TOKEN. Every call is made whatever
happened before it, and reported as one JSON object per line on stdout:

    {"client": "sync", "step": "upload_file", "method": "upload_file", "ok": true,
     "result": {...}, "extra": {...}}
    {"client": "sync", "step": "download_file_missing", "method": "download_file",
     "ok": false, "error": {"type": "RuntimeError", "message": "..."}}

Bytes are reported as {"__bytes__": true, "size": N, "sha256": HEX}. The first
line (step "_import") says which refstore was imported and lists the public
methods of both clients.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from refstore.gateway import AsyncGatewayClient, GatewayClient

TOKEN_ENV = "REFSTORE_COMPAT_TOKEN"


def describe_bytes(data: bytes) -> dict[str, Any]:
    return {"__bytes__": True, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path: str) -> dict[str, Any] | None:
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return describe_bytes(handle.read())


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return describe_bytes(bytes(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"__repr__": repr(value), "__type__": type(value).__name__}


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    )


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str) -> dict[str, Any]:
    """GET a presigned URL without any credentials."""
    with _direct.open(url, timeout=30) as response:
        return {"status": response.status, "body": describe_bytes(response.read())}


@dataclass
class Step:
    """One client call. Arguments may be callables of the state (earlier results)."""

    name: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    anonymous: bool = False
    save: str | None = None
    after: Callable[[Any], dict[str, Any]] | None = None


def plan(opts: argparse.Namespace) -> list[Step]:
    bucket, logical = opts.bucket, opts.logical
    with open(opts.payload, "rb") as handle:
        payload = handle.read()
    local_name = os.path.basename(opts.local_file)
    uri_a = f"s3://{bucket}/compat/dir/hello.txt"
    uri_local = f"s3://{bucket}/compat/local/{local_name}"
    uri_mapped_logical = f"s3://{logical}/compat/mapped/mapped.txt"
    out = os.path.join(opts.workdir, "downloads", "nested", "hello.txt")
    missing_out = os.path.join(opts.workdir, "downloads", "missing", "nothing.txt")

    def no_path_uri(state: dict[str, Any]) -> str:
        result = state.get("no_path")
        if isinstance(result, dict) and isinstance(result.get("uri"), str):
            return result["uri"]
        return f"s3://{bucket}/no-path-upload-failed"

    def presigned_after(result: Any) -> dict[str, Any]:
        return {"fetched": fetch(result["url"])}

    return [
        Step("health", "health"),
        Step("get_status_without_token", "get_status", anonymous=True),
        Step("create_bucket", "create_bucket", (bucket,)),
        Step("create_bucket_existing", "create_bucket", (bucket,)),
        Step("list_buckets", "list_buckets"),
        Step("get_status", "get_status"),
        Step("get_config", "get_config"),
        Step(
            "upload_file",
            "upload_file",
            (payload,),
            {"filename": "hello.txt", "logic_bucket": bucket, "path": "compat/dir"},
        ),
        Step(
            "upload_file_no_path",
            "upload_file",
            (b"no path given",),
            {"filename": "note.txt", "logic_bucket": bucket},
            save="no_path",
        ),
        Step(
            "upload_from_local",
            "upload_from_local",
            (opts.local_file,),
            {"logic_bucket": bucket, "path": "compat/local"},
        ),
        Step("get_bucket_info", "get_bucket_info", (bucket,)),
        Step("download_file", "download_file", (uri_a,)),
        Step(
            "download_to_local",
            "download_to_local",
            (uri_a, out),
            after=lambda _result: {"file": file_digest(out)},
        ),
        Step(
            "get_presigned_url",
            "get_presigned_url",
            (uri_a,),
            {"expiry_seconds": 600},
            after=presigned_after,
        ),
        Step("get_file_info", "get_file_info", (uri_a,)),
        Step("list_files", "list_files", (), {"logic_bucket": bucket, "prefix": "compat/"}),
        # AsyncGatewayClient.list_files puts recursive=True in the query, which aiohttp
        # (yarl) refuses before sending anything; recursive="true" is how an async
        # 0.3.0 user lists at all, and sync clients may send it too.
        Step(
            "list_files_recursive_str",
            "list_files",
            (),
            {"logic_bucket": bucket, "prefix": "compat/", "recursive": "true"},
        ),
        Step("list_files_default_bucket", "list_files", (), {"recursive": "true"}),
        Step("get_bucket_mapping", "get_bucket_mapping"),
        Step(
            "update_bucket_mapping",
            "update_bucket_mapping",
            (),
            {"enable_bucket_mapping": True, "bucket_map": {logical: bucket}},
        ),
        Step("get_bucket_mapping_after_update", "get_bucket_mapping"),
        Step(
            "upload_file_logical_bucket",
            "upload_file",
            (b"mapped content",),
            {"filename": "mapped.txt", "logic_bucket": logical, "path": "compat/mapped"},
        ),
        Step("download_file_logical_uri", "download_file", (uri_mapped_logical,)),
        Step(
            "update_bucket_mapping_disable",
            "update_bucket_mapping",
            (),
            {"enable_bucket_mapping": False},
        ),
        Step(
            "update_bucket_mapping_restore",
            "update_bucket_mapping",
            (),
            {"enable_bucket_mapping": False, "bucket_map": {}},
        ),
        Step("delete_file", "delete_file", (uri_local,)),
        Step("delete_files", "delete_files", (lambda state: [uri_a, no_path_uri(state)],)),
        Step("get_file_info_missing", "get_file_info", (uri_a,)),
        Step("download_file_missing", "download_file", (uri_a,)),
        Step(
            "download_to_local_missing",
            "download_to_local",
            (uri_a, missing_out),
            after=lambda _result: {"file": file_digest(missing_out)},
        ),
        Step("delete_bucket", "delete_bucket", (bucket,), {"force": True}),
        Step("get_bucket_info_deleted", "get_bucket_info", (bucket,)),
        Step("delete_bucket_missing", "delete_bucket", (bucket,)),
        Step("close", "close"),
    ]


async def call(target: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    value = getattr(target, method)(*args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value


async def run(opts: argparse.Namespace) -> None:
    token = os.environ[TOKEN_ENV]
    headers = {"Authorization": f"Bearer {token}"}
    cls = GatewayClient if opts.client == "sync" else AsyncGatewayClient
    import refstore

    emit(
        {
            "client": opts.client,
            "step": "_import",
            "ok": True,
            "version": importlib.metadata.version("refstore"),
            "module_file": refstore.__file__,
            "python": sys.executable,
            "public_methods": public_methods(cls),
        }
    )
    client = cls(opts.url, timeout=60, headers=headers)
    anonymous = cls(opts.url, timeout=60)
    state: dict[str, Any] = {}
    try:
        for step in plan(opts):
            target = anonymous if step.anonymous else client
            args = [a(state) if callable(a) else a for a in step.args]
            record: dict[str, Any] = {
                "client": opts.client,
                "step": step.name,
                "method": step.method,
            }
            try:
                value = await call(target, step.method, args, step.kwargs)
            except Exception as exc:  # the record is the report
                record.update(ok=False, error={"type": type(exc).__name__, "message": str(exc)})
                emit(record)
                continue
            if step.save:
                state[step.save] = value
            record.update(ok=True, result=jsonable(value))
            if step.after is not None:
                try:
                    record["extra"] = jsonable(step.after(value))
                except Exception as exc:
                    record["extra_error"] = {"type": type(exc).__name__, "message": str(exc)}
            emit(record)
    finally:
        await call(anonymous, "close", [], {})
        await call(client, "close", [], {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("sync", "async"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--logical", required=True)
    parser.add_argument("--payload", required=True)
    parser.add_argument("--local-file", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
