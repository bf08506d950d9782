"""The fast object routes (``refstore.web.fast_routes``): each request they serve is
answered by them, exactly as the declared route answers it; every other request goes on
to the declared routes. In process on the local backend; the route that answered a
request is read from its ASGI scope by a wrapper around the app."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from gateway_helpers import answer
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from refstore import errors
from refstore.web import GatewaySettings, create_app
from refstore.web import routes_files as declared
from refstore.web.fast_routes import FastRoute
from refstore.web.state import get_gateway, get_object_principal, get_principal

ADMIN = "fast-admin"
PROJECT = "fast-project"  # may read and write under mine/ in the logical bucket only
MAPPING = "fast-mapping"  # may use /gateway/bucket-mapping and nothing else
LOGICAL, PHYSICAL = "logical", "fast-physical"
MAX_UPLOAD = 64 * 1024
BODY = bytes(range(256)) * 4
FILES_TEMPLATE = "/files/{bucket}/{key:path}"
STORED = f"/files/{LOGICAL}/mine/a.txt"  # the object every test starts with
MINE = f"/files/{LOGICAL}/mine"
DOWNLOAD = f"/download?uri=s3://{LOGICAL}/mine/a.txt"
FLAG = "use_logical_uri"


class RouteRecorder:
    """Wraps an ASGI app; records the route that answered each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: list[BaseRoute | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.routes.append(scope.get("route"))


@dataclass
class InProcessGateway:
    app: FastAPI
    recorder: RouteRecorder
    http: httpx.AsyncClient
    portal: anyio.from_thread.BlockingPortal

    def request(
        self, method: str, url: str, token: str | None = ADMIN, **kwargs: Any
    ) -> tuple[httpx.Response, BaseRoute | None]:
        """The answer to a request, and the route that gave it."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        send = functools.partial(self.http.request, method, url, headers=headers, **kwargs)
        response = self.portal.call(send)
        return response, self.recorder.routes[-1]

    @contextmanager
    def declared_routes_only(self) -> Iterator[None]:
        """The app's router without its fast routes, for the duration."""
        routes = self.app.router.routes
        kept = list(routes)
        routes[:] = [route for route in kept if not isinstance(route, FastRoute)]
        assert len(routes) == len(kept) - 3
        try:
            yield
        finally:
            routes[:] = kept

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.request("GET", "/metrics")[0].text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def settings_for(root: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "local": {"root": str(root)},
        "default_bucket": PHYSICAL,
        "enable_bucket_mapping": True,
        "bucket_map": {LOGICAL: PHYSICAL},
        "server": {"max_upload_bytes": MAX_UPLOAD},
        "auth": {
            "mode": "keys",
            "admin_tokens": [ADMIN],
            "mapping_tokens": [MAPPING],
            "api_keys": [{"key": PROJECT, "project": "p", "buckets": [LOGICAL], "prefix": "mine/"}],
        },
    }
    return GatewaySettings(**{**values, **overrides})


@contextmanager
def in_process(settings: GatewaySettings) -> Iterator[InProcessGateway]:
    app = create_app(settings)
    recorder = RouteRecorder(app)
    transport = httpx.ASGITransport(app=recorder)
    http = httpx.AsyncClient(transport=transport, base_url="http://gateway")
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        try:
            yield InProcessGateway(app, recorder, http, portal)
        finally:
            portal.call(http.aclose)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    with in_process(settings_for(tmp_path / "store")) as running:
        stored, _ = running.request("PUT", STORED, content=BODY)
        assert stored.status_code == 200, stored.text
        yield running


def is_fast(route: BaseRoute | None, method: str, template: str) -> bool:
    return isinstance(route, FastRoute) and (route.method, route.path) == (method, template)


# (method, path, token, request headers, expected status) of each kind of request the fast
# routes serve; {etag} is replaced by the stored object's ETag, "big" sends too large a body.
FAST_REQUESTS: dict[str, tuple[str, str, str | None, dict[str, str], int]] = {
    "get": ("GET", STORED, ADMIN, {}, 200),
    "get-physical-name": ("GET", f"/files/{PHYSICAL}/mine/a.txt", ADMIN, {}, 200),
    "get-by-project-key": ("GET", STORED, PROJECT, {}, 200),
    "get-range": ("GET", STORED, ADMIN, {"Range": "bytes=10-19"}, 206),
    "get-not-modified": ("GET", STORED, ADMIN, {"If-None-Match": "{etag}"}, 304),
    "get-range-beyond": ("GET", STORED, ADMIN, {"Range": "bytes=5000-"}, 416),
    "get-missing": ("GET", f"{MINE}/none.txt", ADMIN, {}, 404),
    "get-no-token": ("GET", STORED, None, {}, 401),
    "get-unknown-token": ("GET", STORED, "nobody", {}, 401),
    "get-mapping-token": ("GET", STORED, MAPPING, {}, 403),
    "get-out-of-prefix": ("GET", f"/files/{LOGICAL}/theirs/a.txt", PROJECT, {}, 403),
    "get-bad-bucket": ("GET", "/files/Bad_Bucket/a.txt", ADMIN, {}, 400),
    "get-bad-key": ("GET", f"/files/{LOGICAL}/a%01b", ADMIN, {}, 400),
    "put": ("PUT", f"{MINE}/put.txt", ADMIN, {}, 200),
    "put-non-ascii-key": ("PUT", f"{MINE}/报告 1.txt", ADMIN, {}, 200),
    "put-logical-uri": ("PUT", f"{MINE}/l.txt?{FLAG}=true", ADMIN, {}, 200),
    "put-logical-uri-t": ("PUT", f"{MINE}/l.txt?{FLAG}=T", ADMIN, {}, 200),
    "put-logical-uri-off": ("PUT", f"{MINE}/l.txt?{FLAG}=off", ADMIN, {}, 200),
    "put-by-project-key": ("PUT", f"{MINE}/p.txt", PROJECT, {}, 200),
    "put-out-of-prefix": ("PUT", f"/files/{LOGICAL}/theirs/p.txt", PROJECT, {}, 403),
    "put-mapping-token": ("PUT", f"{MINE}/m.txt", MAPPING, {}, 403),
    "put-too-large": ("PUT", f"{MINE}/big.bin", ADMIN, {"big": "yes"}, 413),
    "put-bad-key": ("PUT", f"{MINE}/a%00b", ADMIN, {}, 400),
    "download": ("GET", DOWNLOAD, ADMIN, {}, 200),
    "download-range": ("GET", DOWNLOAD, ADMIN, {"Range": "bytes=-5"}, 206),
    "download-missing": ("GET", f"/download?uri=s3://{LOGICAL}/none", ADMIN, {}, 404),
    "download-bad-uri": ("GET", "/download?uri=s3://x/../y", ADMIN, {}, 400),
    "download-empty-uri": ("GET", "/download?uri=", ADMIN, {}, 400),
    "download-no-token": ("GET", DOWNLOAD, None, {}, 401),
}


def send(gateway: InProcessGateway, case: str) -> tuple[httpx.Response, BaseRoute | None]:
    method, url, token, options, _ = FAST_REQUESTS[case]
    headers = {k: v for k, v in options.items() if k != "big"}
    if headers.get("If-None-Match") == "{etag}":
        headers["If-None-Match"] = gateway.request("GET", STORED)[0].headers["etag"]
    content = b"x" * (MAX_UPLOAD + 1) if "big" in options else BODY
    if method == "PUT":
        return gateway.request(method, url, token, headers=headers, content=content)
    return gateway.request(method, url, token, headers=headers)


@pytest.mark.parametrize("case", FAST_REQUESTS)
def test_each_fast_request_is_answered_by_its_fast_route(
    gateway: InProcessGateway, case: str
) -> None:
    method, url, _, _, status = FAST_REQUESTS[case]
    response, route = send(gateway, case)
    assert response.status_code == status, response.text
    template = FILES_TEMPLATE if url.startswith("/files/") else "/download"
    assert is_fast(route, method, template), f"{case} was answered by {route!r}"


@pytest.mark.parametrize("case", FAST_REQUESTS)
def test_a_fast_route_answers_exactly_as_the_declared_route(
    gateway: InProcessGateway, case: str
) -> None:
    fast, fast_route = send(gateway, case)
    with gateway.declared_routes_only():
        declared, declared_route = send(gateway, case)
    assert isinstance(fast_route, FastRoute)
    assert isinstance(declared_route, APIRoute)
    assert (declared_route.path, declared_route.endpoint) == (fast_route.path, fast_route.endpoint)
    assert answer(fast) == answer(declared)


def test_flags_and_uris_are_read_as_the_declared_routes_read_them(
    gateway: InProcessGateway,
) -> None:
    stored = send(gateway, "put-logical-uri")[0].json()
    assert stored["uri"] == f"s3://{LOGICAL}/mine/l.txt"
    assert send(gateway, "put-logical-uri-t")[0].json()["uri"] == f"s3://{LOGICAL}/mine/l.txt"
    assert send(gateway, "put-logical-uri-off")[0].json()["uri"] == f"s3://{PHYSICAL}/mine/l.txt"
    assert send(gateway, "put")[0].json()["uri"] == f"s3://{PHYSICAL}/mine/put.txt"
    downloaded = send(gateway, "download")[0]
    assert downloaded.content == BODY


# Requests on the fast routes' paths that they leave to the declared routes, with the
# declared route's answer.
DECLARED_REQUESTS: dict[str, tuple[str, str, int]] = {
    "get-unknown-parameter": ("GET", f"{STORED}?via=declared", 200),
    "get-with-a-flag": ("GET", f"{STORED}?{FLAG}=true", 200),
    "get-empty-key": ("GET", f"/files/{LOGICAL}/", 400),
    "head": ("HEAD", STORED, 405),
    "post": ("POST", STORED, 405),
    "delete": ("DELETE", STORED, 405),
    "put-not-a-boolean": ("PUT", f"{MINE}/q.txt?{FLAG}=maybe", 422),
    "put-empty-flag": ("PUT", f"{MINE}/q.txt?{FLAG}=", 422),
    "put-flag-twice": ("PUT", f"{MINE}/q.txt?{FLAG}=1&{FLAG}=0", 200),
    "put-unknown-parameter": ("PUT", f"{MINE}/q.txt?via=declared", 200),
    "put-empty-key": ("PUT", f"/files/{LOGICAL}/", 400),
    "download-unknown-parameter": ("GET", f"{DOWNLOAD}&via=declared", 200),
    "download-without-uri": ("GET", "/download", 422),
    "download-uri-twice": ("GET", f"{DOWNLOAD}&uri=s3://{LOGICAL}/none", 404),
    "download-post": ("POST", DOWNLOAD, 405),
}


@pytest.mark.parametrize("case", DECLARED_REQUESTS)
def test_other_requests_go_to_the_declared_routes(gateway: InProcessGateway, case: str) -> None:
    method, url, status = DECLARED_REQUESTS[case]
    response, route = gateway.request(method, url, content=BODY if method == "PUT" else None)
    assert response.status_code == status, response.text
    assert isinstance(route, APIRoute), f"{case} was answered by {route!r}"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_key_with_a_newline_is_refused_as_an_invalid_key(
    gateway: InProcessGateway, method: str
) -> None:
    body = BODY if method == "PUT" else None
    response, route = gateway.request(method, f"{MINE}/a%0Ab", content=body)
    assert isinstance(route, FastRoute)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_key"
    assert "control characters" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", "/list?logic_bucket=logical"), ("GET", "/info?uri=s3://logical/mine/a.txt")],
)
def test_requests_elsewhere_are_not_taken(gateway: InProcessGateway, method: str, url: str) -> None:
    response, route = gateway.request(method, url)
    assert response.status_code == 200, response.text
    assert isinstance(route, APIRoute)


def test_the_fast_routes_come_first_in_the_router(gateway: InProcessGateway) -> None:
    first = gateway.app.router.routes[:3]
    assert [(type(r), r.method, r.path) for r in first if isinstance(r, FastRoute)] == [
        (FastRoute, "GET", FILES_TEMPLATE),
        (FastRoute, "PUT", FILES_TEMPLATE),
        (FastRoute, "GET", "/download"),
    ]


def test_refstore_errors_of_fast_routes_are_answered_by_the_app_error_handler(
    gateway: InProcessGateway,
) -> None:
    handled: list[str] = []
    handler = gateway.app.exception_handlers[errors.RefStoreError]

    async def counting(request: Request, exc: Exception) -> Response:
        handled.append(type(exc).__name__)
        response = handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    gateway.app.exception_handlers[errors.RefStoreError] = counting
    gateway.app.middleware_stack = None  # built again with the counting handler
    for case in ("get-missing", "put-too-large", "download-bad-uri", "get-no-token"):
        response, route = send(gateway, case)
        assert isinstance(route, FastRoute)
        assert response.json()["code"]
    assert handled == [
        "ObjectNotFoundError",
        "ObjectTooLargeError",
        "URIParseError",
        "AuthenticationError",
    ]


def test_fast_requests_are_counted_under_their_route_templates(
    gateway: InProcessGateway,
) -> None:
    before = gateway.metrics()
    for case in ("get", "put", "download", "get-missing"):
        assert isinstance(send(gateway, case)[1], FastRoute)
    after = gateway.metrics()
    counted = "refstore_http_requests_total"
    for method, route, status in [
        ("GET", FILES_TEMPLATE, "200"),
        ("PUT", FILES_TEMPLATE, "200"),
        ("GET", "/download", "200"),
        ("GET", FILES_TEMPLATE, "404"),
    ]:
        labels = tuple(sorted({"method": method, "route": route, "status": status}.items()))
        assert after[counted, labels] - before.get((counted, labels), 0) == 1, (method, route)


def test_the_openapi_document_is_that_of_the_declared_routes(tmp_path: Path) -> None:
    with_fast = create_app(settings_for(tmp_path / "a"))
    without = create_app(settings_for(tmp_path / "b"))
    without.router.routes[:] = [r for r in without.router.routes if not isinstance(r, FastRoute)]
    spec = with_fast.openapi()
    assert spec == without.openapi()
    paths = spec["paths"]
    assert set(paths["/files/{bucket}/{key}"]) == {"get", "put"}
    assert set(paths["/download"]) == {"get"}
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def declared_route(endpoint: Callable[..., Any]) -> APIRoute:
    (route,) = [r for r in declared.router.routes if getattr(r, "endpoint", None) is endpoint]
    assert isinstance(route, APIRoute)
    return route


def dependency_calls(route: APIRoute) -> set[Callable[..., Any]]:
    pending, calls = list(route.dependant.dependencies), set()
    while pending:
        dependency = pending.pop()
        assert dependency.call is not None
        calls.add(dependency.call)
        pending.extend(dependency.dependencies)
    return calls


def test_fast_routes_resolve_what_their_declared_routes_depend_on(
    gateway: InProcessGateway,
) -> None:
    """A fast route authenticates and checks the caller with the declared dependencies'
    functions and reads the declared query parameters: a dependency or parameter added to
    a declared route must be added to its fast route too."""
    fast_routes = [r for r in gateway.app.router.routes if isinstance(r, FastRoute)]
    assert {r.endpoint for r in fast_routes} == {
        declared.download_path,
        declared.upload_raw,
        declared.download,
    }
    for fast in fast_routes:
        route = declared_route(fast.endpoint)
        assert route.path == fast.path and route.methods == {fast.method}
        assert dependency_calls(route) == {get_gateway, get_principal, get_object_principal}
        query = route.dependant.query_params
        assert {q.name for q in query} == set(fast.readers)
        assert {q.name for q in query if q.field_info.is_required()} == set(fast.required)


# -- the operator's mapping: fast routes refuse object requests until it arrives ------------


@pytest.fixture
def awaiting(tmp_path: Path) -> Iterator[InProcessGateway]:
    settings = settings_for(tmp_path / "store", bucket_mapping_source="operator")
    with in_process(settings) as running:
        yield running


@pytest.mark.parametrize("case", ["get", "put", "download"])
def test_fast_routes_refuse_object_requests_until_the_operator_mapping_arrives(
    awaiting: InProcessGateway, case: str
) -> None:
    response, route = send(awaiting, case)
    assert isinstance(route, FastRoute)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "backend_unavailable"
    assert "waiting for the operator" in response.json()["detail"]
    assert response.headers["retry-after"]
    with awaiting.declared_routes_only():
        declared = send(awaiting, case)[0]
    assert answer(response) == answer(declared)
    # Counted under the declared endpoint's name, as the declared route counts it.
    operation = declared_route(route.endpoint).endpoint.__name__
    labels = (("kind", "backend_unavailable"), ("operation", operation))
    assert awaiting.metrics()["refstore_backend_errors_total", labels] == 2


def test_after_the_first_versioned_push_the_fast_routes_serve(awaiting: InProcessGateway) -> None:
    version = {"source": "bucketmapping/ns/m", "uid": "u", "created": "2026-01-01T00:00:00Z"}
    pushed, _ = awaiting.request(
        "PUT",
        "/gateway/bucket-mapping",
        MAPPING,
        json={
            "enable_bucket_mapping": True,
            "bucket_map": {LOGICAL: PHYSICAL},
            "version": {**version, "generation": 1},
        },
    )
    assert pushed.status_code == 200, pushed.text
    for case in ("put", "get-mapping-token", "put-mapping-token"):
        response, route = send(awaiting, case)
        assert isinstance(route, FastRoute)
        assert response.status_code == FAST_REQUESTS[case][4], response.text
        if response.status_code == 403:
            assert "bucket-mapping" in response.json()["detail"]


# -- the upload form reads its flag with the same parser ---------------------------------


@pytest.mark.parametrize(
    ("flag", "logical"),
    [("true", True), ("T", True), ("yes", True), (" on ", True), ("0", False), ("maybe", False)],
)
def test_the_upload_form_reads_use_logical_uri_as_the_raw_upload_does(
    gateway: InProcessGateway, flag: str, logical: bool
) -> None:
    form, _ = gateway.request(
        "POST",
        "/upload",
        data={"logic_bucket": LOGICAL, "path": "mine", "use_logical_uri": flag},
        files={"file": ("f.txt", b"form")},
    )
    assert form.status_code == 200, form.text
    expected = f"s3://{LOGICAL if logical else PHYSICAL}/mine/f.txt"
    assert form.json()["uri"] == expected
    if flag.strip() != "maybe":
        query = f"?use_logical_uri={flag.strip()}"
        raw, _ = gateway.request("PUT", f"/files/{LOGICAL}/mine/f.txt{query}", content=b"raw")
        assert raw.json()["uri"] == expected
