"""Helpers for the end-to-end gateway tests: a real ``refstore serve`` per backend,
httpx clients, hand-built multipart bodies and small assertions."""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_process import ADMIN_TOKEN, GatewayProcess
from prometheus_client.parser import text_string_to_metric_families

BACKENDS = ["minio", "local"]
# The contract suite also runs on a 4-node erasure-coded MinIO behind nginx ("cluster"), which
# the gateway sees as one MinIO endpoint (its backend is "minio").
CONTRACT_BACKENDS = [*BACKENDS, "cluster"]
MiB = 1024 * 1024


def unique(prefix: str) -> str:
    """A name (bucket, key segment) that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def backend_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The backend part of a gateway YAML: the session MinIO, the session MinIO cluster,
    or a fresh local root."""
    if backend == "minio":
        server = request.getfixturevalue("minio_server")
        return {"minio": dict(server.config()["minio"])}
    if backend == "cluster":
        cluster = request.getfixturevalue("minio_cluster")
        return {"minio": dict(cluster.config()["minio"])}
    return {"local": {"root": str(tmp_path_factory.mktemp("gateway-local"))}}


def backend_kind(backend: str) -> str:
    """The backend the gateway reports for a parametrised backend (a cluster is MinIO)."""
    return "minio" if backend == "cluster" else backend


def http_client(url: str, token: str | None = None) -> httpx.Client:
    """A sync client for ``url``, sending ``token`` as a bearer token (no proxies)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)


@dataclass
class Gateway:
    """A running gateway process, which backend it serves, and an admin client."""

    backend: str
    process: GatewayProcess
    admin: httpx.Client
    secrets: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, token: str | None = None) -> httpx.Client:
        return http_client(self.url, token)

    def log(self) -> str:
        return self.process.log()

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON lines of the gateway log (other lines, e.g. banners, are left out)."""
        entries = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def access_entry(self, request_id: str, wait: float = 5.0) -> dict[str, Any]:
        """The access-log line of the request with this X-Request-ID (written just
        after the response, so wait for it a little)."""
        deadline = time.monotonic() + wait
        while True:
            found = [
                e
                for e in self.log_entries()
                if e.get("logger") == "refstore.access" and e.get("request_id") == request_id
            ]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) == 1, f"no single access-log line for {request_id}: {found}"
        return found[0]

    # -- object helpers, all as admin ---------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        response = self.admin.post("/gateway/buckets", json={"name": bucket})
        assert response.status_code == 200, response.text

    def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` at bucket/key with a raw PUT; returns the URI."""
        headers = {"Content-Type": content_type} if content_type else {}
        response = self.admin.put(f"/files/{bucket}/{key}", content=data, headers=headers)
        assert response.status_code == 200, response.text
        uri: str = response.json()["uri"]
        assert uri == f"s3://{bucket}/{key}"
        return uri

    def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        response = self.admin.get(f"/files/{bucket}/{key}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (recursive listing)."""
        response = self.admin.get("/list", params={"logic_bucket": bucket, "prefix": prefix})
        assert response.status_code == 200, response.text
        return sorted(item["object_name"] for item in response.json()["files"])

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics as {(name, sorted labels): value}."""
        response = self.admin.get("/metrics")
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@contextmanager
def running_gateway(
    backend: str,
    settings: dict[str, Any],
    admin_token: str = ADMIN_TOKEN,
    *,
    links_to_self: bool = False,
) -> Iterator[Gateway]:
    """Start ``refstore serve`` with ``settings``; stop it and remove its files afterwards.

    ``links_to_self`` sets ``public_url`` to the gateway's own URL, as a deployment of
    the local backend on another port than 8000 must (README: presigned URLs).
    """
    process = GatewayProcess(settings)
    if links_to_self:
        process.settings["public_url"] = process.url
    try:
        process.start()
        with http_client(process.url, admin_token) as admin:
            yield Gateway(backend, process, admin, _backend_secrets(settings))
    finally:
        process.stop()
        shutil.rmtree(process.config_path.parent, ignore_errors=True)


def _backend_secrets(settings: dict[str, Any]) -> tuple[str, ...]:
    """Credentials the gateway must never show: MinIO's secret key, the local HMAC key."""
    if "minio" in settings:
        return (settings["minio"]["secret_key"],)
    secret_file = Path(settings["local"]["root"]) / ".refstore" / "secret"
    return (secret_file.read_text().strip(),)


def multipart_body(parts: list[tuple[str, Any]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with the parts in exactly the given order.

    Each part is ``(name, value)``: a ``str`` value is a text field, a
    ``(filename, bytes, content_type)`` tuple a file. Returns (body, Content-Type).
    """
    boundary = boundary or uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, value in parts:
        chunks.append(f"--{boundary}\r\n".encode())
        if isinstance(value, str):
            chunks.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            chunks.append(value.encode())
        else:
            filename, data, content_type = value
            chunks.append(
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n".encode()
            )
            chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """The response is the JSON error body ``{"detail", "code"}`` with ``status``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["detail"] and isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body["detail"]


# What a differential test compares of two answers to the same request (the fast routes
# and the declared ones), besides status and body.
COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "content-disposition",
    "etag",
    "last-modified",
    "accept-ranges",
    "www-authenticate",
    "retry-after",
    "connection",
)


def answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, the compared headers and the body of an answer."""
    headers = {name: response.headers.get(name, "") for name in COMPARED_HEADERS}
    return response.status_code, headers, response.content


class HandSentUpload:
    """An upload written to a socket by hand: the head and as much body as asked, then
    nothing until told (or the socket is closed)."""

    def __init__(self, gateway: Gateway, head: bytes, body: bytes = b"") -> None:
        host, port = gateway.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(head + body)

    @classmethod
    def raw(
        cls, gateway: Gateway, key: str, sent: bytes, length: int, token: str = ADMIN_TOKEN
    ) -> HandSentUpload:
        head = (
            f"PUT /files/fair/{key} HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        return cls(gateway, head, sent)

    @classmethod
    def form(
        cls, gateway: Gateway, body_so_far: bytes, boundary: str, token: str = ADMIN_TOKEN
    ) -> HandSentUpload:
        head = (
            f"POST /upload HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        upload = cls(gateway, head)
        upload.send_chunk(body_so_far)
        return upload

    def send_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body."""
        if data:
            self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def answer(self, timeout: float) -> tuple[int, bytes]:
        """(status, body) of the answer, read within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = self.sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            piece = self.sock.recv(65536)
            if not piece:
                break
            body += piece
        return int(head.split(b" ")[1]), body

    def close(self) -> None:
        self.sock.close()


def uploads_in_progress(gateway: Gateway) -> float:
    return gateway.metrics()[("refstore_uploads_in_progress", ())]
