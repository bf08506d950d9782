"""The hostile-input catalog: each row of tests/catalog_rows.py is one bad input, the
answer the contract allows, and afterwards a check that nothing was created or changed.

Gateway rows are raw HTTP/1.1 requests to one real ``refstore serve`` on the session
MinIO (server.max_upload_bytes 8 MiB); library rows are calls on ``RefStore`` on that
MinIO and on the local backend. After every row the state is compared with the state
before: through the gateway (listings, each seeded object's bytes and ETag, the bucket
mapping) and through MinIO directly (every bucket and object with its ETag, and no
incomplete multipart upload, asked of MinIO and looked for in its data directory).
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import catalog_rows as rows
import pytest
from catalog_rows import ADMIN, NFC_NAME, SEED, TOKENS, Http, Lib, sub
from gateway_helpers import Gateway, running_gateway
from minio import Minio
from servers import MinioServer

from refstore import RefStore

SEEDS = {
    "main": ["tenant-a/seed.txt", "tenant-b/seed.txt", f"tenant-a/{NFC_NAME}"],
    "other": ["tenant-a/seed.txt"],
}


class RecordingSource:
    """A local HTTP source that records every request: a refused URL is never fetched."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.hits.append(self.path)
                if self.path == "/redirect-metadata":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"fetched")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass
class Bed:
    """The gateway, MinIO, the two buckets and the source every row runs against."""

    gateway: Gateway
    minio: Minio
    minio_server: MinioServer
    env: dict[str, str]
    source: RecordingSource
    mapping_generation: int = rows.MAPPING_VERSION["generation"]
    last: dict[str, Any] | None = None
    """The state the last row left, checked equal to the state before it."""

    @property
    def buckets(self) -> dict[str, str]:
        return {"main": self.env["main"], "other": self.env["other"]}

    # -- state ------------------------------------------------------------------------

    def minio_state(self) -> dict[str, Any]:
        objects = {
            bucket.name: {
                o.object_name: (o.etag, o.size)
                for o in self.minio.list_objects(bucket.name, recursive=True)
            }
            for bucket in self.minio.list_buckets()
        }
        uploads = {
            name: sorted(
                (u.object_name, u.upload_id)
                for u in self.minio._list_multipart_uploads(name).uploads
            )
            for name in objects
        }
        on_disk = sorted(
            str(p.relative_to(self.minio_server.data_dir))
            for p in (self.minio_server.data_dir / ".minio.sys" / "multipart").rglob("*")
            if p.is_file()
        )
        return {"objects": objects, "uploads": uploads, "multipart_on_disk": on_disk}

    def gateway_state(self) -> dict[str, Any]:
        admin = self.gateway.admin
        state: dict[str, Any] = {}
        for role, bucket in self.buckets.items():
            listed = admin.get("/list", params={"logic_bucket": bucket})
            assert listed.status_code == 200, listed.text
            state[f"list-{role}"] = sorted(
                (f["object_name"], f["etag"], f["size"]) for f in listed.json()["files"]
            )
            for key in SEEDS[role]:
                read = admin.get(f"/files/{bucket}/{key}")
                info = admin.get("/info", params={"uri": f"s3://{bucket}/{key}"})
                state[f"{role}/{key}"] = (
                    read.status_code,
                    hashlib.sha256(read.content).hexdigest(),
                    read.headers.get("etag"),
                    info.json().get("info", {}) and info.json()["info"]["etag"],
                )
        mapping = admin.get("/gateway/bucket-mapping").json()
        mapping.pop("changed", None)
        state["mapping"] = mapping
        return state

    def state(self) -> dict[str, Any]:
        return {"minio": self.minio_state(), "gateway": self.gateway_state()}

    def settled(self, before: dict[str, Any], wait: float = 5.0) -> dict[str, Any]:
        """The state, once it equals ``before`` or ``wait`` seconds have passed (an
        upload cut off by its client is aborted a moment after the connection ends)."""
        deadline = time.monotonic() + wait
        while True:
            now = self.state()
            if now == before or time.monotonic() > deadline:
                return now
            time.sleep(0.1)

    # -- repair after a row that changed something ---------------------------------------

    def restore(self) -> None:
        seeded = {self.buckets[role]: set(keys) for role, keys in SEEDS.items()}
        for bucket in self.minio.list_buckets():
            for upload in self.minio._list_multipart_uploads(bucket.name).uploads:
                assert upload.object_name is not None and upload.upload_id is not None
                self.minio._abort_multipart_upload(
                    bucket.name, upload.object_name, upload.upload_id
                )
            keep = seeded.get(bucket.name)
            for item in self.minio.list_objects(bucket.name, recursive=True):
                if keep is None or item.object_name not in keep:
                    self.minio.remove_object(bucket.name, item.object_name)
            if keep is None:
                self.minio.remove_bucket(bucket.name)
        self.seed()
        self.mapping_generation += 1
        version = {**rows.MAPPING_VERSION, "generation": self.mapping_generation}
        body = {"enable_bucket_mapping": False, "bucket_map": {}, "version": version}
        response = self.gateway.admin.put("/gateway/bucket-mapping", json=body)
        assert response.status_code == 200, response.text

    def seed(self) -> None:
        for role, keys in SEEDS.items():
            for key in keys:
                self.minio.put_object(self.buckets[role], key, _stream(SEED), len(SEED))


def _stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


@pytest.fixture(scope="module")
def bed(
    private_minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bed]:
    suffix = uuid.uuid4().hex[:8]
    main, other = f"hc-main-{suffix}", f"hc-other-{suffix}"
    minio_settings = dict(private_minio_server.config()["minio"])
    client = Minio(
        minio_settings["endpoint"],
        minio_settings["access_key"],
        minio_settings["secret_key"],
        secure=False,
    )
    for bucket in (main, other):
        client.make_bucket(bucket)
    settings = {
        "minio": minio_settings,
        "default_bucket": main,
        "part_size": 5 * rows.MiB,
        "auth": {
            "mode": "keys",
            "admin_tokens": [TOKENS[ADMIN]],
            "api_keys": [
                {
                    "key": TOKENS[rows.PROJECT],
                    "project": "tenant-a",
                    "buckets": [main],
                    "prefix": "tenant-a/",
                },
                {
                    "key": TOKENS[rows.READONLY],
                    "project": "tenant-a-readonly",
                    "buckets": [main],
                    "prefix": "tenant-a/",
                    "actions": ["read", "list"],
                },
            ],
            "mapping_tokens": [TOKENS[rows.MAPPING]],
        },
        "server": {"max_upload_bytes": rows.MAX_UPLOAD, "body_idle_timeout": 5},
        "url_fetch": {"deadline": 5},
    }
    source = RecordingSource()
    try:
        with running_gateway("minio", settings, TOKENS[ADMIN]) as gateway:
            env = {
                "main": main,
                "other": other,
                "src": f"http://127.0.0.1:{source.port}",
                "port": str(source.port),
            }
            bed = Bed(gateway, client, private_minio_server, env, source)
            bed.seed()
            version = rows.MAPPING_VERSION
            body = {"enable_bucket_mapping": False, "bucket_map": {}, "version": version}
            pushed = gateway.admin.put("/gateway/bucket-mapping", json=body)
            assert pushed.status_code == 200, pushed.text
            yield bed
    finally:
        source.close()


@pytest.fixture(scope="module")
def local_store(
    tmp_path_factory: pytest.TempPathFactory, bed: Bed
) -> Iterator[tuple[RefStore, Path]]:
    root = tmp_path_factory.mktemp("catalog-local")
    with RefStore({"local": {"root": str(root)}, "default_bucket": bed.env["main"]}) as store:
        store.update_bucket_mapping(False, {}, rows.MAPPING_VERSION)
        for role, keys in SEEDS.items():
            for key in keys:
                store.upload_to(f"s3://{bed.buckets[role]}/{key}", SEED)
        yield store, root


@pytest.fixture(scope="module")
def minio_store(bed: Bed) -> Iterator[RefStore]:
    config = {**copy.deepcopy(bed.minio_server.config()), "default_bucket": bed.env["main"]}
    with RefStore(config) as store:
        store.update_bucket_mapping(False, {}, rows.MAPPING_VERSION)
        yield store


# -- sending one raw request -------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: the connection ended without an answer
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        if self.status is None:
            return "no answer (connection closed)"
        return f"{self.status} {self.body[:300]!r}"


def encode(text: str | bytes, env: dict[str, str]) -> bytes:
    """A target or body as bytes: placeholders filled in; in a str, surrogate escapes
    (``\\udcff``) stand for raw bytes that are not UTF-8."""
    if isinstance(text, bytes):
        for name, value in env.items():
            text = text.replace(f"<{name}>".encode(), value.encode())
        return text
    return sub(text, env).encode("utf-8", "surrogateescape")


def send(bed: Bed, row: Http) -> Answer:
    host, port = bed.gateway.process.host, bed.gateway.process.port
    body = encode(row.body, bed.env)
    lines = [
        f"{row.method} ".encode() + encode(row.target, bed.env) + b" HTTP/1.1",
        f"Host: {host}:{port}".encode(),
        b"Connection: close",
    ]
    if row.token is not None:
        lines.append(f"Authorization: Bearer {TOKENS[row.token]}".encode())
    for name, value in row.headers:
        lines.append(f"{name}: {value}".encode())
    if row.length is None:
        lines.append(f"Content-Length: {len(body)}".encode())
    elif row.length:
        lines.append(f"Content-Length: {row.length}".encode())
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    sock = socket.create_connection((host, port), timeout=15)
    try:
        try:
            sock.sendall(request)
            if row.truncate:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused midway: the answer may still be there to read
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            data = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead):
            return Answer(None, {}, b"")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        sock.close()


def check_answer(row: Http, answer: Answer, env: dict[str, str]) -> None:
    """The answer is one the row allows (never a 5xx)."""
    seen = answer.describe()
    assert answer.status is None or answer.status < 500, f"a 5xx for bad input: {seen}"
    if answer.status is None:
        assert row.no_answer_ok, f"expected an answer, got {seen}"
        return
    if row.any_4xx:
        assert 400 <= answer.status < 500, seen
        return
    for status, expected in row.ok:
        if answer.status == status:
            if expected == rows.WHOLE:
                assert answer.body == SEED, seen
            elif isinstance(expected, str):  # a JSON document the answer must include
                body = json.loads(answer.body)
                for name, value in json.loads(sub(expected, env)).items():
                    assert body.get(name) == value, seen
            else:
                assert answer.body == expected, seen
            return
    allowed = [f"{s} {c}" for s, c in row.errors] + [f"{s} (success)" for s, _ in row.ok]
    assert (answer.status, error_code(answer)) in row.errors, f"expected {allowed}, got {seen}"
    assert answer.headers.get("content-type", "").startswith("application/json"), seen
    body = json.loads(answer.body)
    assert set(body) == {"detail", "code"} and body["detail"], seen
    if answer.status == 416:
        assert answer.headers.get("content-range") == f"bytes */{len(SEED)}", answer.headers
    if answer.status == 401:
        assert answer.headers.get("www-authenticate") == "Bearer", answer.headers


def error_code(answer: Answer) -> str | None:
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def assert_unchanged(bed: Bed, before: dict[str, Any], row_id: str, wait: float = 0.3) -> None:
    after = bed.settled(before, wait)
    bed.last = after
    if after != before:
        bed.restore()
        bed.last = None
        changed = {
            side: {
                k: (before[side].get(k), v)
                for k, v in after[side].items()
                if before[side].get(k) != v
            }
            for side in after
        }
        pytest.fail(f"{row_id} changed the state (before, after): {changed}")
    assert "\ufffd" not in json.dumps(after, ensure_ascii=False), "a U+FFFD key appeared"


@pytest.fixture
def before(bed: Bed) -> dict[str, Any]:
    state = bed.last or bed.state()
    bed.source.hits.clear()
    return state


@pytest.mark.parametrize("row", rows.HTTP_ROWS, ids=lambda row: row.id)
def test_gateway_row(bed: Bed, before: dict[str, Any], row: Http) -> None:
    answer = send(bed, row)
    try:
        check_answer(row, answer, bed.env)
    finally:
        # A body cut off or refused is aborted a moment after the answer: wait for it.
        slow = row.truncate or row.kind in ("oversized", "truncated")
        assert_unchanged(bed, before, row.id, wait=3.0 if slow else 0.3)
    if row.kind == "url":
        assert bed.source.hits == [] or row.id == "url-redirect-to-metadata", bed.source.hits


# -- library rows -------------------------------------------------------------------------------


def local_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


LIB_PARAMS = [
    pytest.param(row, backend, id=f"{backend}-{row.id}")
    for row in rows.LIB_ROWS
    for backend in row.backends
]


@pytest.mark.parametrize(("row", "backend"), LIB_PARAMS)
def test_library_row(
    request: pytest.FixtureRequest, bed: Bed, before: dict[str, Any], row: Lib, backend: str
) -> None:
    if backend == "minio":
        store = request.getfixturevalue("minio_store")
        files_before: dict[str, str] = {}
        root = None
    else:
        store, root = request.getfixturevalue("local_store")
        files_before = local_files(root)
    mapping_before = store.mapping.current
    try:
        with pytest.raises(row.raises) as raised:
            row.call(store, bed.env)
        assert raised.value.__class__.__module__.startswith("refstore"), raised.value
    finally:
        if root is not None:
            assert local_files(root) == files_before
        assert store.mapping.current == mapping_before
        assert_unchanged(bed, before, row.id)
    if row.kind == "url":
        assert bed.source.hits == []


# -- the checks can fail ----------------------------------------------------------------------


def test_the_state_check_sees_an_incomplete_multipart_upload(bed: Bed) -> None:
    before = bed.state()
    upload_id = bed.minio._create_multipart_upload(
        bed.env["main"], "tenant-a/left-over.bin", {"Content-Type": "application/octet-stream"}
    )
    try:
        after = bed.state()
        assert after["minio"]["uploads"] != before["minio"]["uploads"]
        assert after["minio"]["multipart_on_disk"] != before["minio"]["multipart_on_disk"]
    finally:
        bed.minio._abort_multipart_upload(bed.env["main"], "tenant-a/left-over.bin", upload_id)
    assert bed.settled(before) == before


def test_a_body_cut_off_past_one_part_had_a_multipart_upload_that_is_aborted(bed: Bed) -> None:
    """The truncated row over one part is worth its check: while its body is still
    coming, MinIO holds an incomplete upload; once the client goes, none is left."""
    before = bed.state()
    host, port = bed.gateway.process.host, bed.gateway.process.port
    key = "tenant-a/cut-watched.bin"
    head = (
        f"PUT /files/{bed.env['main']}/{key} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {TOKENS[ADMIN]}\r\nContent-Length: {rows.MAX_UPLOAD}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(head + b"x" * (6 * rows.MiB))
        deadline = time.monotonic() + 5
        while not bed.minio_state()["uploads"][bed.env["main"]]:
            assert time.monotonic() < deadline, "no multipart upload was started"
            time.sleep(0.05)
    assert bed.settled(before, 5) == before


def test_the_state_check_sees_a_rewritten_seed_and_a_new_object(bed: Bed) -> None:
    before = bed.state()
    bed.minio.put_object(bed.env["main"], "tenant-a/seed.txt", _stream(SEED.lower()), len(SEED))
    rewritten = bed.state()
    assert rewritten["minio"] != before["minio"] and rewritten["gateway"] != before["gateway"]
    bed.minio.put_object(bed.env["other"], "new.txt", _stream(b"n"), 1)
    bed.restore()
    restored = bed.state()
    assert restored["minio"] == before["minio"]
    assert {k: v for k, v in restored["gateway"].items() if k != "mapping"} == {
        k: v for k, v in before["gateway"].items() if k != "mapping"
    }


# -- the catalog itself ---------------------------------------------------------------------------


def test_the_catalog_covers_every_class_with_at_least_80_rows() -> None:
    kinds = {row.kind for row in rows.HTTP_ROWS} | {row.kind for row in rows.LIB_ROWS}
    assert kinds >= {
        "uri", "key", "bucket", "presign", "range", "oversized", "truncated", "multipart",
        "json", "scope", "token", "mapping", "url", "query", "header",
    }  # fmt: skip
    ids = [row.id for row in rows.HTTP_ROWS] + [row.id for row in rows.LIB_ROWS]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    assert len(ids) >= 80


def test_the_gateway_logged_no_unhandled_exception(bed: Bed) -> None:
    """Runs last in the module: nothing any row sent made the app fail."""
    log = bed.gateway.log()
    for marker in ("Traceback", "Exception in ASGI application"):
        assert marker not in log, log[-4000:]
    answered = [e for e in bed.gateway.log_entries() if e.get("logger") == "refstore.access"]
    assert answered, "the access log is empty"
    server_errors = [e for e in answered if int(e.get("status", 0)) >= 500]
    assert server_errors == [], server_errors


@pytest.fixture(autouse=True)
def _bounded(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 30, f"{request.node.name} took too long"
