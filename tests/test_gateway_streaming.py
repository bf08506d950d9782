"""The gateway streams with bounded memory, survives backend outages and client hang-ups."""

import http.client
import os
import re
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
from gateway_process import ADMIN_TOKEN, GatewayProcess
from servers import MinioServer

MiB = 1024 * 1024
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def pattern(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """Deterministic bytes, generated on the fly (never held whole)."""
    block = bytes(range(256)) * (chunk // 256)
    for offset in range(0, total, chunk):
        yield block[: min(chunk, total - offset)]


class PeakRss:
    """Samples a process's RSS from a background thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline

    def sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


@pytest.fixture(scope="module")
def own_minio(tmp_path_factory):
    with MinioServer(tmp_path_factory.mktemp("gw-minio")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(own_minio):
    settings = {**own_minio.config(), "default_bucket": "stream"}
    settings["minio"] = {**settings["minio"], "connect_timeout": 1, "read_timeout": 5}
    with GatewayProcess(settings) as process:
        yield process


@pytest.fixture
def client(gateway):
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=60) as client:
        yield client


@pytest.mark.slow
def test_512_mib_up_and_down_with_bounded_gateway_memory(gateway, client):
    size = 512 * MiB
    rss = PeakRss(gateway.pid)

    def body() -> Iterator[bytes]:
        for chunk in pattern(size):
            rss.sample()
            yield chunk

    response = client.put(
        "/files/stream/big/512.bin", content=body(), headers={"Content-Length": str(size)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["size"] == size

    received = 0
    expected = pattern(size)
    with client.stream("GET", "/download", params={"uri": "s3://stream/big/512.bin"}) as download:
        assert download.headers["content-length"] == str(size)
        for chunk in download.iter_bytes(MiB):
            assert chunk == next(expected)
            received += len(chunk)
            rss.sample()
    assert received == size
    # Generous bound for the test; exact figures live in bench/results/gateway.txt.
    print(f"gateway RSS growth over 512 MiB up and down: {rss.growth_mib:.1f} MiB")
    assert rss.growth_mib < 200, f"gateway RSS grew by {rss.growth_mib:.0f} MiB"


def test_download_is_byte_identical(client):
    data = os.urandom(3 * MiB + 7)
    assert client.put("/files/stream/exact/a.bin", content=data).status_code == 200
    assert client.get("/files/stream/exact/a.bin").content == data


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_backend_outage_gives_503_and_recovers_without_restarting_the_gateway(
    gateway, client, own_minio
):
    assert client.put("/files/stream/outage/before.txt", content=b"before").status_code == 200
    own_minio.stop()
    try:
        down = client.get("/download", params={"uri": "s3://stream/outage/before.txt"})
        assert down.status_code == 503
        assert down.json()["code"] == "backend_unavailable"
        assert int(down.headers["retry-after"]) > 0
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert client.get("/health").status_code == 200
        metrics = client.get("/metrics").text
        assert "refstore_backend_up 0.0" in metrics
        assert (
            'refstore_backend_errors_total{kind="backend_unavailable",operation="download"}'
            in metrics
        )
    finally:
        own_minio.restart()
    assert wait_for(lambda: client.get("/ready").status_code == 200)
    assert (
        client.get("/download", params={"uri": "s3://stream/outage/before.txt"}).content
        == b"before"
    )
    assert "refstore_backend_up 1.0" in client.get("/metrics").text


def raw_request(port: int, head: bytes, body: bytes) -> None:
    """Send a request head and part of a body, then hang up."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        time.sleep(0.5)


def test_client_hanging_up_mid_upload_leaves_no_object(gateway, client, own_minio):
    port = int(gateway.url.rsplit(":", 1)[1])
    head = (
        b"PUT /files/stream/gone/raw.bin HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {64 * MiB}\r\n\r\n".encode()
    )
    raw_request(port, head, os.urandom(12 * MiB))
    # a body small enough to be gathered before the upload starts
    head = (
        b"PUT /files/stream/gone/small.bin HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 4096\r\n\r\n".encode()
    )
    raw_request(port, head, os.urandom(1000))

    boundary = "b0undary"
    form_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\ngone\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="form.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {64 * MiB}\r\n".encode()
        + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
    )
    raw_request(port, head, form_head + os.urandom(12 * MiB))

    def nothing_left() -> bool:
        listed = client.get("/list", params={"logic_bucket": "stream", "prefix": "gone/"}).json()
        return listed["files"] == []

    assert wait_for(nothing_left)
    from minio import Minio

    raw = Minio(own_minio.endpoint, own_minio.access_key, own_minio.secret_key, secure=False)
    assert wait_for(lambda: raw._list_multipart_uploads("stream", prefix="gone/").uploads == [])
    tmp_dir = gateway.config_path.parent
    assert not list(tmp_dir.glob("refstore-data/.refstore/tmp/*"))


def test_client_hanging_up_mid_download_releases_the_backend_stream(gateway, client):
    assert client.put("/files/stream/hangup/big.bin", content=b"x" * (32 * MiB)).status_code == 200
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET /files/stream/hangup/big.bin HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")

    def released() -> bool:
        text = client.get("/metrics").text
        match = re.search(r"^refstore_open_downloads (\S+)$", text, re.M)
        return match is not None and float(match.group(1)) == 0

    assert wait_for(released)


def test_an_idle_connection_outlives_the_clients_pool_expiry(gateway):
    """httpx and urllib3 reuse a connection idle for up to 5 s; the gateway must not be
    closing it just then (uvicorn's default keep-alive is exactly 5 s)."""
    port = int(gateway.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read()
        first_socket = connection.sock
        time.sleep(6)
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200
        assert connection.sock is first_socket
    finally:
        connection.close()
