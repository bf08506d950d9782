"""/docs and /redoc render their operations with no network but the gateway's.

Each page is opened in Debian's headless Chromium, driven over the DevTools protocol,
inside a network namespace of its own that has only a loopback interface: the gateway
runs there too, and a CDN could not be reached even if the page asked for one. The
rendered DOM must show operation paths, which only the scripts can put there, and every
request the page made must have gone to the gateway. The stock FastAPI pages (assets
from a CDN) over the same OpenAPI document, in the same kind of namespace, render none:
the check can fail.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import podman
import pytest
import yaml

# Paths of operations the gateway declares; the page HTML itself names none of them.
OPERATION_PATHS = ("/upload", "/files/{bucket}/{key}", "/gateway/bucket-mapping")
RENDER_TIMEOUT = 30.0
# data: and blob: URLs (ReDoc's icons and search worker) are made inside the page.
IN_PAGE_SCHEMES = ("data", "blob")
QUIET = 1.0  # seconds without a request open before a page counts as loaded
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)
# Chromium reads DevTools messages from fd 3 and writes its answers to fd 4.
PIPE_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.closerange(5, 1024); os.execvp(sys.argv[3], sys.argv[3:])"
)
HOW_TO_GET_CHROMIUM = "install it with `apt-get install -y chromium` (scripts/test does this)"

_ns_counter = itertools.count()


def chromium_binary() -> str:
    """Debian's Chromium, or a test failure that says how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(f"chromium not found; {HOW_TO_GET_CHROMIUM}", pytrace=False)
    return found


HOST_ADDRESS = "198.18.255.1"  # the benchmarking range (RFC 2544), never routed


class IsolatedNetwork:
    """A network namespace with nothing but ``lo``; processes started in it reach only
    each other, at 127.0.0.1 or :data:`HOST_ADDRESS`."""

    def __init__(self) -> None:
        self.name = f"rs-docs-{os.getpid()}-{next(_ns_counter)}"
        self.path = f"/run/netns/{self.name}"
        self._processes: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def remove_stale() -> None:
        """Remove the namespaces of earlier runs whose process is gone (killed runs)."""
        for entry in Path("/run/netns").glob("rs-docs-*-*"):
            try:
                os.kill(int(entry.name.split("-")[2]), 0)
            except ProcessLookupError:
                subprocess.run(["ip", "netns", "del", entry.name], capture_output=True)
            except (ValueError, PermissionError):
                pass

    def __enter__(self) -> IsolatedNetwork:
        if shutil.which("ip") is None:
            pytest.fail("`ip` not found; install iproute2 (apt-get install -y iproute2)")
        self.remove_stale()
        made = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.fail(
                f"cannot make a network namespace (needs root and iproute2): {made.stderr}",
                pytrace=False,
            )
        self.run(["ip", "link", "set", "lo", "up"])
        # A host address besides 127.0.0.1, so pages see an ordinary origin (scripts treat
        # localhost specially); on lo it reaches nothing outside the namespace.
        self.run(["ip", "addr", "add", f"{HOST_ADDRESS}/32", "dev", "lo"])
        links = self.run(["ip", "-o", "link", "show"]).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        return self

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv), capture_output=True, text=True, check=True, **kwargs)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(self.argv(argv), **kwargs)
        self._processes.append(process)
        return process

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Wait until ``url`` answers 200 from inside the namespace."""
        probe = textwrap.dedent(
            f"""
            import time, urllib.request
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
            deadline = time.monotonic() + {timeout}
            while True:
                try:
                    with opener.open({url!r}, timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            """
        )
        self.run([sys.executable, "-c", probe], timeout=timeout + 10)

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


@dataclass
class Page:
    """What a page became: its DOM, and the requests it made."""

    html: str
    requests: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def shows(self, *texts: str) -> bool:
        return all(text in self.html for text in texts)


class Chromium:
    """Headless Chromium in a namespace, spoken to over ``--remote-debugging-pipe``
    (JSON messages separated by NUL on file descriptors 3 and 4)."""

    def __init__(self, network: IsolatedNetwork) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="refstore-chromium-"))
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        argv = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}"]
        self._log = (self._profile.parent / f"{self._profile.name}.log").open("wb")
        self.process = network.popen(
            [sys.executable, "-c", PIPE_TRAMPOLINE, str(to_browser_r), str(from_browser_w), *argv],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def _pump(self, deadline: float, until_answer: int | None = None) -> dict[str, Any] | None:
        """Read messages until the answer to ``until_answer`` (returned) or ``deadline``;
        events are kept in :attr:`events`."""
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message: dict[str, Any] = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                elif message["id"] == until_answer:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                if until_answer is None:
                    return None
                raise TimeoutError(f"no answer from Chromium; log:\n{self.log()}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise ConnectionError(f"Chromium closed the pipe; log:\n{self.log()}")
                self._buffer += chunk

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Call a DevTools method and return its result; events met meanwhile are kept."""
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = self._pump(time.monotonic() + 30, until_answer=call_id)
        assert answer is not None
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    def _network(self, session: str) -> tuple[list[str], list[str], set[str]]:
        """(URLs requested, failures, requests still open) of a page so far."""
        urls: list[str] = []
        failures: list[str] = []
        pending: set[str] = set()
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                urls.append(params["request"]["url"])
                if urlsplit(params["request"]["url"]).scheme not in IN_PAGE_SCHEMES:
                    pending.add(params["requestId"])
            elif method == "Network.loadingFinished":
                pending.discard(params["requestId"])
            elif method == "Network.loadingFailed":
                failures.append(params.get("errorText", ""))
                pending.discard(params["requestId"])
        return urls, failures, pending

    def open(self, url: str, until: tuple[str, ...], timeout: float = RENDER_TIMEOUT) -> Page:
        """Load ``url``, wait until its DOM shows all of ``until`` (at most ``timeout``),
        then until the page has had no request open for a second."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.send("Network.enable", session=session)
        self.send("Page.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + timeout
        while True:
            html = self.send(
                "Runtime.evaluate",
                {"expression": "document.documentElement.outerHTML", "returnByValue": True},
                session=session,
            )["result"].get("value", "")
            page = Page(html)
            if page.shows(*until) or time.monotonic() > deadline:
                break
            self._pump(time.monotonic() + 0.25)
        quiet_since = time.monotonic()
        seen = -1
        while time.monotonic() < deadline + QUIET:
            urls, _, pending = self._network(session)
            if pending or len(urls) != seen:
                seen, quiet_since = len(urls), time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET:
                break
            self._pump(time.monotonic() + 0.1)
        page.requests, page.failures, _ = self._network(session)
        self.send("Target.closeTarget", {"targetId": target})
        self.events.clear()
        return page

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
        shutil.rmtree(self._profile, ignore_errors=True)


@contextlib.contextmanager
def browser_in(network: IsolatedNetwork) -> Iterator[Chromium]:
    browser = Chromium(network)
    try:
        yield browser
    finally:
        browser.close()


GATEWAY_PORT = 8000
STOCK_PORT = 8001
ORIGIN = f"http://{HOST_ADDRESS}:{GATEWAY_PORT}"

# The stock FastAPI pages (Swagger UI and ReDoc from a CDN) over the gateway's own
# OpenAPI document: the negative control.
STOCK_APP = textwrap.dedent(
    """
    import sys, tempfile
    import uvicorn
    from fastapi import FastAPI
    from refstore.web.app import create_app
    from refstore.web.settings import GatewaySettings

    settings = GatewaySettings(local={"root": tempfile.mkdtemp()}, auth={"mode": "none"})
    app = FastAPI(title="stock pages")
    app.openapi_schema = create_app(settings).openapi()
    uvicorn.run(app, host=sys.argv[1], port=int(sys.argv[2]), log_level="warning")
    """
)


@dataclass
class DocsHost:
    network: IsolatedNetwork
    browser: Chromium


@pytest.fixture(scope="module")
def gateway_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsHost]:
    """The gateway (``refstore serve``) and Chromium in one namespace with only ``lo``."""
    chromium_binary()
    workdir = tmp_path_factory.mktemp("docs-gateway")
    config = workdir / "gateway.yaml"
    config.write_text(
        yaml.safe_dump({"local": {"root": str(workdir / "data")}, "auth": {"mode": "none"}})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}
    with IsolatedNetwork() as network:
        log = (workdir / "gateway.log").open("wb")
        serve = [sys.executable, "-m", "refstore.cli", "serve", "--host", HOST_ADDRESS]
        gateway = network.popen(
            [*serve, "--port", str(GATEWAY_PORT), "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        stock = network.popen(
            [sys.executable, "-c", STOCK_APP, HOST_ADDRESS, str(STOCK_PORT)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            network.wait_http(f"{ORIGIN}/health")
            network.wait_http(f"http://{HOST_ADDRESS}:{STOCK_PORT}/openapi.json")
        except subprocess.CalledProcessError:
            log.close()
            codes = (gateway.poll(), stock.poll())
            pytest.fail(f"servers did not start {codes}:\n{(workdir / 'gateway.log').read_text()}")
        with browser_in(network) as browser:
            yield DocsHost(network, browser)
        log.close()


def assert_rendered_offline(page: Page, origin: str) -> None:
    assert page.shows(*OPERATION_PATHS), f"operations not rendered:\n{page.html[:3000]}"
    fetched = [url for url in page.requests if urlsplit(url).scheme not in IN_PAGE_SCHEMES]
    foreign = [url for url in fetched if not url.startswith(origin + "/")]
    assert not foreign, f"the page asked for other hosts: {foreign}"
    assert not page.failures, f"failed requests: {page.failures} of {page.requests}"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_renders_operations_with_only_the_gateway_reachable(
    gateway_host: DocsHost, path: str
) -> None:
    page = gateway_host.browser.open(ORIGIN + path, until=OPERATION_PATHS)
    assert_rendered_offline(page, ORIGIN)
    assert f"{ORIGIN}/openapi.json" in page.requests
    assert any(urlsplit(url).path.startswith("/docs/assets/") for url in page.requests)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_stock_cdn_page_renders_nothing_in_the_same_namespace(
    gateway_host: DocsHost, path: str
) -> None:
    origin = f"http://{HOST_ADDRESS}:{STOCK_PORT}"
    page = gateway_host.browser.open(origin + path, until=OPERATION_PATHS, timeout=5)
    assert not any(page.shows(p) for p in OPERATION_PATHS), "the CDN page rendered operations"
    cdn = [url for url in page.requests if urlsplit(url).hostname != HOST_ADDRESS]
    assert cdn, f"the stock page asked no CDN: {page.requests}"
    assert page.failures, "requests to the CDN did not fail"


def test_docs_render_offline_from_the_image(tmp_path: Path) -> None:
    """The image's gateway, in a namespace with only ``lo`` (podman --network ns:...)."""
    chromium_binary()
    engine = podman.require_podman()
    image = podman.require_image()
    with IsolatedNetwork() as network:
        container = podman.Container(
            engine,
            image,
            ["--network", f"ns:{network.path}", "-e", "REFSTORE_AUTH__MODE=none"],
        )
        with container:
            network.wait_http(f"{ORIGIN}/health")
            with browser_in(network) as browser:
                for path in ("/docs", "/redoc"):
                    page = browser.open(ORIGIN + path, until=OPERATION_PATHS)
                    assert_rendered_offline(page, ORIGIN)
