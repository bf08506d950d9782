"""Behaviour of refstore.urlfetch against real local HTTP(S) servers."""

from __future__ import annotations

import ipaddress
import json
import select
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from refstore import urlfetch
from refstore.errors import (
    InvalidInputError,
    ObjectTooLargeError,
    SourceError,
    UnsafeURLError,
)
from refstore.urlfetch import check_url, is_public_address, open_url

# A test-only CA and a certificate for "pinned.test" signed by it (P-256,
# valid 2020-2120), so the HTTPS tests need no certificate tooling.
CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBfDCCASKgAwIBAgIULjaZKoGKHoFJ5ZUGOorufvAVTogwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcmVmc3RvcmUgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowGzEZMBcGA1UEAwwQcmVmc3RvcmUgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABGTmSUa/9HyCChIuPX1MGeCyla1DIvuz5HKr
aPsP8RPz6ZvOs3i+kigoISVFNDmW90Bog/N74paL63/EmnDPRuujQjBAMA8GA1Ud
EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBQy+mGXHcMblC9d
Nx58z0FcA8iQ+zAKBggqhkjOPQQDAgNIADBFAiEA3UCwQYUlLOSflQNWg/Zl6oYo
nlhBLYPuK5lRbGiX/BICIGAaXsaKRU71UoNLhPK/rxwu3u40vvls9zZt2WnLjQAY
-----END CERTIFICATE-----
"""
LEAF_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBxTCCAWqgAwIBAgIUUjN33aiKVgtfU/HTox9OLI7N89wwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcmVmc3RvcmUgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowFjEUMBIGA1UEAwwLcGlubmVkLnRlc3QwWTATBgcqhkjO
PQIBBggqhkjOPQMBBwNCAAROZKt/NE0x/+DHnipcP3AlKx+dOxg35DsYu84X7QFx
pOKGoEs7dr/chJjMhaArOHi0LAsI2nGbv9b7f3oQt+UOo4GOMIGLMAwGA1UdEwEB
/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMBYGA1Ud
EQQPMA2CC3Bpbm5lZC50ZXN0MB0GA1UdDgQWBBTcPg7f6CTMlRSDKLFGV+RQsQ5W
ujAfBgNVHSMEGDAWgBQy+mGXHcMblC9dNx58z0FcA8iQ+zAKBggqhkjOPQQDAgNJ
ADBGAiEA1S/gs+AyDt12z5ImxG8yLT78SssdPYR7/FVDtd9fNEcCIQC1iufw677I
d4+hItHmbYd9tzwWX2zMVgluV4SMlqAaHw==
-----END CERTIFICATE-----
"""
LEAF_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgW/p8x1B4b3Gktnis
PqDNMJdDEv8kTX8VeM42iYQM6qqhRANCAAROZKt/NE0x/+DHnipcP3AlKx+dOxg3
5DsYu84X7QFxpOKGoEs7dr/chJjMhaArOHi0LAsI2nGbv9b7f3oQt+UO
-----END PRIVATE KEY-----
"""

HANDLER_TIME_LIMIT = 15.0


def payload(size: int) -> bytes:
    """Deterministic, non-repeating-at-power-of-two body of ``size`` bytes."""
    pattern = bytes(range(251))
    return (pattern * (size // len(pattern) + 1))[:size]


class LocalServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that records requests and joins its handlers on close."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, host: str, port: int = 0) -> None:
        super().__init__((host, port), Handler)
        self.host = host
        self.requests: list[tuple[str, str]] = []
        self.handler_errors: list[BaseException] = []
        self.sni_names: list[str | None] = []
        self.stream_finished = threading.Event()
        self.stream_aborted = threading.Event()
        self.scheme = "http"
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def record(self, path: str, host: str) -> None:
        with self._lock:
            self.requests.append((path, host))

    def enable_tls(self, tmp_path: Path) -> None:
        cert = tmp_path / "leaf.pem"
        key = tmp_path / "leaf.key"
        cert.write_text(LEAF_PEM)
        key.write_text(LEAF_KEY_PEM)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = self._remember_sni
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https"

    def _remember_sni(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.sni_names.append(name)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            self.handler_errors.append(exc)

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.record(self.path, self.headers.get("Host", ""))
        parts = urlsplit(self.path)
        route, _, arg = parts.path.lstrip("/").partition("/")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        getattr(self, f"route_{route.replace('-', '_')}", self.route_missing)(arg, query)

    def send_body(self, body: bytes, status: int = 200, content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_missing(self, arg: str, query: dict[str, str]) -> None:
        self.send_body(b"no such route", 404)

    def route_bytes(self, arg: str, query: dict[str, str]) -> None:
        self.send_body(payload(int(arg)))

    def route_files(self, arg: str, query: dict[str, str]) -> None:
        self.send_body(b"file body", content_type="text/plain; charset=utf-8")

    def route_echo_host(self, arg: str, query: dict[str, str]) -> None:
        self.send_body(self.headers.get("Host", "").encode())

    def route_status(self, arg: str, query: dict[str, str]) -> None:
        self.send_body(b"status body", int(arg))

    def route_redirect(self, arg: str, query: dict[str, str]) -> None:
        hops = int(arg)
        if hops == 0:
            self.send_body(b"landed")
            return
        self.send_response(int(query.get("status", "302")))
        self.send_header("Location", f"/redirect/{hops - 1}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_to(self, arg: str, query: dict[str, str]) -> None:
        self.send_response(int(query.get("status", "302")))
        if "url" in query:
            self.send_header("Location", query["url"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_chunked(self, arg: str, query: dict[str, str]) -> None:
        """Chunked body of ``arg`` bytes, without Content-Length."""
        body = payload(int(arg))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, ssl.SSLError):
            self.server.stream_aborted.set()
            self.close_connection = True
            return
        self.server.stream_finished.set()

    def route_declared(self, arg: str, query: dict[str, str]) -> None:
        """Announce ``arg`` bytes of body, send none, wait for the client to leave."""
        self.send_response(200)
        self.send_header("Content-Length", arg)
        self.end_headers()
        self.wfile.flush()
        self.wait_for_client_to_leave()

    def route_short(self, arg: str, query: dict[str, str]) -> None:
        """Announce 100 bytes, send 10, close."""
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(payload(10))
        self.close_connection = True

    def route_slow(self, arg: str, query: dict[str, str]) -> None:
        """Endless chunked body trickling one byte every 20 ms."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        until = time.monotonic() + HANDLER_TIME_LIMIT
        try:
            while time.monotonic() < until:
                self.wfile.write(b"1\r\nx\r\n")
                self.wfile.flush()
                time.sleep(0.02)
        except (ConnectionError, ssl.SSLError):
            return

    def route_stall(self, arg: str, query: dict[str, str]) -> None:
        """Never answer; wait for the client to leave."""
        self.close_connection = True
        self.wait_for_client_to_leave()

    def wait_for_client_to_leave(self) -> None:
        self.close_connection = True
        select.select([self.connection], [], [], HANDLER_TIME_LIMIT)


def start_server(host: str, port: int = 0) -> LocalServer:
    return LocalServer(host, port).start()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = start_server("127.0.0.1")
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.handler_errors == []


@pytest.fixture
def second_server() -> Iterator[LocalServer]:
    """A server on 127.0.0.2: a different address of this same machine."""
    srv = start_server("127.0.0.2")
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.handler_errors == []


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """An HTTPS server for ``pinned.test`` on 127.0.0.1, trusted through the test CA."""
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM)
    monkeypatch.setattr(urlfetch, "_ca_bundle", lambda: str(ca))
    srv = LocalServer("127.0.0.1")
    srv.enable_tls(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.handler_errors == []


class RecordingResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.table[host]


def only(*allowed: str) -> Callable[[urlfetch.IPAddress], bool]:
    addresses = {ipaddress.ip_address(a) for a in allowed}
    return lambda addr: addr in addresses


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- streaming --------------------------------------------------------------------------


def test_streaming_read_returns_the_exact_bytes(server: LocalServer) -> None:
    size = 3_000_017
    with open_url(f"{server.base}/bytes/{size}", chunk_size=65536) as source:
        assert source.length == size
        assert source.content_type == "application/octet-stream"
        head = source.read(10)
        chunks = list(source.iter_chunks())
        assert source.read() == b""
    assert head + b"".join(chunks) == payload(size)
    assert all(0 < len(chunk) <= 65536 for chunk in chunks)
    assert len(chunks) == -(-(size - 10) // 65536)


def test_read_with_size_returns_exactly_that_many_bytes_until_the_end(server: LocalServer) -> None:
    with open_url(f"{server.base}/chunked/1000", chunk_size=64) as source:
        assert source.length is None
        assert source.read(300) == payload(1000)[:300]
        assert source.read(0) == b""
        assert source.read(-1) == payload(1000)[300:]
        assert source.read(5) == b""
        assert source.bytes_read == 1000


def test_empty_body_reads_as_empty(server: LocalServer) -> None:
    with open_url(f"{server.base}/bytes/0") as source:
        assert source.length == 0
        assert source.read() == b""


def test_metadata_comes_from_the_final_response(server: LocalServer) -> None:
    url = f"{server.base}/to?url=/files/report%2520v1.txt"
    with open_url(url) as source:
        assert source.final_url == f"{server.base}/files/report%20v1.txt"
        assert source.filename == "report v1.txt"
        assert source.content_type == "text/plain; charset=utf-8"
        assert source.status == 200
        assert source.read() == b"file body"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/files/", "downloaded_file"),
        ("/files/..%2F..%2Fsecret.txt", "secret.txt"),
        ("/files/a%5Cb.bin", "b.bin"),
        ("/files/%2E%2E", "downloaded_file"),
        ("/files/data.csv?version=2", "data.csv"),
    ],
)
def test_filename_is_the_decoded_last_path_segment(
    server: LocalServer, path: str, expected: str
) -> None:
    with open_url(server.base + path) as source:
        assert source.filename == expected


def test_reading_a_closed_source_raises_source_error(server: LocalServer) -> None:
    source = open_url(f"{server.base}/bytes/10")
    with source:
        assert source.read(1) == payload(1)
    assert source.closed
    source.close()
    with pytest.raises(SourceError):
        source.read()


def test_truncated_body_raises_source_error(server: LocalServer) -> None:
    with open_url(f"{server.base}/short") as source, pytest.raises(SourceError) as info:
        source.read()
    assert info.value.__cause__ is not None
    assert source.closed


# -- size cap ---------------------------------------------------------------------------


def test_content_length_over_the_cap_is_refused_before_reading_the_body(
    server: LocalServer,
) -> None:
    # /declared never sends its body: reading it would time out instead.
    started = time.monotonic()
    with pytest.raises(ObjectTooLargeError) as info:
        open_url(f"{server.base}/declared/1000000000", max_bytes=1000, timeout=5)
    assert time.monotonic() - started < 4
    assert info.value.context["length"] == 1_000_000_000
    assert info.value.context["limit"] == 1000


def test_body_exactly_at_the_cap_is_accepted(server: LocalServer) -> None:
    with open_url(f"{server.base}/bytes/1000", max_bytes=1000) as source:
        assert source.read() == payload(1000)
    with open_url(f"{server.base}/chunked/1000", max_bytes=1000) as source:
        assert source.read() == payload(1000)


def test_chunked_body_one_byte_over_the_cap_is_refused(server: LocalServer) -> None:
    with open_url(f"{server.base}/chunked/1001", max_bytes=1000) as source:
        assert source.length is None
        with pytest.raises(ObjectTooLargeError):
            source.read()
        assert source.closed


def test_streaming_cap_stops_a_large_body_without_reading_it_all(server: LocalServer) -> None:
    cap = 1024 * 1024
    received = 0
    with open_url(f"{server.base}/chunked/{64 * cap}", max_bytes=cap, chunk_size=65536) as source:
        assert source.length is None
        with pytest.raises(ObjectTooLargeError) as info:
            for chunk in source.iter_chunks():
                received += len(chunk)
        assert source.closed
    assert received <= cap
    assert source.bytes_read == cap + 1
    assert info.value.context["limit"] == cap
    assert server.stream_aborted.wait(10)
    assert not server.stream_finished.is_set()


# -- redirects and status ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_is_followed(server: LocalServer, status: int) -> None:
    with open_url(f"{server.base}/redirect/2?status={status}") as source:
        assert source.read() == b"landed"
        assert source.final_url == f"{server.base}/redirect/0"


def test_redirect_chain_within_the_limit_is_followed(server: LocalServer) -> None:
    with open_url(f"{server.base}/redirect/3", max_redirects=3) as source:
        assert source.read() == b"landed"
    assert [path for path, _ in server.requests] == [f"/redirect/{n}" for n in (3, 2, 1, 0)]


def test_redirect_chain_longer_than_the_limit_raises_source_error(server: LocalServer) -> None:
    with pytest.raises(SourceError) as info:
        open_url(f"{server.base}/redirect/4", max_redirects=3)
    assert info.value.context["max_redirects"] == 3
    assert [path for path, _ in server.requests] == [f"/redirect/{n}" for n in (4, 3, 2, 1)]


def test_zero_max_redirects_refuses_any_redirect(server: LocalServer) -> None:
    with pytest.raises(SourceError):
        open_url(f"{server.base}/redirect/1", max_redirects=0)


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/_x"]
)
def test_redirect_to_a_non_http_scheme_is_refused(server: LocalServer, location: str) -> None:
    with pytest.raises(UnsafeURLError):
        open_url(f"{server.base}/to?url={location}")


def test_redirect_without_location_is_a_source_error(server: LocalServer) -> None:
    with pytest.raises(SourceError) as info:
        open_url(f"{server.base}/to?status=302")
    assert info.value.context["status"] == 302


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_non_2xx_final_status_raises_source_error_with_the_status(
    server: LocalServer, status: int
) -> None:
    with pytest.raises(SourceError) as info:
        open_url(f"{server.base}/status/{status}")
    assert info.value.context["status"] == status
    assert str(status) in str(info.value)


# -- timeouts, deadline, network errors ------------------------------------------------


def test_deadline_stops_an_endless_slow_body(server: LocalServer) -> None:
    started = time.monotonic()
    with open_url(f"{server.base}/slow", timeout=5, deadline=0.5) as source:
        with pytest.raises(SourceError, match="deadline") as info:
            for _ in source.iter_chunks():
                pass
        assert source.closed
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3
    assert info.value.context["deadline"] == 0.5


def test_deadline_covers_waiting_for_the_response_headers(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match="deadline"):
        open_url(f"{server.base}/stall", timeout=5, deadline=0.3)
    assert time.monotonic() - started < 3


def test_deadline_spans_redirect_hops(server: LocalServer) -> None:
    url = f"{server.base}/to?url=/stall"
    started = time.monotonic()
    with pytest.raises(SourceError, match="deadline"):
        open_url(url, timeout=5, deadline=0.3)
    assert time.monotonic() - started < 3
    assert [path for path, _ in server.requests] == ["/to?url=/stall", "/stall"]


def test_read_timeout_raises_source_error_with_the_cause(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_url(f"{server.base}/stall", timeout=0.3)
    assert time.monotonic() - started < 3
    assert info.value.__cause__ is not None
    assert "deadline" not in str(info.value)


def test_refused_connection_raises_source_error_with_the_cause() -> None:
    with pytest.raises(SourceError) as info:
        open_url(f"http://127.0.0.1:{closed_port()}/")
    assert info.value.__cause__ is not None


def test_unresolvable_host_raises_source_error() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(SourceError) as info:
        open_url("http://nowhere.test/", resolver=fail)
    assert isinstance(info.value.__cause__, socket.gaierror)


class HangingResolver:
    """A resolver that answers only when released, as a DNS server that never replies."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        self.called.set()
        self.release.wait(HANDLER_TIME_LIMIT)
        return ["127.0.0.1"]


@pytest.fixture
def hanging_resolver() -> Iterator[HangingResolver]:
    resolver = HangingResolver()
    try:
        yield resolver
    finally:
        resolver.release.set()


def test_deadline_covers_a_resolver_that_hangs(hanging_resolver: HangingResolver) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"deadline of 0\.3s exceeded") as info:
        open_url("http://hangs.test/", timeout=5, deadline=0.3, resolver=hanging_resolver)
    elapsed = time.monotonic() - started
    assert hanging_resolver.called.is_set()
    assert 0.3 <= elapsed < 1.3
    assert info.value.context["deadline"] == 0.3
    assert info.value.context["url"] == "http://hangs.test/"


def test_deadline_covers_resolving_a_redirect_hop(
    server: LocalServer, hanging_resolver: HangingResolver
) -> None:
    url = f"{server.base}/to?url=http://hangs.test:{server.port}/bytes/1"
    started = time.monotonic()
    with pytest.raises(SourceError, match="deadline"):
        open_url(url, timeout=5, deadline=0.3, resolver=hanging_resolver)
    assert time.monotonic() - started < 1.3
    assert hanging_resolver.called.is_set()


SILENT_DNS_CHILD = """
import json, socket, sys, threading, time
from refstore import RefStore, SourceError

dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))
queries = []
threading.Thread(target=lambda: [queries.append(dns.recv(4096)) for _ in iter(int, 1)],
                 daemon=True).start()
with RefStore({"local": {"root": sys.argv[1]}}) as store:
    store.init_buckets()
    started = time.monotonic()
    try:
        store.upload_from_url("http://never-answered.example/f.bin", deadline=0.5)
    except SourceError as exc:
        error = {"type": type(exc).__name__, "message": str(exc), "context": exc.context}
    else:
        error = None
    elapsed = time.monotonic() - started
print(json.dumps({"elapsed": elapsed, "error": error, "queries": len(queries)}))
"""


def test_upload_from_url_deadline_covers_a_dns_server_that_never_answers(
    tmp_path: Path,
) -> None:
    """The real system resolver, pointed at a DNS server on 127.0.0.1 that reads and never
    replies (a private mount and network namespace give the child its own resolv.conf)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")
    script = (
        f"ip link set lo up && mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf"
        f" && exec {shlex.quote(sys.executable)} -c {shlex.quote(SILENT_DNS_CHILD)}"
        f" {shlex.quote(str(tmp_path / 'store'))}"
    )
    child = subprocess.run(
        ["unshare", "--mount", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["queries"] >= 1
    assert result["error"] is not None
    assert result["error"]["type"] == "SourceError"
    assert "deadline of 0.5s exceeded" in result["error"]["message"]
    assert result["error"]["context"]["deadline"] == 0.5
    assert 0.5 <= result["elapsed"] < 1.5


def test_resolver_errors_within_the_deadline_keep_their_cause() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(SourceError, match=r"could not resolve host 'nowhere\.test'") as info:
        open_url("http://nowhere.test/", deadline=5, resolver=fail)
    assert isinstance(info.value.__cause__, socket.gaierror)
    assert "deadline" not in str(info.value)


def test_next_resolved_address_is_tried_when_one_refuses(server: LocalServer) -> None:
    resolver = RecordingResolver({"two.test": ["127.0.0.3", "127.0.0.1"]})
    # 127.0.0.3 has no listener on this port; 127.0.0.1 has.
    with open_url(f"http://two.test:{server.port}/bytes/5", resolver=resolver) as source:
        assert source.read() == payload(5)


# -- URL validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "//example.com/relative",
        "http:///no-host",
        "http://user:secret@127.0.0.1/",
        "http://:secret@127.0.0.1/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://exa mple.com/",
        "http://example.com\r\nX-Injected: 1/",
        "http://[fe80::1%25eth0]/",
        "http://127.0.0.1\\@example.com/",
    ],
)
def test_unsafe_or_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        open_url(url)
    assert "secret" not in str(info.value)
    assert "secret" not in repr(info.value.context)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"deadline": 0},
        {"max_bytes": -1},
        {"max_redirects": -1},
        {"chunk_size": 0},
    ],
)
def test_out_of_range_arguments_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        open_url("http://127.0.0.1/", **kwargs)  # type: ignore[arg-type]


# -- address policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "::",
        "::1",
        "::127.0.0.1",
        "fc00::1",
        "fd12:3456:789a::1",
        "fe80::1",
        "fe80::1%1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0:8.8.8.8",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::c0a8:101",
        "64:ff9b:1::808:808",
        "2002:7f00:1::1",
        "2002:c0a8:101::1",
        "2002:a00:1::",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001::1",
        "not-an-address",
        "",
    ],
)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert is_public_address(address) is False


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(address) is True
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "127.0.0.1.",
        "0x7f.1.",
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ],
)
def test_block_private_refuses_loopback_in_every_spelling(server: LocalServer, host: str) -> None:
    with pytest.raises(UnsafeURLError):
        open_url(f"http://{host}:{server.port}/bytes/1", block_private=True)
    assert server.requests == []


def test_ip_literal_hosts_are_judged_without_asking_the_resolver(server: LocalServer) -> None:
    resolver = RecordingResolver({})
    for host in ("2130706433", "0x7f.1", "127.0.0.1.", "\uff11\uff12\uff17.0.0.1", "[::1]"):
        with pytest.raises(UnsafeURLError):
            open_url(f"http://{host}:{server.port}/", block_private=True, resolver=resolver)
    assert resolver.calls == []
    assert server.requests == []


@pytest.mark.parametrize(
    "addresses", [["8.8.8.8", "10.0.0.1"], ["10.0.0.1", "8.8.8.8"], ["2606:4700::1", "::1"]]
)
def test_host_resolving_to_any_private_address_is_refused(addresses: list[str]) -> None:
    resolver = RecordingResolver({"mixed.test": addresses})
    with pytest.raises(UnsafeURLError) as info:
        open_url("http://mixed.test/", block_private=True, resolver=resolver)
    assert info.value.context["address"] in {"10.0.0.1", "::1"}
    assert resolver.calls == [("mixed.test", 80)]


def test_without_block_private_local_addresses_are_fetched(server: LocalServer) -> None:
    with open_url(f"http://localhost:{server.port}/bytes/3") as source:
        assert source.read() == payload(3)


def test_check_url_returns_the_checked_addresses() -> None:
    resolver = RecordingResolver({"public.test": ["8.8.8.8", "2606:4700:4700::1111", "8.8.8.8"]})
    addresses = check_url("https://public.test/x", block_private=True, resolver=resolver)
    assert addresses == ["8.8.8.8", "2606:4700:4700::1111"]
    assert resolver.calls == [("public.test", 443)]
    with pytest.raises(UnsafeURLError):
        check_url("http://127.0.0.1/", block_private=True)
    assert check_url("http://127.0.0.1/", block_private=False) == ["127.0.0.1"]


def test_international_hostnames_reach_the_resolver_in_ascii_form() -> None:
    resolver = RecordingResolver({"xn--bcher-kva.example": ["8.8.8.8"]})
    assert check_url("http://B\u00fccher.example/", block_private=True, resolver=resolver) == [
        "8.8.8.8"
    ]
    assert resolver.calls == [("xn--bcher-kva.example", 80)]


def test_redirect_to_a_private_address_is_refused(server: LocalServer) -> None:
    resolver = RecordingResolver({"public.test": ["127.0.0.1"]})
    start = f"http://public.test:{server.port}/to?url=http://10.0.0.1:{server.port}/"
    with pytest.raises(UnsafeURLError) as info:
        open_url(start, resolver=resolver, allow_address=only("127.0.0.1", "8.8.8.8"))
    assert info.value.context["address"] == "10.0.0.1"
    assert len(server.requests) == 1


def test_redirect_hop_to_a_refused_address_is_stopped_before_connecting(
    server: LocalServer, second_server: LocalServer
) -> None:
    target = f"http://127.0.0.2:{second_server.port}/bytes/5"
    with pytest.raises(UnsafeURLError) as info:
        open_url(f"{server.base}/to?url={target}", allow_address=only("127.0.0.1"))
    assert info.value.context["address"] == "127.0.0.2"
    assert [path for path, _ in server.requests] == [f"/to?url={target}"]
    assert second_server.requests == []


def test_redirect_hop_to_an_allowed_address_is_followed(
    server: LocalServer, second_server: LocalServer
) -> None:
    target = f"http://127.0.0.2:{second_server.port}/bytes/5"
    policy = only("127.0.0.1", "127.0.0.2")
    with open_url(f"{server.base}/to?url={target}", allow_address=policy) as source:
        assert source.read() == payload(5)
    assert [path for path, _ in second_server.requests] == ["/bytes/5"]


def test_redirect_hop_hostname_is_resolved_and_checked(
    server: LocalServer, second_server: LocalServer
) -> None:
    resolver = RecordingResolver({"inside.test": ["127.0.0.2"]})
    target = f"http://inside.test:{second_server.port}/bytes/5"
    with pytest.raises(UnsafeURLError):
        open_url(
            f"{server.base}/to?url={target}", resolver=resolver, allow_address=only("127.0.0.1")
        )
    assert resolver.calls == [("inside.test", second_server.port)]
    assert second_server.requests == []


def test_connection_goes_to_the_checked_address_with_the_original_host_header(
    server: LocalServer,
) -> None:
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    calls: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return next(answers)

    url = f"http://rebind.test:{server.port}/echo-host"
    with open_url(url, resolver=rebinding, allow_address=only("127.0.0.1")) as source:
        assert source.read() == f"rebind.test:{server.port}".encode()
    assert calls == [("rebind.test", server.port)]
    assert server.requests == [("/echo-host", f"rebind.test:{server.port}")]


# -- HTTPS ------------------------------------------------------------------------------


def test_https_connects_to_the_checked_address_and_verifies_the_original_hostname(
    tls_server: LocalServer,
) -> None:
    resolver = RecordingResolver({"pinned.test": ["127.0.0.1"]})
    url = f"https://pinned.test:{tls_server.port}/echo-host"
    with open_url(url, resolver=resolver) as source:
        assert source.read() == f"pinned.test:{tls_server.port}".encode()
    assert tls_server.sni_names == ["pinned.test"]
    assert resolver.calls == [("pinned.test", tls_server.port)]


def test_https_certificate_for_another_name_is_rejected(tls_server: LocalServer) -> None:
    resolver = RecordingResolver({"other.test": ["127.0.0.1"]})
    with pytest.raises(SourceError) as info:
        open_url(f"https://other.test:{tls_server.port}/bytes/1", resolver=resolver)
    assert info.value.__cause__ is not None
    assert tls_server.requests == []


def test_https_with_an_untrusted_certificate_is_rejected(
    tls_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(urlfetch, "_ca_bundle", lambda: None)
    resolver = RecordingResolver({"pinned.test": ["127.0.0.1"]})
    with pytest.raises(SourceError):
        open_url(f"https://pinned.test:{tls_server.port}/bytes/1", resolver=resolver)
    assert tls_server.requests == []
