"""Moving bytes through the gateway: multipart and raw bodies in, ranged responses out.

Upload bodies are never read whole (beyond one chunk) and never spooled: chunks
go from the socket straight into the backend upload through a small bounded queue.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from ..errors import (
    InvalidInputError,
    InvalidKeyError,
    InvalidRangeError,
    ObjectTooLargeError,
    RequestTimeoutError,
)
from .settings import ServerSection

T = TypeVar("T")

CHUNK = 1024 * 1024
QUEUE_DEPTH = 4
KEY_FIELDS = frozenset({"path"})
"""Form fields that become part of an object key: one that is not UTF-8 is ``invalid_key``."""

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None for the whole object.

    Multiple ranges and other units are ignored (the whole object is sent), as
    RFC 9110 allows.

    Raises:
        InvalidRangeError: the range does not overlap the object (answer 416).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise InvalidRangeError(f"unsatisfiable range {header!r}", size=size)
        start = max(size - suffix, 0)
        return ByteRange(start, size - start)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        raise InvalidRangeError(f"unsatisfiable range {header!r} for {size} bytes", size=size)
    return ByteRange(start, end - start + 1)


def needs_size_first(header: str | None) -> bool:
    """Whether the range can only be resolved knowing the size (``bytes=-N``)."""
    return bool(header) and bool(re.match(r"^\s*bytes\s*=\s*-", header or ""))


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266 header value: an ASCII fallback plus ``filename*`` for non-ASCII names."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
    fallback = fallback.replace("\\", "_").replace('"', "_")
    value = f'{disposition}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


class BodyCounter:
    """Counts body bytes and enforces the upload cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise ObjectTooLargeError(f"upload exceeds the {self.limit}-byte limit")


def check_declared_length(request: Request, limit: int) -> int | None:
    """Content-Length of the request, refusing it before reading when over ``limit``.

    Raises:
        ObjectTooLargeError: the declared length is over the limit.
        InvalidInputError: the header is not a number.
    """
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise InvalidInputError("Content-Length must be a number")
    if int(declared) > limit:
        raise ObjectTooLargeError(
            f"upload of {declared} bytes exceeds the {limit}-byte limit",
            declared=int(declared),
            limit=limit,
        )
    return int(declared)


async def _coalesce(chunks: AsyncIterator[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


@dataclass(frozen=True)
class BodyPace:
    """How slowly a client may send a body: ``idle_timeout`` seconds without a byte, and
    ``min_rate`` bytes per second (0: any) averaged over each ``window`` seconds."""

    idle_timeout: float
    min_rate: int = 0
    window: float = 30.0

    @classmethod
    def of(cls, server: ServerSection) -> BodyPace:
        return cls(server.body_idle_timeout, server.min_body_rate, server.body_rate_window)


async def paced_stream(request: Request, pace: BodyPace) -> AsyncIterator[bytes]:
    """The request body as it arrives, refusing a client that sends it too slowly.

    Only the time spent waiting for the client counts: while the gateway waits on
    storage it reads nothing (back-pressure), and that is not the client's delay.

    Raises:
        RequestTimeoutError: idle for ``pace.idle_timeout``, or under ``pace.min_rate``.
        ClientDisconnect: the client went away.
    """
    loop = asyncio.get_running_loop()
    idle = waited = 0.0
    received = 0
    while True:
        started = loop.time()
        message = await _receive_within(request, pace.idle_timeout - idle)
        elapsed = loop.time() - started
        idle += elapsed
        waited += elapsed
        if message is None or idle >= pace.idle_timeout:
            raise RequestTimeoutError(
                f"the request body sent nothing for {pace.idle_timeout:g}s "
                "(server.body_idle_timeout); nothing was stored"
            )
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if body:
            idle = 0.0
            received += len(body)
        # Checked as bytes arrive: a client sending nothing at all is the idle timeout's.
        if pace.min_rate and waited >= pace.window:
            if received < pace.min_rate * waited:
                raise RequestTimeoutError(
                    f"the request body came at {received / waited:.0f} B/s, under the "
                    f"{pace.min_rate} B/s minimum (server.min_body_rate); nothing was stored"
                )
            waited, received = 0.0, 0
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _receive_within(request: Request, timeout: float) -> Message | None:
    """The next ASGI message, or None when none came within ``timeout`` seconds.

    Cancelling an ASGI server's ``receive()`` while it waits loses nothing (uvicorn takes
    the body it buffered only when it returns); it is cancelled only when the request
    fails anyway.
    """
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(max(timeout, 0)):
                return await request.receive()
        return await asyncio.wait_for(request.receive(), max(timeout, 0))
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
        return None


async def raw_body(request: Request, counter: BodyCounter, pace: BodyPace) -> AsyncIterator[bytes]:
    """The request body in ~1 MiB chunks, paced, enforcing the cap as bytes arrive."""

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in paced_stream(request, pace):
            counter.add(len(chunk))
            yield chunk

    async for chunk in _coalesce(counted()):
        yield chunk


class _Pipe:
    """A bounded queue of chunks from the request to a backend upload running elsewhere."""

    _END = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_DEPTH)
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            await self._queue.put(bytes(self._buffer))
            self._buffer.clear()

    async def close(self) -> None:
        if self._buffer:
            await self._queue.put(bytes(self._buffer))
            self._buffer.clear()
        await self._queue.put(self._END)

    def fail(self, error: BaseException) -> None:
        """Make the reader raise ``error`` (never blocks: drops queued data)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(error)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


# One `; key=value` parameter of a header: a quoted string or a token. In a quoted string
# only \" and \\ are escapes: browsers send other backslashes as they are (a\b.txt).
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.ASCII)
_ESCAPE = re.compile(r'\\([\\"])')


def _utf8(raw: bytes, what: str, error: type[InvalidInputError] = InvalidInputError) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not valid UTF-8: {raw!r}") from None


def _extended_value(value: str) -> str:
    """An RFC 8187 ``charset'language'percent-encoded`` value, decoded exactly.

    Raises:
        InvalidKeyError: a charset other than UTF-8 or ISO-8859-1, or bytes not in it.
    """
    charset, _, rest = value.partition("'")
    _, _, encoded = rest.partition("'")
    raw = unquote_to_bytes(encoded)
    if charset.lower() == "iso-8859-1":
        return raw.decode("latin-1")
    if charset.lower() != "utf-8":
        raise InvalidKeyError(f"filename* charset {charset!r} is neither UTF-8 nor ISO-8859-1")
    return _utf8(raw, "the filename", InvalidKeyError)


def parse_disposition(header: bytes) -> tuple[str, str | None]:
    """(field name, filename) of a part's ``Content-Disposition: form-data`` header.

    ``filename*=`` (RFC 6266/8187) wins over ``filename=``; names decode exactly.

    Raises:
        InvalidInputError: not form-data, no name, or a name that is not UTF-8.
        InvalidKeyError: the filename is not valid UTF-8 (or not in its declared charset).
    """
    text = header.decode("latin-1")
    kind, semicolon, rest = text.partition(";")
    if kind.strip().lower() != "form-data":
        raise InvalidInputError("each form part needs a 'Content-Disposition: form-data' header")
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(semicolon + rest):
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        params.setdefault(key.lower(), value.strip())
    if "name" not in params:
        raise InvalidInputError("a form part has no name")
    name = _utf8(params["name"].encode("latin-1"), "a form field name")
    filename: str | None = None
    if "filename*" in params:
        filename = _extended_value(params["filename*"])
    elif "filename" in params:
        filename = _utf8(params["filename"].encode("latin-1"), "the filename", InvalidKeyError)
    return name, filename


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)


FileHandler = Callable[[dict[str, str], str, str, AsyncIterator[bytes]], Awaitable[Any]]
"""Called for the file part: (fields so far, filename, content type, body chunks)."""


async def stream_multipart(
    request: Request,
    counter: BodyCounter,
    on_file: FileHandler,
    limits: ServerSection,
    file_field: str = "file",
) -> tuple[dict[str, str], Any]:
    """Parse a multipart/form-data body, streaming the ``file`` part into ``on_file``.

    Returns:
        (all text fields, the result of ``on_file``).

    Raises:
        InvalidInputError: not multipart, malformed (parser error, a part without a
            form-data name, a field name or value not UTF-8, no closing boundary), more than
            ``limits.max_form_parts`` parts, a part's headers or a text field over
            ``limits.max_form_header_bytes`` / ``max_form_field_bytes``,
            no file part or more than one.
        InvalidKeyError: the filename or a :data:`KEY_FIELDS` field is not valid UTF-8.
        ObjectTooLargeError: the file passed the cap (the upload is aborted).
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInputError("expected a multipart/form-data body with a 'file' part")

    events: list[tuple[str, Any]] = []
    header_name = bytearray()
    header_value = bytearray()

    header_bytes = 0

    def count_header(n: int) -> None:
        nonlocal header_bytes
        header_bytes += n
        if header_bytes > limits.max_form_header_bytes:
            raise InvalidInputError(
                f"the headers of a form part exceed {limits.max_form_header_bytes} bytes"
            )

    def on_part_begin() -> None:
        nonlocal header_bytes
        header_bytes = 0
        events.append(("begin", None))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        # Latin-1 keeps the raw bytes; parse_disposition decodes them exactly.
        name, value = header_name.decode("latin-1").lower(), header_value.decode("latin-1")
        events.append(("header", (name, value)))
        header_name.clear()
        header_value.clear()

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": lambda: events.append(("headers_done", None)),
        "on_part_data": lambda data, start, end: events.append(("data", bytes(data[start:end]))),
        "on_part_end": lambda: events.append(("end", None)),
    }
    parser = MultipartParser(boundary, callbacks)
    fields: dict[str, str] = {}
    part = _Part()
    pipe: _Pipe | None = None
    upload: asyncio.Task[Any] | None = None
    result: Any = None
    parts = 0
    try:
        async for chunk in paced_stream(request, BodyPace.of(limits)):
            _feed(parser, chunk)
            for kind, value in events:
                if kind == "begin":
                    part = _Part()
                    parts += 1
                    if parts > limits.max_form_parts:
                        raise InvalidInputError(
                            f"the form has more than {limits.max_form_parts} parts"
                        )
                elif kind == "header":
                    part.headers[value[0]] = value[1]
                elif kind == "headers_done":
                    disposition = part.headers.get("content-disposition", "")
                    part.name, part.filename = parse_disposition(disposition.encode("latin-1"))
                    part.content_type = part.headers.get("content-type", "")
                    if part.name == file_field and upload is not None:
                        raise InvalidInputError(f"only one {file_field!r} part is accepted")
                    if part.name == file_field:
                        pipe = _Pipe()
                        upload = asyncio.ensure_future(
                            on_file(
                                dict(fields),
                                part.filename or "file",
                                part.content_type,
                                pipe.chunks(),
                            )
                        )
                elif kind == "data":
                    if part.name == file_field and pipe is not None:
                        counter.add(len(value))
                        await _write_or_fail(pipe, upload, value)
                    else:
                        part.data += value
                        if len(part.data) > limits.max_form_field_bytes:
                            raise InvalidInputError(
                                f"form field {part.name!r} is longer than "
                                f"{limits.max_form_field_bytes} bytes"
                            )
                elif kind == "end":
                    if part.name == file_field and pipe is not None:
                        await _unless_failed(pipe.close(), upload)
                    else:
                        error = InvalidKeyError if part.name in KEY_FIELDS else InvalidInputError
                        what = f"form field {part.name!r}"
                        fields[part.name] = _utf8(bytes(part.data), what, error)
            events.clear()
        parser.finalize()
        if parser.state != MultipartState.END:
            raise InvalidInputError("the multipart body ends before its closing boundary")
        if upload is None:
            raise InvalidInputError(f"the form has no {file_field!r} file part")
        result = await upload
    except BaseException as exc:
        if pipe is not None and upload is not None:
            await _abort(pipe, upload, exc)
        raise
    return fields, result


async def pump(
    chunks: AsyncIterator[bytes], upload: Callable[[AsyncIterator[bytes]], Awaitable[T]]
) -> T:
    """``upload(pipe)`` fed with ``chunks`` read by the calling task.

    The upload, running in a storage thread, never waits on the client's socket itself:
    when reading fails, times out or is cancelled (the client went away, shutdown), the
    upload gets the error at once and aborts, freeing its thread.
    """
    pipe = _Pipe()
    task = asyncio.ensure_future(upload(pipe.chunks()))
    try:
        async for chunk in chunks:
            await _write_or_fail(pipe, task, chunk)
        await _unless_failed(pipe.close(), task)
        return await task
    except BaseException as exc:
        await _abort(pipe, task, exc)
        raise


async def _abort(pipe: _Pipe, upload: asyncio.Future[Any], error: BaseException) -> None:
    """Make a running upload fail with ``error`` and wait until it has (its thread freed)."""
    if not upload.done():
        pipe.fail(error if isinstance(error, Exception) else ClientDisconnect())
        await asyncio.shield(asyncio.gather(upload, return_exceptions=True))


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except MultipartParseError as exc:
        raise InvalidInputError(f"malformed multipart body: {exc}") from None


async def _write_or_fail(pipe: _Pipe, upload: asyncio.Future[Any] | None, data: bytes) -> None:
    """Write to the pipe, unless the upload fails first (then raise its error)."""
    await _unless_failed(pipe.write(data), upload)


async def _unless_failed(step: Awaitable[None], upload: asyncio.Future[Any] | None) -> None:
    """Await ``step`` (a pipe write or close, which waits while the pipe is full), unless
    the upload ends first: then raise its error (or stop, if it returned)."""
    step_task = asyncio.ensure_future(step)
    if upload is None:
        await step_task
        return
    done, _ = await asyncio.wait({step_task, upload}, return_when=asyncio.FIRST_COMPLETED)
    if step_task not in done:
        step_task.cancel()
        upload.result()
