"""File endpoints of refstore 0.3.0 (same paths, parameters and JSON), streaming."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect

from .. import errors
from ..backends.base import ObjectInfo
from ..checksums import Checksums, as_checksums, from_headers
from ..keys import build_object_key, normalize_key, unquote_strict
from ..uri import decode_uri, encode_uri
from .auth import Principal
from .models import (
    DeleteRequest,
    DeleteResponse,
    ErrorResponse,
    FileInfo,
    FileInfoResponse,
    ListResponse,
    PresignedURLResponse,
    UploadResponse,
    UrlUploadRequest,
)
from .responses import object_response
from .settings import Action
from .state import Gateway, GatewayDep, ObjectPrincipalDep
from .strict import CheckedBodyRoute
from .transfer import (
    CHUNK,
    BodyCounter,
    BodyPace,
    check_declared_length,
    pump,
    raw_body,
    stream_multipart,
)

logger = logging.getLogger("refstore.web")


class _AnyPathConvertor(PathConvertor):
    """``{name:path}`` that matches newlines too (Starlette's stops at one): a key with a
    newline then reaches the key check, which refuses it with 400, instead of matching
    no route (404, "no such object", even for an upload)."""

    regex = "(?s:.*)"


# Before any route is declared: routes compile their templates when they are made.
register_url_convertor("path", _AnyPathConvertor())


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid URI, key, path or parameter",
        401: "Missing or unknown bearer token",
        403: "The key may not do this here (bucket, prefix or action out of scope)",
        404: "No such object, bucket or upload session",
        408: "The body came too slowly (server.body_idle_timeout, server.min_body_rate)",
        409: "Conflicts with the current state",
        410: "The upload session expired",
        413: "Body larger than server.max_upload_bytes",
        416: "Range does not overlap the object",
        422: "Malformed request parameters",
        429: "This key has as many uploads in flight as it may (see Retry-After)",
        502: "The remote source failed",
        503: "Storage backend unreachable, or the gateway at capacity (see Retry-After)",
        504: "The storage took the write but did not answer in time: it may have happened",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


COMMON = (400, 401, 403, 422, 503)
_BINARY = {"schema": {"type": "string", "format": "binary"}}
OBJECT_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The object, with its stored Content-Type", "content": {"*/*": _BINARY}},
    206: {"description": "The byte range asked for (Range)", "content": {"*/*": _BINARY}},
    304: {"description": "Not modified (If-None-Match matches the ETag)"},
}
"""The answers of a download besides errors."""
UPLOAD = (408, 409, 413, 429, 504)
"""What an upload may answer besides :data:`COMMON`."""

router = APIRouter(tags=["files"], route_class=CheckedBodyRoute)
CLIENT_GONE = "the client disconnected before the upload finished"
FILES_PATH = "/files/{bucket}/{key:path}"
_BOOLEAN = TypeAdapter(bool)


def uploaded(uri: str, info: ObjectInfo) -> UploadResponse:
    return UploadResponse(
        uri=uri,
        success=True,
        message="File uploaded successfully",
        size=info.size,
        checksums=info.checksums.as_dict() or None,
    )


def declared_checksums(request: Request, *, whole_body: bool = True) -> Checksums | None:
    """The checksums a request declares for the bytes it sends: ``x-amz-checksum-*``,
    and ``Content-Digest`` when the body is those bytes (not a form around them).

    Raises:
        InvalidInputError: a malformed declaration.
    """
    field = "content-digest" if whole_body else None
    return from_headers(request.headers, digest_field=field) or None


def parse_bool(value: str) -> bool | None:
    """A boolean parameter, read as FastAPI reads the routes' ``bool`` query parameters
    (pydantic: true/false, 1/0, yes/no, on/off, t/f, y/n, in any case); None for any
    other value. The fast routes and the upload form read their flags with it."""
    try:
        return _BOOLEAN.validate_python(value)
    except ValidationError:
        return None


def exact_path_key(request: Request, key: str) -> str:
    """The key of a ``/files/{bucket}/{key}`` request as the client sent it, in NFC.

    The server decodes the path leniently (U+FFFD for what is not UTF-8), and the
    router takes ``key`` from that; the raw path must decode strictly, and then both
    decodings agree. A server that gives no raw path cannot show that a U+FFFD was
    sent, so such a key is refused there.

    Raises:
        InvalidKeyError: the path's escapes are not UTF-8, or the key is not valid as
            sent (an empty segment from a leading, trailing or doubled '/', '.', '..'...).
    """
    raw = request.scope.get("raw_path")
    if raw is not None:
        unquote_strict(raw.partition(b"?")[0])
    elif "\ufffd" in key:
        raise errors.InvalidKeyError(f"U+FFFD in a key this server cannot verify: {key!r}")
    # Checked as sent: building its URI would drop outer slashes, naming another object.
    return normalize_key(key)


def _upload_target(
    gateway: Gateway,
    principal: Principal,
    logic_bucket: str | None,
    path: str | None,
    filename: str,
) -> tuple[str, str]:
    """(logical bucket, key) of an upload, checked against the caller's scope.

    A scoped key uploading without a path gets its generated key under its prefix.
    """
    bucket = logic_bucket or gateway.settings.default_bucket
    key = build_object_key(filename, path)
    if not path and principal.prefix:
        key = principal.prefix + key
    principal.require(Action.write, bucket, key, gateway.mapping)
    return bucket, key


def _staging_bucket(gateway: Gateway, principal: Principal, logic_bucket: str | None) -> str | None:
    """Bucket for a file part whose ``logic_bucket`` field may still follow: a scoped key
    not allowed in the default bucket stages in its own bucket (under its prefix)."""
    if logic_bucket or principal.admin or not principal.buckets:
        return logic_bucket
    mapping = gateway.mapping
    allowed = {mapping.physical(name) for name in principal.buckets}
    if mapping.physical(gateway.settings.default_bucket) in allowed:
        return None
    return sorted(principal.buckets)[0]


async def _discard(gateway: Gateway, uris: list[str]) -> None:
    """Delete what a failed upload stored (best effort: the error being raised wins)."""
    for uri in uris:
        with contextlib.suppress(errors.RefStoreError):
            await gateway.store.delete_file(uri)


def _result_uri(
    gateway: Gateway, bucket: str, physical: str, key: str, use_logical_uri: bool
) -> str:
    """The URI an upload answers with: ``bucket`` as the client named it when it asks for
    logical URIs (and mapping is on), else ``physical``, the bucket the store wrote to
    (not the mapping's answer now: an update may have come during the upload)."""
    logical = use_logical_uri and gateway.mapping.enabled
    return encode_uri(bucket if logical else physical, key)


def _authorize_uri(gateway: Gateway, principal: Principal, action: Action, uri: str) -> None:
    bucket, key = decode_uri(uri)
    principal.require(action, bucket, key, gateway.mapping)


def _guess_type(filename: str, given: str | None) -> str:
    if given and given != "application/octet-stream":
        return given
    return mimetypes.guess_type(filename)[0] or given or "application/octet-stream"


@router.post(
    "/upload",
    response_model=UploadResponse,
    summary="Upload a file (multipart form), streamed to storage",
    responses=_errors(*COMMON, *UPLOAD),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "logic_bucket": {
                                "type": "string",
                                "description": "Bucket (default: default_bucket)",
                            },
                            "path": {
                                "type": "string",
                                "description": "Directory; key = path/filename",
                            },
                            "use_logical_uri": {
                                "type": "boolean",
                                "description": "Return the logical URI",
                            },
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request, gateway: GatewayDep, principal: ObjectPrincipalDep
) -> UploadResponse:
    """Form fields `logic_bucket`, `path`, `use_logical_uri` and the `file` part (send the
    fields first). Without `path` the key is `YYYY/MM/DD/<uuid><ext>`."""
    limit = gateway.settings.server.max_upload_bytes
    check_declared_length(request, limit)
    with gateway.upload_slots.hold(principal.name):
        return await _receive_form(request, gateway, principal, limit)


async def _receive_form(
    request: Request, gateway: Gateway, principal: Principal, limit: int
) -> UploadResponse:
    staged: list[str] = []  # what the file part was written to; removed if the upload fails
    expected = declared_checksums(request, whole_body=False)

    async def on_file(fields: dict[str, str], filename: str, content_type: str, chunks: Any) -> Any:
        logic_bucket = _staging_bucket(gateway, principal, fields.get("logic_bucket"))
        bucket, key = _upload_target(gateway, principal, logic_bucket, fields.get("path"), filename)
        uri = encode_uri(bucket, key)
        info = await gateway.uploads.upload_to(
            uri, chunks, _guess_type(filename, content_type), checksums=expected
        )
        staged.append(uri)
        return fields, filename, bucket, key, info

    try:
        fields, (early, filename, bucket, key, info) = await stream_multipart(
            request, BodyCounter(limit), on_file, gateway.settings.server
        )
        final_bucket = fields.get("logic_bucket") or gateway.settings.default_bucket
        if final_bucket != bucket or fields.get("path") != early.get("path"):
            # Fields sent after the file part: move the object to where they say.
            bucket, key = _upload_target(
                gateway, principal, fields.get("logic_bucket"), fields.get("path"), filename
            )
            physical = gateway.mapping.physical(bucket)
            await gateway.store.copy(staged[0], encode_uri(bucket, key))
            await gateway.store.delete_file(staged.pop())
        else:
            physical = info.bucket
    except ClientDisconnect:
        await _discard(gateway, staged)
        logger.info("client went away during an upload; nothing was stored")
        raise errors.InvalidInputError(CLIENT_GONE) from None
    except BaseException:
        await _discard(gateway, staged)
        raise
    gateway.metrics.bytes_in.inc(info.size)
    logical = parse_bool(fields.get("use_logical_uri", "").strip()) is True  # else physical
    uri = _result_uri(gateway, bucket, physical, key, logical)
    return uploaded(uri, info)


@router.put(
    FILES_PATH,
    response_model=UploadResponse,
    summary="Upload the request body to an exact key (raw body, never touches disk)",
    responses=_errors(*COMMON, *UPLOAD),
)
async def upload_raw(
    bucket: str,
    key: str,
    request: Request,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    use_logical_uri: bool = False,
) -> UploadResponse:
    """The body is streamed to `s3://{bucket}/{key}`; `Content-Type` is stored with it.
    The key must be UTF-8 (else 400 `invalid_key`) and is stored in Unicode NFC."""
    key = exact_path_key(request, key)
    uri = encode_uri(bucket, key)
    principal.require(Action.write, bucket, key, gateway.mapping)
    info = await receive_raw(gateway, request, uri, principal.name)
    return uploaded(_result_uri(gateway, bucket, info.bucket, key, use_logical_uri), info)


async def receive_raw(gateway: Gateway, request: Request, uri: str, holder: str) -> Any:
    """Stream a raw request body into ``uri``, enforcing the size cap and the pace, in an
    upload slot of ``holder`` (the principal's name)."""
    limit = gateway.settings.server.max_upload_bytes
    declared = check_declared_length(request, limit)
    content_type = _guess_type(uri, request.headers.get("content-type"))
    expected = declared_checksums(request)

    async def store(body: AsyncIterator[bytes] | bytes) -> Any:
        return await gateway.uploads.upload_to(
            uri, body, content_type, length=declared, checksums=expected
        )

    return await store_raw_body(gateway, request, holder, limit, declared, store)


class _Stored(Protocol):
    @property
    def size(self) -> int: ...


StoredT = TypeVar("StoredT", bound=_Stored)


async def store_raw_body(
    gateway: Gateway,
    request: Request,
    holder: str,
    limit: int,
    declared: int | None,
    store: Callable[[AsyncIterator[bytes] | bytes], Awaitable[StoredT]],
) -> StoredT:
    """Hand a raw request body of at most ``limit`` bytes (``declared`` by its
    Content-Length, if any) to ``store``, at the server's minimum pace, in an upload slot of
    ``holder``; count the bytes stored."""
    server = gateway.settings.server
    with gateway.upload_slots.hold(holder):
        chunks = raw_body(request, BodyCounter(limit), BodyPace.of(server))
        try:
            if declared is not None and declared <= CHUNK:
                # A body of one chunk at most is gathered here, as raw_body would do
                # anyway: the worker thread then needs no trip back to the event loop.
                stored = await store(b"".join([chunk async for chunk in chunks]))
            else:
                stored = await pump(chunks, store)
        except ClientDisconnect:
            raise errors.InvalidInputError(CLIENT_GONE) from None
    gateway.metrics.bytes_in.inc(stored.size)
    return stored


def reachable_link(gateway: Gateway, request: Request, url: str) -> str:
    """``url`` as the client can use it: the local backend's links are served by this
    gateway, so they point where the client reached it (unless ``public_url`` says)."""
    if gateway.settings.minio is not None or gateway.settings.public_url is not None:
        return url
    link = urlsplit(url)
    return f"{str(request.base_url).rstrip('/')}{link.path}?{link.query}"


@router.get(
    "/download",
    summary="Download a file (streamed; Range, ETag and If-None-Match supported)",
    responses={**_errors(*COMMON, 404, 416), **OBJECT_BYTES},
    response_class=Response,
)
async def download(
    request: Request,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    uri: Annotated[str, Query(description="s3://bucket/key")],
) -> Response:
    bucket, key = decode_uri(uri)
    return await read_object(gateway, principal, request, bucket, key)


@router.get(
    FILES_PATH,
    summary="Download by bucket and key (same as /download)",
    responses={**_errors(*COMMON, 404, 416), **OBJECT_BYTES},
    response_class=Response,
)
async def download_path(
    bucket: str, key: str, request: Request, gateway: GatewayDep, principal: ObjectPrincipalDep
) -> Response:
    return await read_object(gateway, principal, request, bucket, exact_path_key(request, key))


async def read_object(
    gateway: Gateway, principal: Principal, request: Request, bucket: str, key: str
) -> Response:
    """The object's bytes, if the key may read it (both download routes)."""
    uri = encode_uri(bucket, key)
    principal.require(Action.read, bucket, key, gateway.mapping)
    return await object_response(gateway, uri, request)


@router.get(
    "/presigned-url",
    response_model=PresignedURLResponse,
    summary="A URL that allows GET (download) or PUT (upload) without credentials",
    responses=_errors(*COMMON, 404),
)
async def presigned_url(
    request: Request,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    uri: Annotated[str, Query(description="s3://bucket/key")],
    expiry_seconds: Annotated[int | None, Query(description="1 s .. 7 days")] = None,
    method: Annotated[str, Query(description="GET or PUT")] = "GET",
) -> PresignedURLResponse:
    bucket, key = decode_uri(uri)
    principal.require(Action.presign, bucket, key, gateway.mapping)
    action = Action.write if method.upper() == "PUT" else Action.read
    principal.require(action, bucket, key, gateway.mapping)
    url = reachable_link(
        gateway, request, await gateway.store.get_presigned_url(uri, expiry_seconds, method)
    )
    expiry = expiry_seconds or gateway.settings.presigned_expiry
    return PresignedURLResponse(url=url, uri=uri, expiry=expiry, method=method.upper())


@router.get(
    "/info",
    response_model=FileInfoResponse,
    summary="File metadata; `exists` is false (and `info` null) for a missing object",
    responses=_errors(*COMMON, 404),
)
async def file_info(
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    uri: Annotated[str, Query(description="s3://bucket/key")],
) -> FileInfoResponse:
    _authorize_uri(gateway, principal, Action.read, uri)
    try:
        info = await gateway.store.get_file_info(uri)
    except errors.ObjectNotFoundError:
        return FileInfoResponse(uri=uri, info=None, exists=False)
    return FileInfoResponse(uri=uri, info=FileInfo(**info), exists=True)


@router.delete(
    "/delete",
    response_model=DeleteResponse,
    summary="Delete files in one batch (missing objects count as deleted)",
    responses=_errors(*COMMON, 413, 504),
)
async def delete(
    request_body: Annotated[DeleteRequest, Body()],
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
) -> DeleteResponse:
    """Out-of-scope URIs refuse the whole request (403) before anything is deleted;
    invalid URIs are reported in `failed`."""
    for uri in request_body.uris:
        try:
            bucket, key = decode_uri(uri)
        except errors.URIParseError:
            continue
        principal.require(Action.delete, bucket, key, gateway.mapping)
    result = await gateway.store.delete_files(request_body.uris)
    return DeleteResponse(**result)


@router.get(
    "/list",
    response_model=ListResponse,
    summary="List files under a prefix (a scoped key is narrowed to its own prefix)",
    responses=_errors(*COMMON, 404),
)
async def list_files(
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    logic_bucket: str | None = None,
    prefix: str = "",
    recursive: bool = True,
    use_logical_uri: bool = False,
) -> ListResponse:
    bucket = logic_bucket or gateway.settings.default_bucket
    prefix = principal.scoped_prefix(prefix)
    principal.require(Action.list, bucket, prefix, gateway.mapping)
    files = await gateway.store.list_files(bucket, prefix, recursive, use_logical_uri)
    return ListResponse(logic_bucket=bucket, files=files)


async def upload_from_url(
    body: UrlUploadRequest, gateway: GatewayDep, principal: ObjectPrincipalDep
) -> UploadResponse:
    """Fetch an http(s) URL into storage. Non-global addresses are refused on every
    resolved address and redirect hop; the body is capped and streamed."""
    from ..urlfetch import open_url

    # Scope is decided by bucket and path, so check it before fetching anything.
    _upload_target(gateway, principal, body.logic_bucket, body.path, body.filename or "probe")
    settings = gateway.settings.url_fetch
    expected = as_checksums(body.checksums)
    cap = gateway.settings.server.max_upload_bytes
    if settings.max_bytes:
        cap = min(cap, settings.max_bytes)

    def fetch_and_store() -> tuple[str, str, Any]:
        with open_url(
            body.url,
            deadline=settings.deadline,
            max_bytes=cap,
            max_redirects=settings.max_redirects,
            block_private=True,
        ) as source:
            bucket, key = _upload_target(
                gateway, principal, body.logic_bucket, body.path, body.filename or source.filename
            )
            info = gateway.uploads.sync.upload_to(
                encode_uri(bucket, key),
                source,  # type: ignore[arg-type]
                source.content_type,
                length=source.length,
                checksums=expected,
            )
            return bucket, key, info

    with gateway.upload_slots.hold(principal.name):
        bucket, key, info = await gateway.uploads.run_blocking(fetch_and_store)
    gateway.metrics.bytes_in.inc(info.size)
    uri = _result_uri(gateway, bucket, info.bucket, key, body.use_logical_uri)
    return uploaded(uri, info)


def register_url_upload(api: APIRouter | FastAPI) -> None:
    """Expose ``POST /upload-from-url`` (only done when the SSRF guard is on)."""
    router = api.router if isinstance(api, FastAPI) else api
    router.add_api_route(
        "/upload-from-url",
        upload_from_url,
        methods=["POST"],
        response_model=UploadResponse,
        summary="Fetch a URL into storage (SSRF-guarded)",
        route_class_override=CheckedBodyRoute,
        responses=_errors(*COMMON, 409, 413, 429, 502),
        tags=["files"],
    )
