"""Checks of the real-server test infrastructure itself."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from servers import MinioServer, NginxServer, free_port

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _status(url: str) -> int:
    try:
        with _opener.open(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        err.close()
        return int(err.code)
    except urllib.error.URLError:
        return 0


def _client(server: MinioServer) -> Minio:
    return Minio(
        server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False
    )


def test_minio_answers_health_live(minio_server: MinioServer) -> None:
    assert minio_server.running
    assert minio_server.url == f"http://{minio_server.endpoint}"
    assert _status(f"{minio_server.url}/minio/health/live") == 200


def test_minio_config_is_a_copy(minio_config: dict[str, Any], minio_server: MinioServer) -> None:
    assert minio_config == {
        "minio": {
            "endpoint": minio_server.endpoint,
            "access_key": minio_server.access_key,
            "secret_key": minio_server.secret_key,
            "secure": False,
        }
    }
    minio_config["minio"]["endpoint"] = "elsewhere:1"
    assert minio_server.config()["minio"]["endpoint"] != "elsewhere:1"


def test_kill_and_restart_keep_port_and_data(tmp_path: Path) -> None:
    with MinioServer(tmp_path / "data") as server:
        port = server.port
        client = _client(server)
        client.make_bucket("survivor")
        payload = b"written before the crash"
        client.put_object("survivor", "obj", io.BytesIO(payload), len(payload))

        server.kill()
        assert not server.running
        assert _status(f"http://127.0.0.1:{port}/minio/health/live") != 200

        server.restart()
        assert server.port == port
        resp = _client(server).get_object("survivor", "obj")
        try:
            assert resp.read() == payload
        finally:
            resp.close()
            resp.release_conn()


def test_nginx_reverse_proxy_to_minio(minio_server: MinioServer) -> None:
    block = f"""
    server {{
        listen 127.0.0.1:{{port}};
        location /prefix/ {{
            proxy_pass http://{minio_server.endpoint}/;
            proxy_set_header Host {minio_server.endpoint};
        }}
    }}
    """
    with NginxServer(block) as nginx:
        assert nginx.port is not None and nginx.url == f"http://127.0.0.1:{nginx.port}"
        assert _status(f"{nginx.url}/prefix/minio/health/live") == 200
    assert nginx.prefix is None


def test_unusable_minio_binary_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFSTORE_MINIO_BIN", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="REFSTORE_MINIO_BIN"):
        MinioServer(tmp_path / "data").start()

    monkeypatch.setenv("REFSTORE_MINIO_BIN", "/bin/false")
    server = MinioServer(tmp_path / "data", port=free_port())
    try:
        with pytest.raises(RuntimeError, match="exited with code 1"):
            server.start()
    finally:
        server.close()
