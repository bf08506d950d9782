"""Object reads and raw writes answered without FastAPI's routing and dependency solving.

Small GETs and PUTs are the gateway's busiest requests, and for them FastAPI's route
matching, dependency solving and parameter validation cost about a quarter of the
gateway's CPU (py-spy; bench/gateway.py). This middleware answers exactly
``GET /files/{bucket}/{key}``, ``GET /download?uri=...`` and
``PUT /files/{bucket}/{key}`` itself, with the functions the declared routes run
(:func:`~refstore.web.routes_files.read_object`,
:func:`~refstore.web.routes_files.write_object`), the same key check and the same
error answers. Every other request, and any of these it does not take as they are
(no gateway yet, query parameters it does not know), goes to FastAPI unchanged. The
routes stay declared, so ``/docs`` describes them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import errors
from ..uri import decode_uri
from .auth import Principal
from .errors import answer_refstore_error
from .routes_files import download, download_path, read_object, upload_raw, write_object
from .state import Gateway

FILES_PREFIX = "/files/"
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True}
BOOLEANS.update({"false": False, "0": False, "no": False, "off": False})

Answer = Callable[[Gateway, Principal, Request], Awaitable[Response]]


@dataclass(frozen=True)
class RouteTemplate:
    """What the observability middleware reads of a matched route: its template."""

    path: str


FILES_ROUTE = RouteTemplate("/files/{bucket}/{key:path}")
DOWNLOAD_ROUTE = RouteTemplate("/download")


class FastObjectRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = _take(scope) if scope["type"] == "http" else None
        gateway = getattr(scope["app"].state, "gateway", None) if taken else None
        if taken is None or gateway is None:
            await self.app(scope, receive, send)
            return
        endpoint, route, answer = taken
        scope["route"] = route
        scope["endpoint"] = endpoint
        request = Request(scope, receive)
        try:
            principal = gateway.authenticator.authenticate(request.headers.get("authorization"))
            scope.setdefault("state", {})["principal"] = principal.name
            principal.require_general_access()
            gateway.require_mapping()
            response = await answer(gateway, principal, request)
        except errors.RefStoreError as exc:
            response = answer_refstore_error(request, endpoint.__name__, exc)
        await response(scope, receive, send)


def _take(scope: Scope) -> tuple[Any, RouteTemplate, Answer] | None:
    """(declared endpoint, its route, answer) of a request this middleware serves, else None."""
    method = scope["method"]
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not (path.startswith(FILES_PREFIX) or path == "/download"):
        return None  # every other request: no query parsing on its way to FastAPI
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if path.startswith(FILES_PREFIX):
        bucket, slash, key = path[len(FILES_PREFIX) :].partition("/")
        if not (bucket and slash and key):
            return None
        if method == "GET" and not query:
            return download_path, FILES_ROUTE, lambda g, p, r: read_object(g, p, r, bucket, key)
        if method == "PUT":
            logical = _only_flag(query, "use_logical_uri")
            if logical is not None:
                write = functools.partial(_write, bucket=bucket, key=key, logical=logical)
                return upload_raw, FILES_ROUTE, write
        return None
    if path == "/download" and method == "GET" and len(query) == 1 and query[0][0] == "uri":
        uri = query[0][1]
        return download, DOWNLOAD_ROUTE, lambda g, p, r: read_object(g, p, r, *decode_uri(uri))
    return None


def _only_flag(query: list[tuple[str, str]], name: str) -> bool | None:
    """False without a query; the flag's value when it is the only parameter; else None."""
    if not query:
        return False
    if len(query) == 1 and query[0][0] == name:
        return BOOLEANS.get(query[0][1].lower())
    return None


async def _write(
    gateway: Gateway, principal: Principal, request: Request, bucket: str, key: str, logical: bool
) -> Response:
    result = await write_object(gateway, principal, request, bucket, key, logical)
    return JSONResponse(result.model_dump())
