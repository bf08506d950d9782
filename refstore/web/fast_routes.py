"""Object reads and raw writes routed without FastAPI's dependency solving and validation.

Small GETs and PUTs are the gateway's busiest requests, and for them FastAPI's
dependency solving and parameter validation cost about a quarter of the gateway's CPU
(py-spy; bench/gateway.py). :func:`fast_routes` gives the app's router, ahead of every
other route, one :class:`FastRoute` for each of ``GET /files/{bucket}/{key}``,
``PUT /files/{bucket}/{key}`` and ``GET /download``. A fast route takes a request only
when its query holds nothing but parameters that it reads as the declared route does;
it then resolves the caller with the declared routes' own dependency functions and
calls the declared endpoint itself. Every other request (an unknown query parameter,
a flag that is not a boolean, another method) goes on to the declared routes, which
also document these paths in ``/openapi.json``: fast routes are left out of the schema.

Being routes, fast routes run inside the exception middleware (a RefStore error gets
the answer of :mod:`refstore.web.errors`, under the declared endpoint's name), and the
observability middleware labels their requests with their path template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel
from starlette._utils import get_route_path  # what the router matches paths on
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path
from starlette.types import Receive, Scope, Send

from .routes_files import FILES_PATH, download, download_path, parse_bool, upload_raw
from .state import get_gateway, get_object_principal, get_principal
from .strict import require_utf8_query

Endpoint = Callable[..., Awaitable[Response | BaseModel]]
Reader = Callable[[str], object | None]
"""Reads a query parameter's value; None for a value the fast route leaves to FastAPI."""

QUERY_ARGUMENTS = "refstore.query_arguments"
"""Scope key of the query arguments a fast route read while matching."""


class FastRoute(BaseRoute):
    """``method path`` answered by calling the declared route's ``endpoint`` directly.

    Args:
        required: query parameters the request must have, and how each is read.
        optional: query parameters it may have (left out, the endpoint's default applies).

    A request is taken when each query parameter is one of these, given once, and
    readable; the path parameters must not be empty. Anything else is left to the
    routes after this one.
    """

    def __init__(
        self,
        method: str,
        path: str,
        endpoint: Endpoint,
        *,
        required: Mapping[str, Reader] | None = None,
        optional: Mapping[str, Reader] | None = None,
    ) -> None:
        self.method = method
        self.path = path  # the template requests are labelled with in metrics and logs
        self.endpoint = endpoint  # also names the operation in backend-error metrics
        self.name = endpoint.__name__
        self.include_in_schema = False  # the declared route documents it
        # {key:path} matches newlines too (routes_files registers the convertor), so
        # that the key check refuses them with 400.
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self.required = dict(required or {})
        self.readers = {**self.required, **(optional or {})}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != self.method:
            return Match.NONE, {}
        found = self.path_regex.match(get_route_path(scope))
        if found is None:
            return Match.NONE, {}
        params = found.groupdict()
        if not all(params.values()):  # an empty key: the declared route refuses it
            return Match.NONE, {}
        arguments = self.read_query(scope["query_string"])
        if arguments is None:
            return Match.NONE, {}
        path_params = {name: self.param_convertors[name].convert(v) for name, v in params.items()}
        child_scope = {"route": self, "endpoint": self.endpoint, "path_params": path_params}
        return Match.FULL, {**child_scope, QUERY_ARGUMENTS: arguments}

    def read_query(self, query_string: bytes) -> dict[str, object] | None:
        """The endpoint's query arguments, or None when the query is not one this takes."""
        arguments: dict[str, object] = {}
        # Decoded as Starlette's Request.query_params decodes it.
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            read = self.readers.get(name)
            if read is None or name in arguments:
                return None
            argument = read(value)
            if argument is None:
                return None
            arguments[name] = argument
        if not self.required.keys() <= arguments.keys():
            return None
        return arguments

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        require_utf8_query(scope["query_string"])
        request = Request(scope, receive, send)
        gateway = await get_gateway(request)
        caller = await get_principal(request, gateway, request.headers.get("authorization"))
        principal = await get_object_principal(caller, gateway)
        result = await self.endpoint(
            request=request,
            gateway=gateway,
            principal=principal,
            **scope["path_params"],
            **scope[QUERY_ARGUMENTS],
        )
        if not isinstance(result, Response):  # the declared route's response model
            result = JSONResponse(result.model_dump(mode="json"))
        await result(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # URLs are the declared route's

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method} {self.path} -> {self.name})"


def fast_routes() -> list[FastRoute]:
    """The fast routes, to be placed first in the app's router."""
    return [
        FastRoute("GET", FILES_PATH, download_path),
        FastRoute("PUT", FILES_PATH, upload_raw, optional={"use_logical_uri": parse_bool}),
        FastRoute("GET", "/download", download, required={"uri": str}),
    ]
