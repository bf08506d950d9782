"""Direct mode: large files move between the SDK and MinIO through presigned URLs, not
through the gateway (its ``refstore_transfer_bytes_total`` does not move); keys without
``presign``, refused keys and unreachable presigned hosts fall back to proxying, and
the results look the same either way."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_helpers import running_gateway, unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from sdk_helpers import FACES, MiB, Progress, leftovers, open_client, pattern_file, transfer_bytes
from servers import free_port

from refstore.checksums import crc32c_of, sha256_of

BUCKET = unique("sdk-direct")
KEYS = {name: f"key-{name}-{secrets.token_hex(8)}" for name in ("presigner", "proxied", "tenant")}
ACTIONS = ["read", "write", "delete", "list"]
AUTH = {
    "mode": "keys",
    "admin_tokens": [ADMIN_TOKEN],
    "api_keys": [
        {
            "key": KEYS["presigner"],
            "project": "p",
            "buckets": [BUCKET],
            "actions": [*ACTIONS, "presign"],
        },
        {"key": KEYS["proxied"], "project": "q", "buckets": [BUCKET], "actions": ACTIONS},
        {"key": KEYS["tenant"], "project": "t", "buckets": [BUCKET], "prefix": "tenant/"},
    ],
}
SIZE = 8 * MiB + 3
THRESHOLD = MiB


@pytest.fixture(scope="module")
def gateway(minio_server: Any) -> Iterator[GatewayProcess]:
    settings = {**minio_server.config(), "default_bucket": BUCKET, "auth": AUTH}
    with GatewayProcess(settings) as process:
        yield process


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def big(tmp_path: Any) -> tuple[Any, bytes]:
    path = tmp_path / "big.bin"
    return path, pattern_file(path, SIZE)


class Flow:
    """How many bytes went in and out through the gateway during a block."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __enter__(self) -> Flow:
        self.start = {d: transfer_bytes(self.client, d) for d in ("in", "out")}
        return self

    def __exit__(self, *exc: object) -> None:
        self.moved = {d: transfer_bytes(self.client, d) - self.start[d] for d in ("in", "out")}


def test_large_files_skip_the_gateway_and_small_ones_do_not(face, gateway, big, tmp_path):
    path, data = big
    with open_client(
        face, gateway.url, api_key=KEYS["presigner"], direct_threshold=THRESHOLD
    ) as client:
        up, down = Progress(), Progress()
        with Flow(client) as direct:
            result = client.upload_from_local(path, BUCKET, "direct", progress=up)
            assert client.download_to_local(result["uri"], tmp_path / "out.bin", progress=down)
        assert direct.moved == {"in": 0, "out": 0}
        assert (tmp_path / "out.bin").read_bytes() == data
        assert up.total == down.total == SIZE and leftovers(tmp_path) == []
        # The same upload through the gateway gives the same result.
        with Flow(client) as proxied:
            again = client.upload_from_local(path, BUCKET, "direct", direct=False)
            client.download_to_local(result["uri"], tmp_path / "again.bin", direct=False)
        assert proxied.moved == {"in": SIZE, "out": SIZE}
        # Straight to MinIO the CRC32C goes with the bytes (storage checks and keeps it);
        # through the gateway SHA-256 is computed too.
        assert result.pop("checksums") == {"crc32c": crc32c_of(data)}
        assert again.pop("checksums") == {"crc32c": crc32c_of(data), "sha256": sha256_of(data)}
        assert (
            again
            == result
            == {
                "uri": f"s3://{BUCKET}/direct/big.bin",
                "success": True,
                "message": "File uploaded successfully",
                "size": SIZE,
            }
        )
        # Below the threshold: proxied.
        small = tmp_path / "small.bin"
        pattern_file(small, THRESHOLD - 1)
        with Flow(client) as below:
            client.upload_from_local(small, BUCKET, "direct")
        assert below.moved["in"] == THRESHOLD - 1
        # Forced direct, whatever the size; the default bucket and a generated key.
        with Flow(client) as forced:
            generated = client.upload_from_local(small, direct=True)
        assert forced.moved["in"] == 0
        assert generated["uri"].startswith(f"s3://{BUCKET}/") and generated["size"] == THRESHOLD - 1


def test_a_key_without_presign_falls_back_to_proxying(face, gateway, big, tmp_path, caplog):
    caplog.set_level(logging.INFO, "refstore.gateway")
    path, data = big
    with open_client(
        face, gateway.url, api_key=KEYS["proxied"], direct_threshold=THRESHOLD
    ) as client:
        with Flow(client) as flow:
            result = client.upload_from_local(path, BUCKET, "fallback")
            assert client.download_to_local(result["uri"], tmp_path / "out.bin", raise_errors=True)
        assert flow.moved == {"in": SIZE, "out": SIZE}
    assert (tmp_path / "out.bin").read_bytes() == data
    assert result == {
        "uri": f"s3://{BUCKET}/fallback/big.bin",
        "success": True,
        "message": "File uploaded successfully",
        "size": SIZE,
        "checksums": {"crc32c": crc32c_of(data), "sha256": sha256_of(data)},
    }
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # PUT, then GET


def test_a_scoped_key_gets_its_generated_key_through_the_gateway(face, gateway, big):
    path, _ = big
    with open_client(face, gateway.url, api_key=KEYS["tenant"], direct_threshold=THRESHOLD) as c:
        with Flow(c) as flow:
            generated = c.upload_from_local(path, BUCKET)  # presigning outside tenant/ is refused
        assert generated["uri"].startswith(f"s3://{BUCKET}/tenant/")
        assert flow.moved["in"] == SIZE
        with Flow(c) as flow:
            own = c.upload_from_local(path, BUCKET, "tenant/own")
        assert own["uri"] == f"s3://{BUCKET}/tenant/own/big.bin" and flow.moved["in"] == 0


def test_no_threshold_means_always_through_the_gateway(face, gateway, big):
    path, _ = big
    with open_client(face, gateway.url, direct_threshold=None) as client:
        with Flow(client) as flow:
            client.upload_from_local(path, BUCKET, "never")
        assert flow.moved["in"] == SIZE


def test_an_unreachable_presigned_host_falls_back(face, minio_server, big, tmp_path, caplog):
    """Presigned URLs name a host this client cannot reach (e.g. MinIO's internal name)."""
    caplog.set_level(logging.WARNING, "refstore.gateway")
    path, data = big
    settings = {
        **minio_server.config(),
        "default_bucket": BUCKET,
        "public_endpoint": f"http://127.0.0.1:{free_port()}",
    }
    with (
        running_gateway("minio", settings) as gw,
        open_client(face, gw.url, direct_threshold=THRESHOLD) as client,
    ):
        with Flow(client) as flow:
            result = client.upload_from_local(path, BUCKET, "unreachable")
            assert client.download_to_local(result["uri"], tmp_path / "o.bin", raise_errors=True)
        assert flow.moved == {"in": SIZE, "out": SIZE}
    assert (tmp_path / "o.bin").read_bytes() == data
    assert len([r for r in caplog.records if "using the gateway" in r.getMessage()]) == 2


def test_direct_mode_on_the_local_backend_uses_the_gateways_links(face, tmp_path_factory, big):
    path, data = big
    settings = {"local": {"root": str(tmp_path_factory.mktemp("sdk-local"))}}
    with (
        running_gateway("local", settings, links_to_self=True) as gw,
        open_client(face, gw.url, direct_threshold=THRESHOLD) as client,
    ):
        result = client.upload_from_local(path, "default", "linked")
        assert result == {
            "uri": "s3://default/linked/big.bin",
            "success": True,
            "message": "File uploaded successfully",
            "size": SIZE,
            # The local backend's link goes through the gateway, which records both.
            "checksums": {"crc32c": crc32c_of(data), "sha256": sha256_of(data)},
        }
        target = path.parent / "back.bin"
        assert client.download_to_local(result["uri"], target, raise_errors=True)
        assert target.read_bytes() == data
        routes = {e.get("route") for e in gw.log_entries() if e.get("logger") == "refstore.access"}
        assert {"/presigned/{bucket}/{key:path}", "/presigned-url"} <= routes
