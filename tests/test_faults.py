"""Faults on a real MinIO under a real ``refstore serve``: MinIO killed or paused mid-transfer,
clients that go away at any point of a body, SIGTERM under load, concurrent overwrites and a
bucket-mapping update under load. Nothing may hang, answer 200 for a partial object, leave a
partial object or an incomplete multipart upload behind, or hold an upload slot.

With ``REFSTORE_FAULTS_REPORT=FILE`` the measured reaction times and outcomes are written to
FILE (``bench/results/faults.txt``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import urllib3
from gateway_helpers import (
    Gateway,
    HandSentUpload,
    multipart_body,
    running_gateway,
    uploads_in_progress,
)
from gateway_process import ADMIN_TOKEN
from minio import Minio
from minio.error import S3Error
from polling import wait_until
from servers import MinioServer

MiB = 1024 * 1024
BUCKET = "faults"
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 3.0
PART_SIZE = 5 * MiB
# A part upload blocked on a paused MinIO waits READ_TIMEOUT, then minio-py's abort of the
# multipart upload waits as long again; the margin is for a loaded machine.
REACTION_BOUND = CONNECT_TIMEOUT + 2 * READ_TIMEOUT + 4.0
SHUTDOWN_GRACE = 2
EXIT_MARGIN = 5.0

REPORT: list[str] = []


def report(line: str) -> None:
    print(line)
    REPORT.append(line)


@pytest.fixture(scope="module", autouse=True)
def faults_report() -> Iterator[None]:
    yield
    path = os.environ.get("REFSTORE_FAULTS_REPORT")
    if path:
        header = [
            "Faults on a real MinIO under `refstore serve` (tests/test_faults.py)",
            f"generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by "
            "REFSTORE_FAULTS_REPORT=bench/results/faults.txt "
            "python -m pytest -q -p no:cacheprovider tests/test_faults.py",
            f"gateway: minio connect_timeout {CONNECT_TIMEOUT:g} s, read_timeout "
            f"{READ_TIMEOUT:g} s, retry max_retries 0, part_size {PART_SIZE // MiB} MiB, "
            f"shutdown_grace {SHUTDOWN_GRACE} s",
            f"reaction bound: connect + 2 x read + 4 s = {REACTION_BOUND:g} s",
            "",
        ]
        with open(path, "w") as out:
            out.write("\n".join(header + REPORT) + "\n")


@pytest.fixture(scope="module")
def minio(private_minio_server: MinioServer) -> MinioServer:
    return private_minio_server


def direct(server: MinioServer) -> Minio:
    """A minio-py client straight to the server, with short timeouts."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2, read=10), retries=urllib3.Retry(total=0), maxsize=16
    )
    return Minio(
        server.endpoint, server.access_key, server.secret_key, secure=False, http_client=http
    )


def gateway_settings(server: MinioServer, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {**server.config(), "default_bucket": BUCKET}
    settings["minio"] = {
        **settings["minio"],
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    }
    settings["retry"] = {"max_retries": 0}
    settings["part_size"] = PART_SIZE
    settings["server"] = {"shutdown_grace": SHUTDOWN_GRACE}
    settings.update(extra)
    return settings


@pytest.fixture(scope="module")
def gateway(minio: MinioServer) -> Iterator[Gateway]:
    with running_gateway("minio", gateway_settings(minio)) as gateway:
        gateway.put(BUCKET, "present", b"the bucket exists")
        yield gateway


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(client: Minio, bucket: str, key: str) -> bytes | None:
    """The object's bytes as MinIO has them, or None when it does not exist."""
    try:
        response = client.get_object(bucket, key)
    except S3Error as err:
        if err.code == "NoSuchKey":
            return None
        raise
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def incomplete_uploads(client: Minio, bucket: str, prefix: str) -> list[str]:
    result = client._list_multipart_uploads(bucket, prefix=prefix)
    return [upload.object_name for upload in result.uploads]


def ready(gateway: Gateway) -> bool:
    try:
        return gateway.admin.get("/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class BodyUpload:
    """An upload sent by hand (raw ``PUT /files`` or form ``POST /upload``, with
    Content-Length or chunked), whose body goes in steps."""

    def __init__(self, gateway: Gateway, kind: str, chunked: bool, key: str, data: bytes) -> None:
        if kind == "raw":
            method, target, body = "PUT", f"/files/{BUCKET}/{key}", data
            content_type = "application/octet-stream"
        else:
            directory, name = key.rsplit("/", 1)
            method, target = "POST", "/upload"
            body, content_type = multipart_body(
                [
                    ("logic_bucket", BUCKET),
                    ("path", directory),
                    ("file", (name, data, "application/octet-stream")),
                ]
            )
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: {content_type}\r\n"
            f"{framing}\r\n\r\n"
        ).encode()
        self.body = body
        self.chunked = chunked
        self.sent = 0
        self.hand = HandSentUpload(gateway, head)

    def send(self, upto: int) -> None:
        """Send the body up to byte ``upto`` (exclusive), in 256 KiB writes."""
        while self.sent < upto:
            piece = self.body[self.sent : min(upto, self.sent + 256 * 1024)]
            if self.chunked:
                self.hand.send_chunk(piece)
            else:
                self.hand.sock.sendall(piece)
            self.sent += len(piece)

    def finish(self) -> None:
        self.send(len(self.body))
        if self.chunked:
            self.hand.sock.sendall(b"0\r\n\r\n")

    def finish_in_background(self) -> threading.Thread:
        """Go on sending the rest (as a client does), whatever the gateway does with it."""

        def run() -> None:
            with contextlib.suppress(OSError):  # the gateway answered and closed
                self.finish()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def answer(self, timeout: float) -> tuple[int, bytes]:
        try:
            return self.hand.answer(timeout)
        except TimeoutError:
            raise AssertionError(f"no answer within {timeout}s: the upload hangs") from None
        except (IndexError, OSError) as err:
            raise AssertionError(f"the connection ended without an answer: {err!r}") from None

    def close(self) -> None:
        self.hand.close()


@contextmanager
def fault(kind: str, server: MinioServer) -> Iterator[None]:
    """MinIO killed (SIGKILL, then started again) or paused (SIGSTOP, then SIGCONT)."""
    if kind == "pause":
        with server.paused():
            yield
        return
    server.kill()
    try:
        yield
    finally:
        server.start()


def back_to_service(gateway: Gateway, client: Minio, prefix: str) -> None:
    """The gateway serves again without a restart, and no multipart upload is left."""
    wait_until(lambda: ready(gateway), 20, "the gateway ready again")
    key = f"{prefix}after"
    response = gateway.admin.put(f"/files/{BUCKET}/{key}", content=b"served again")
    assert response.status_code == 200, response.text
    assert stored(client, BUCKET, key) == b"served again"
    wait_until(
        lambda: incomplete_uploads(client, BUCKET, prefix) == [],
        10,
        f"no incomplete multipart upload under {prefix}",
    )


UPLOAD_SIZE = 24 * MiB
SENT_BEFORE_FAULT = 12 * MiB


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", ["raw", "form"])
@pytest.mark.parametrize("what", ["kill", "pause"])
def test_minio_fails_mid_upload(
    gateway: Gateway, minio: MinioServer, what: str, kind: str, chunked: bool
) -> None:
    """Half of a 24 MiB body sent and its multipart upload begun on MinIO, MinIO dies or
    freezes while the client goes on sending: a JSON 503 in bounded time, no object, no
    multipart upload left, and the gateway serves again."""
    client = direct(minio)
    prefix = (
        f"mid-upload/{what}-{kind}-{'chunked' if chunked else 'length'}-{uuid.uuid4().hex[:6]}/"
    )
    key = prefix + "object.bin"
    upload = BodyUpload(gateway, kind, chunked, key, os.urandom(UPLOAD_SIZE))
    try:
        upload.send(SENT_BEFORE_FAULT)
        wait_until(lambda: incomplete_uploads(client, BUCKET, key) != [], 10, "the upload begun")
        with fault(what, minio):
            started = time.monotonic()
            upload.finish_in_background()
            status, body = upload.answer(timeout=REACTION_BOUND + 10)
            elapsed = time.monotonic() - started
            wait_until(lambda: uploads_in_progress(gateway) == 0, 5, "the slot freed")
    finally:
        upload.close()
    report(
        f"mid-upload  MinIO {what:5} {kind:4} {'chunked' if chunked else 'length ':7}: "
        f"{status} {body[:60]!r} after {elapsed:.2f} s"
    )
    assert status == 503, body
    assert b'"code":"backend_unavailable"' in body, body
    assert elapsed < REACTION_BOUND, f"{elapsed:.2f}s"
    back_to_service(gateway, client, prefix)
    assert stored(client, BUCKET, key) is None
    assert gateway.keys(BUCKET, prefix) == [prefix + "after"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", ["raw", "form"])
def test_minio_paused_under_a_small_body_sent_whole(
    gateway: Gateway, minio: MinioServer, kind: str, chunked: bool
) -> None:
    """A 512 KiB body goes to MinIO in one PUT, whole, and MinIO does not answer: 504
    outcome_unknown within the read timeout, and once MinIO resumes the object is whole
    or absent."""
    client = direct(minio)
    prefix = f"unknown/{kind}-{'chunked' if chunked else 'length'}-{uuid.uuid4().hex[:6]}/"
    key = prefix + "object.bin"
    data = os.urandom(512 * 1024)
    upload = BodyUpload(gateway, kind, chunked, key, data)
    try:
        with minio.paused():
            started = time.monotonic()
            upload.finish()
            status, body = upload.answer(timeout=REACTION_BOUND + 10)
            elapsed = time.monotonic() - started
    finally:
        upload.close()
    back_to_service(gateway, client, prefix)
    found = stored(client, BUCKET, key)
    outcome = "absent" if found is None else ("whole" if found == data else "PARTIAL")
    report(
        f"sent whole, MinIO paused {kind:4} {'chunked' if chunked else 'length ':7}: "
        f"{status} {body[:50]!r} after {elapsed:.2f} s; object {outcome} after resuming"
    )
    assert status == 504, body
    assert b'"code":"outcome_unknown"' in body, body
    assert READ_TIMEOUT * 0.8 < elapsed < READ_TIMEOUT + 4, f"{elapsed:.2f}s"
    assert found is None or found == data, f"{len(found)} of {len(data)} bytes"


@pytest.fixture(scope="module")
def big_object(gateway: Gateway) -> tuple[str, bytes]:
    data = os.urandom(64 * MiB)
    gateway.put(BUCKET, "download/big.bin", data)
    return "download/big.bin", data


@pytest.mark.parametrize("what", ["kill", "pause"])
def test_minio_fails_mid_download(
    gateway: Gateway, minio: MinioServer, big_object: tuple[str, bytes], what: str
) -> None:
    """The answer of a download cut by the fault ends short of its Content-Length (the
    client can tell), in bounded time, and the gateway serves it whole afterwards."""
    key, data = big_object
    client = direct(minio)
    received = 0
    outcome = "complete"
    with (
        httpx.Client(
            base_url=gateway.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=httpx.Timeout(REACTION_BOUND + 10),
            trust_env=False,
        ) as http,
        http.stream("GET", f"/files/{BUCKET}/{key}") as response,
    ):
        assert response.status_code == 200
        length = int(response.headers["content-length"])
        chunks = response.iter_raw(256 * 1024)
        while received < 2 * MiB:
            received += len(next(chunks))
        with fault(what, minio):
            started = time.monotonic()
            try:
                for chunk in chunks:
                    received += len(chunk)
            except httpx.RemoteProtocolError as err:
                outcome = f"cut: {str(err).split(' (')[0]}"
            except httpx.ReadTimeout:
                outcome = "hang"
            elapsed = time.monotonic() - started
    report(
        f"mid-download MinIO {what:5}: {outcome[:70]}; {received} of {length} bytes, "
        f"ended {elapsed:.2f} s after the fault"
    )
    assert length == len(data)
    assert outcome.startswith("cut"), outcome
    assert received < length
    assert elapsed < REACTION_BOUND, f"{elapsed:.2f}s"
    wait_until(lambda: ready(gateway), 20, "the gateway ready again")
    assert sha(gateway.admin.get(f"/files/{BUCKET}/{key}").content) == sha(data)
    assert gateway.metrics()[("refstore_open_downloads", ())] == 0
    assert stored(client, BUCKET, key) == data


@pytest.mark.parametrize("kind", ["raw", "form"])
@pytest.mark.parametrize("percent", [0, 50, 99, 100])
def test_client_goes_away(gateway: Gateway, minio: MinioServer, kind: str, percent: int) -> None:
    """A client closing its connection at 0/50/99 % of a 6 MiB body leaves nothing; at
    100 % (sent whole, the answer never read) the object is whole or absent."""
    client = direct(minio)
    prefix = f"gone/{kind}-{percent}-{uuid.uuid4().hex[:6]}/"
    key = prefix + "object.bin"
    data = os.urandom(6 * MiB)
    upload = BodyUpload(gateway, kind, False, key, data)
    try:
        if percent == 100:
            upload.finish()
        else:
            upload.send(len(upload.body) * percent // 100)
            wait_until(lambda: uploads_in_progress(gateway) == 1, 10, "the upload admitted")
    finally:
        upload.close()
    freed = wait_until(lambda: uploads_in_progress(gateway) == 0, 10, "the slot freed")
    time.sleep(0.3)  # a write the gateway was still making would show by now
    found = stored(client, BUCKET, key)
    outcome = "absent" if found is None else ("whole" if found == data else "PARTIAL")
    report(f"client gone {kind:4} at {percent:3} %: object {outcome}, slot freed in {freed:.2f} s")
    assert incomplete_uploads(client, BUCKET, prefix) == []
    if percent < 100:
        assert found is None
    else:
        assert found is None or found == data, f"{len(found)} of {len(data)} bytes"
    assert gateway.keys(BUCKET, prefix) == ([] if found is None else [key])


@dataclass
class Outcomes:
    """What each client of a load saw, by request."""

    uploads: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (outcome, sha)
    downloads: list[str] = field(default_factory=list)
    cut_at: list[float] = field(default_factory=list)  # when downloads were cut after a 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def upload(self, key: str, outcome: str, digest: str) -> None:
        with self.lock:
            self.uploads[key] = (outcome, digest)

    def download(self, outcome: str, cut_at: float | None = None) -> None:
        with self.lock:
            self.downloads.append(outcome)
            if cut_at is not None:
                self.cut_at.append(cut_at)


def _classify(err: httpx.HTTPError) -> str:
    if isinstance(err, httpx.ConnectError):
        return "refused"
    return f"cut ({type(err).__name__})"


def test_sigterm_under_load(minio: MinioServer) -> None:
    """8 clients upload and download while the gateway gets SIGTERM: what was answered 200
    is whole in MinIO, what failed is absent or whole, never partial, and the process exits
    within shutdown_grace plus a margin."""
    client = direct(minio)
    prefix = f"term/{uuid.uuid4().hex[:6]}/"
    source = os.urandom(8 * MiB)
    outcomes = Outcomes()
    stop = threading.Event()
    with running_gateway("minio", gateway_settings(minio)) as gateway:
        gateway.put(BUCKET, prefix + "source.bin", source)

        def uploader(n: int) -> None:
            with gateway.client(ADMIN_TOKEN) as http:
                for i in range(1000):
                    if stop.is_set():
                        return
                    key = f"{prefix}u{n}-{i}"
                    data = os.urandom(3 * MiB)
                    body: Any = data
                    if n == 0:  # slower than the grace: cancelled by the shutdown

                        def slowly(data: bytes = data) -> Iterator[bytes]:
                            for offset in range(0, len(data), 64 * 1024):
                                time.sleep(0.1)
                                yield data[offset : offset + 64 * 1024]

                        body = slowly()
                    try:
                        response = http.put(f"/files/{BUCKET}/{key}", content=body)
                        outcomes.upload(key, str(response.status_code), sha(data))
                    except httpx.HTTPError as err:
                        outcomes.upload(key, _classify(err), sha(data))
                        return

        def downloader() -> None:
            with gateway.client(ADMIN_TOKEN) as http:
                while not stop.is_set():
                    status = None
                    try:
                        with http.stream("GET", f"/files/{BUCKET}/{prefix}source.bin") as response:
                            status = response.status_code
                            body = response.read()
                    except httpx.HTTPError as err:
                        if status is None:
                            outcomes.download(_classify(err))
                        else:
                            outcomes.download(f"{status} then {_classify(err)}", time.monotonic())
                        return
                    if status == 200 and sha(body) != sha(source):
                        outcomes.download("200 WRONG BYTES")
                    else:
                        outcomes.download(str(status))

        threads = [threading.Thread(target=uploader, args=(n,)) for n in range(4)]
        threads += [threading.Thread(target=downloader) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        in_flight = uploads_in_progress(gateway)
        process = gateway.process.process
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_GRACE + EXIT_MARGIN + 10)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        exited = time.monotonic() - started
        log = gateway.log()

    partial = []
    summary: dict[str, int] = {}
    for key, (outcome, digest) in outcomes.uploads.items():
        found = stored(client, BUCKET, key)
        state = "absent" if found is None else ("whole" if sha(found) == digest else "PARTIAL")
        summary[f"upload {outcome} -> {state}"] = summary.get(f"upload {outcome} -> {state}", 0) + 1
        if state == "PARTIAL" or (outcome == "200" and state != "whole"):
            partial.append((key, outcome, state))
    for outcome in outcomes.downloads:
        summary[f"download {outcome}"] = summary.get(f"download {outcome}", 0) + 1
    report(
        f"SIGTERM under load ({in_flight:g} uploads in flight): exited {exited:.2f} s after "
        f"the signal (grace {SHUTDOWN_GRACE} s), code {process.returncode}"
    )
    for name, count in sorted(summary.items()):
        report(f"  {name}: {count}")
    assert in_flight >= 1
    assert exited < SHUTDOWN_GRACE + EXIT_MARGIN, log[-3000:]
    # A download answered 200 before the grace ran out is sent whole (8 MiB take ~0.1 s).
    early_cuts = [t - started for t in outcomes.cut_at if t - started < SHUTDOWN_GRACE - 0.5]
    assert early_cuts == [], early_cuts
    assert process.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert partial == []
    assert "200 WRONG BYTES" not in outcomes.downloads
    assert any(outcome == "200" for outcome, _ in outcomes.uploads.values())
    assert "200" in outcomes.downloads
    listed = {o.object_name for o in client.list_objects(BUCKET, prefix, recursive=True)}
    assert listed - {prefix + "source.bin"} <= set(outcomes.uploads)
    assert incomplete_uploads(client, BUCKET, prefix) == []


def run_for(seconds: float, workers: list[Callable[[], None]]) -> threading.Event:
    """Run each worker in a loop in its own thread for ``seconds``; returns the stop event."""
    stop = threading.Event()

    def loop(work: Callable[[], None]) -> None:
        while not stop.is_set():
            work()

    threads = [threading.Thread(target=loop, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    return stop


def test_concurrent_overwrites_read_whole(gateway: Gateway, minio: MinioServer) -> None:
    """Three writers overwrite one key with payloads of 1.5, 5.5 and 7 MiB (one PUT and
    multipart uploads) while three readers read it: each read is wholly one payload."""
    key = f"overwrite/{uuid.uuid4().hex[:6]}"
    payloads = [os.urandom(size) for size in (3 * MiB // 2, 11 * MiB // 2, 7 * MiB)]
    digests = {sha(p): i for i, p in enumerate(payloads)}
    gateway.put(BUCKET, key, payloads[0])
    writes: list[int] = []
    reads: list[str] = []
    lock = threading.Lock()

    def writer(data: bytes) -> Callable[[], None]:
        def work() -> None:
            with gateway.client(ADMIN_TOKEN) as http:
                status = http.put(f"/files/{BUCKET}/{key}", content=data).status_code
            with lock:
                writes.append(status)

        return work

    def reader() -> None:
        with gateway.client(ADMIN_TOKEN) as http:
            response = http.get(f"/files/{BUCKET}/{key}")
        if response.status_code != 200:
            seen = str(response.status_code)
        else:
            found = digests.get(sha(response.content))
            seen = "MIX" if found is None else f"payload {found}"
        with lock:
            reads.append(seen)

    run_for(4.0, [writer(p) for p in payloads] + [reader] * 3)
    counts = {name: reads.count(name) for name in sorted(set(reads))}
    report(f"overwrites: {len(writes)} writes ({set(writes)}), {len(reads)} reads: {counts}")
    assert set(writes) == {200}
    assert len(reads) >= 6 and set(reads) <= {"payload 0", "payload 1", "payload 2"}, counts
    assert stored(direct(minio), BUCKET, key) in payloads


@dataclass
class Switch:
    sent: float
    answered: float
    target: str


@dataclass
class Request:
    kind: str
    start: float
    end: float
    status: int
    bucket: str  # where it was stored (upload) or read from (download)
    answered: str = ""  # the bucket of the URI an upload was answered with


def allowed_buckets(switches: list[Switch], initial: str, start: float, end: float) -> set[str]:
    """The physical buckets a request running from ``start`` to ``end`` may use: the
    mapping in force when it began, and that of every update overlapping it."""
    before = [s for s in switches if s.answered <= start]
    allowed = {before[-1].target if before else initial}
    allowed |= {s.target for s in switches if s.sent <= end and s.answered >= start}
    return allowed


UPDATES = 20


def test_mapping_update_under_load(minio: MinioServer) -> None:
    """``PUT /gateway/bucket-mapping`` flips the logical bucket between two physical ones
    while clients upload and download through it: no 5xx, and every request lands in the
    physical bucket of the mapping in force."""
    client = direct(minio)
    physical = {"a": f"phys-a-{uuid.uuid4().hex[:6]}", "b": f"phys-b-{uuid.uuid4().hex[:6]}"}
    for name, bucket in physical.items():
        client.make_bucket(bucket)
        client.put_object(bucket, "probe", _stream(name.encode() * 1000), 1000)
    settings = gateway_settings(
        minio, enable_bucket_mapping=True, bucket_map={"logi": physical["a"]}
    )
    by_content = {b"a" * 1000: physical["a"], b"b" * 1000: physical["b"]}
    records: list[Request] = []
    switches: list[Switch] = []
    lock = threading.Lock()
    counter = iter(range(1_000_000))
    with running_gateway("minio", settings) as gateway:

        def upload(form: bool, slow: bool) -> Callable[[], None]:
            return lambda: upload_one(form, slow)

        def upload_one(form: bool, slow: bool) -> None:
            key = f"mapped/{next(counter)}.bin"
            data = os.urandom(MiB if slow else 64 * 1024)
            headers = {}
            if form:
                target, method = "/upload", "POST"
                body, headers["Content-Type"] = multipart_body(
                    [
                        ("logic_bucket", "logi"),
                        ("path", "mapped"),
                        ("file", (key.rsplit("/", 1)[1], data, "application/octet-stream")),
                    ]
                )
            else:
                target, method, body = f"/files/logi/{key}", "PUT", data
            content: Any = body
            if slow:  # streamed over ~0.4 s: a mapping update comes while it is stored

                def pieces(body: bytes = body) -> Iterator[bytes]:
                    step = len(body) // 8 + 1
                    for offset in range(0, len(body), step):
                        time.sleep(0.05)
                        yield body[offset : offset + step]

                content = pieces()
            with gateway.client(ADMIN_TOKEN) as http:
                start = time.monotonic()
                response = http.request(method, target, content=content, headers=headers)
                end = time.monotonic()
            held = sorted(b for b in physical.values() if stored(client, b, key) is not None)
            answered = "?"
            if response.status_code == 200:
                answered = response.json()["uri"].removeprefix("s3://").split("/", 1)[0]
            with lock:
                records.append(
                    Request(
                        "form upload" if form else "raw upload",
                        start,
                        end,
                        response.status_code,
                        ",".join(held),
                        answered,
                    )
                )

        def download() -> None:
            with gateway.client(ADMIN_TOKEN) as http:
                start = time.monotonic()
                response = http.get("/files/logi/probe")
                end = time.monotonic()
            landed = by_content.get(response.content, "?")
            with lock:
                records.append(Request("download", start, end, response.status_code, landed))

        def flip() -> None:
            for i in range(UPDATES):
                time.sleep(0.15)
                target = physical["b" if i % 2 == 0 else "a"]
                sent = time.monotonic()
                response = gateway.admin.put(
                    "/gateway/bucket-mapping",
                    json={"enable_bucket_mapping": True, "bucket_map": {"logi": target}},
                )
                answered = time.monotonic()
                assert response.status_code == 200, response.text
                switches.append(Switch(sent, answered, target))

        flipper = threading.Thread(target=flip)
        flipper.start()
        uploads = [upload(form, slow) for form in (False, True) for slow in (False, True)]
        run_for(3.5, [*uploads, download, download, download, download])
        flipper.join(10)

    errors = [r for r in records if r.status != 200]
    misplaced = [
        r
        for r in records
        if r.bucket not in allowed_buckets(switches, physical["a"], r.start, r.end)
    ]
    misanswered = [r for r in records if r.kind != "download" and r.answered != r.bucket]
    per_bucket = {b: sum(1 for r in records if r.bucket == b) for b in physical.values()}
    report(
        f"mapping updates under load: {len(switches)} updates, {len(records)} requests "
        f"({sum(1 for r in records if r.kind != 'download')} uploads), "
        f"statuses {sorted({r.status for r in records})}, per physical bucket "
        f"{list(per_bucket.values())}, stored or read outside the mapping in force "
        f"{len(misplaced)}, uploads answered with another bucket than they were stored in "
        f"{len(misanswered)}"
    )
    for r in misanswered[:4]:
        around = [
            f"to {s.target} sent at +{s.sent - r.start:.3f} s, "
            f"answered at +{s.answered - r.start:.3f} s"
            for s in switches
            if s.sent <= r.end and s.answered >= r.start
        ]
        report(
            f"  {r.kind} stored in {r.bucket}, answered s3://{r.answered}/..., taking "
            f"{r.end - r.start:.3f} s; updates meanwhile: {around}"
        )
    assert len(switches) == UPDATES
    assert errors == [], errors[:5]
    assert misplaced == [], misplaced[:5]
    assert all(count > 0 for count in per_bucket.values()), per_bucket
    assert misanswered == [], misanswered[:5]


def _stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
