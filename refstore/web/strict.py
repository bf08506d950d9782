"""Requests are read exactly or refused with a 4xx: query strings and JSON bodies.

Starlette decodes query strings leniently (U+FFFD for bytes that are not UTF-8) and
``json.loads`` takes UTF-16 and UTF-32 too, and a name given twice; each would let two
different requests read as one. Here a query string must decode as UTF-8, and a JSON body
must be UTF-8 (RFC 8259), name each member of an object once and be no larger than
``server.max_json_bytes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from .. import errors
from .settings import GatewaySettings
from .transfer import BodyPace, paced_stream

KEY_PARAMETERS = frozenset({"uri", "prefix", "path"})
"""Query parameters that name objects: one that is not UTF-8 is ``invalid_key``."""


def require_utf8_query(query_string: bytes) -> None:
    """Refuse a query string whose names or values do not decode strictly as UTF-8.

    Raises:
        InvalidKeyError: a :data:`KEY_PARAMETERS` value is not UTF-8.
        InvalidInputError: any other name or value is not UTF-8.
    """
    if b"%" not in query_string and query_string.isascii():
        return
    for name, value in parse_qsl(
        query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        for what, text in (("a query parameter name", name), (name, value)):
            try:
                text.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = text[:64].encode("latin-1").decode("ascii", "backslashreplace")
                message = f"{what}: percent-escapes are not valid UTF-8: {shown!r}"
                error = (
                    errors.InvalidKeyError if what in KEY_PARAMETERS else errors.InvalidInputError
                )
                raise error(message) from exc


async def utf8_query(request: Request) -> None:
    """App-wide dependency: :func:`require_utf8_query` for every declared route."""
    require_utf8_query(request.scope.get("query_string", b""))


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, refusing a name given twice (which json.loads lets the last
    one win: two readings of one request)."""
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise json.JSONDecodeError(f"the name {name!r} is given twice in an object", "", 0)
        members[name] = value
    return members


class _CheckedBodyRequest(Request):
    """A request whose body is read whole up front, within the JSON cap and pace, and
    parsed as UTF-8 text (json.loads of bytes would guess UTF-16 from NUL bytes, which
    are valid UTF-8) with every name of an object given once."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            text = (await self.body()).decode("utf-8")  # checked by read_checked
            self._json = json.loads(text, object_pairs_hook=_unique_names)
        return self._json

    async def read_checked(self, settings: GatewaySettings) -> None:
        limit = settings.server.max_json_bytes
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise errors.ObjectTooLargeError(
                f"a JSON body of {declared} bytes is over the {limit}-byte limit "
                "(server.max_json_bytes)",
                declared=int(declared),
                limit=limit,
            )
        body = bytearray()
        try:
            async for chunk in paced_stream(self, BodyPace.of(settings.server)):
                body += chunk
                if len(body) > limit:
                    raise errors.ObjectTooLargeError(
                        f"a JSON body is over the {limit}-byte limit (server.max_json_bytes)"
                    )
        except ClientDisconnect:
            raise errors.InvalidInputError("the client went away before its body ended") from None
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidInputError("a JSON body must be UTF-8 (RFC 8259)") from None
        if b"\x00" in body:  # never in JSON text; UTF-16 without a BOM is ASCII and NULs
            raise errors.InvalidInputError("a JSON body must be UTF-8 (RFC 8259)")
        self._body = bytes(body)


class CheckedBodyRoute(APIRoute):
    """A route that reads a declared body (JSON) as :class:`_CheckedBodyRequest` does,
    before FastAPI parses it. Routes without a body parameter (uploads read their own
    streams) are left as they are."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            checked_request = _CheckedBodyRequest(request.scope, request.receive)
            # Read here, not inside FastAPI's parsing, which would turn these errors
            # into a generic 400.
            await checked_request.read_checked(request.app.state.settings)
            return await handler(checked_request)

        return checked
