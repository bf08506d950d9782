"""Streaming object responses: Range, ETag, If-None-Match, Content-Disposition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..aio import AsyncObjectStream
from ..backends import ObjectInfo
from ..checksums import S3_HEADERS, Checksums
from ..errors import InvalidRangeError
from ..store import RefStore
from ..uri import decode_uri
from .state import Gateway
from .transfer import content_disposition, parse_range

READ_CHUNK = 4 * 1024 * 1024
"""Bytes a download reads from storage per thread hop. Each chunk costs a hop, a loop
wake-up and a few partial socket writes: 4 MiB moves a MB for 15-25% less gateway CPU
than 1 MiB (bench/gateway.py); a download holds about two chunks."""


class ObjectResponse(StreamingResponse):
    """Streams an object and always releases the backend stream, even when the
    client goes away mid-transfer."""

    def __init__(self, stream: AsyncObjectStream, gateway: Gateway, **kwargs: object) -> None:
        self._stream = stream
        self._gateway = gateway
        gateway.metrics.open_downloads.inc()
        super().__init__(self._chunks(), **kwargs)  # type: ignore[arg-type]

    async def _chunks(self) -> AsyncIterator[bytes]:
        counter = self._gateway.metrics.bytes_out
        remaining = self._stream.length
        while remaining > 0:  # stop at the length: no thread hop for an empty last read
            chunk = await self._stream.read(min(READ_CHUNK, remaining))
            remaining -= len(chunk)
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


SMALL_BODY = 256 * 1024
"""Objects up to this size are read in the same thread hop that opens them and sent
whole: one hop per request instead of open, read and close."""


def _open(store: RefStore, uri: str, offset: int, length: int | None) -> tuple[Any, bytes | None]:
    """(open stream, None), or (the object's info, its bytes) when it is small."""
    stream = store.open(uri, offset=offset, length=length)
    if stream.length > SMALL_BODY:
        return stream, None
    with stream:
        return stream.info, stream.read()


def digest_headers(checksums: Checksums) -> dict[str, str]:
    """What a whole object's answer says of its bytes, for the client to check:
    ``Repr-Digest`` (RFC 9530) and S3's ``x-amz-checksum-*``."""
    headers = {"Repr-Digest": checksums.digest_header()}
    for name, value in checksums.values.items():
        headers[S3_HEADERS[name]] = value
    return headers


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
    offset, length = (byte_range.start, byte_range.length) if byte_range else (0, None)
    try:
        opened, body = await store.run_blocking(_open, store.sync, uri, offset, length)
    except InvalidRangeError as exc:
        if byte_range is not None:
            exc.context.setdefault("size", size)
        raise
    stream = None if body is not None else AsyncObjectStream(opened, gateway.executor)
    info: ObjectInfo = opened if stream is None else stream.info
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(len(body) if body is not None else opened.length),
        "Content-Disposition": content_disposition(decode_uri(uri)[1].rsplit("/", 1)[-1]),
    }
    if info.etag:
        headers["ETag"] = f'"{info.etag}"'
    if info.last_modified:
        headers["Last-Modified"] = format_datetime(info.last_modified, usegmt=True)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and info.etag and _etag_matches(if_none_match, info.etag):
        if stream is not None:
            await stream.aclose()
        return Response(
            status_code=304,
            headers={k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")},
        )
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = byte_range.content_range(info.size)
    elif info.checksums:
        headers.update(digest_headers(info.checksums))
    if stream is None:
        gateway.metrics.bytes_out.inc(len(body or b""))
        return Response(body, status_code=status, headers=headers, media_type=info.content_type)
    return ObjectResponse(
        stream, gateway, status_code=status, headers=headers, media_type=info.content_type
    )
