"""Streaming object responses: Range, ETag, If-None-Match, Content-Disposition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..aio import AsyncObjectStream
from ..errors import InvalidRangeError
from ..uri import decode_uri
from .state import Gateway
from .transfer import content_disposition, parse_range


class ObjectResponse(StreamingResponse):
    """Streams an object and always releases the backend stream, even when the
    client goes away mid-transfer."""

    def __init__(self, stream: AsyncObjectStream, gateway: Gateway, **kwargs: object) -> None:
        self._stream = stream
        self._gateway = gateway
        gateway.metrics.open_downloads.inc()
        super().__init__(self._chunks(), **kwargs)  # type: ignore[arg-type]

    async def _chunks(self) -> AsyncIterator[bytes]:
        counter = self._gateway.metrics.transfer_bytes.labels("out")
        async for chunk in self._stream:
            counter.inc(len(chunk))
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()
            self._gateway.metrics.open_downloads.dec()


def _etag_matches(header: str, etag: str) -> bool:
    candidates = {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}
    return "*" in candidates or etag in candidates


async def object_response(gateway: Gateway, uri: str, request: Request) -> Response:
    """The object at ``uri`` as a streaming 200/206 response (or 304).

    Raises:
        ObjectNotFoundError, InvalidRangeError (416, with ``bytes */size``).
    """
    store = gateway.store
    range_header = request.headers.get("range")
    byte_range = None
    if range_header:
        size = (await store.get_file_info(uri))["size"]
        byte_range = parse_range(range_header, size)
    if byte_range is not None:
        try:
            stream = await store.open(uri, offset=byte_range.start, length=byte_range.length)
        except InvalidRangeError as exc:
            exc.context.setdefault("size", size)
            raise
    else:
        stream = await store.open(uri)
    info = stream.info
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(stream.length),
        "Content-Disposition": content_disposition(decode_uri(uri)[1].rsplit("/", 1)[-1]),
    }
    if info.etag:
        headers["ETag"] = f'"{info.etag}"'
    if info.last_modified:
        headers["Last-Modified"] = format_datetime(info.last_modified, usegmt=True)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and info.etag and _etag_matches(if_none_match, info.etag):
        await stream.aclose()
        return Response(
            status_code=304,
            headers={k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")},
        )
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = byte_range.content_range(info.size)
    return ObjectResponse(
        stream, gateway, status_code=status, headers=headers, media_type=info.content_type
    )
