"""Upload sessions: one object sent as parts that can be retried, sent in parallel, sent
straight to storage through presigned part URLs, and resumed after an interruption.

POST /uploads starts a session and answers its id; parts go to
PUT /uploads/{id}/parts/{n} (or to the URL of GET /uploads/{id}/parts/{n}/url);
GET /uploads/{id} lists the parts stored so far; POST /uploads/{id}/complete makes the
object appear whole; DELETE /uploads/{id} aborts. Only the key that started a session
may continue it, and only until it expires.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from .. import errors
from ..backends.base import MAX_PARTS, UploadedPart
from ..checksums import CRC32C, S3_HEADERS
from ..keys import normalize_key
from ..uploads import MultipartUpload, choose_part_size
from ..uri import decode_uri, encode_uri
from .auth import Principal
from .models import (
    PartURLResponse,
    PendingUploadInfo,
    PendingUploadsResponse,
    UploadCompleteRequest,
    UploadPart,
    UploadResponse,
    UploadSessionResponse,
    UploadStartRequest,
)
from .routes_files import (
    COMMON,
    UPLOAD,
    _errors,
    declared_checksums,
    reachable_link,
    store_raw_body,
    uploaded,
)
from .sessions import UploadSession
from .settings import Action
from .state import Gateway, GatewayDep, ObjectPrincipalDep
from .strict import CheckedBodyRoute
from .transfer import check_declared_length

router = APIRouter(prefix="/uploads", tags=["upload sessions"], route_class=CheckedBodyRoute)
SESSION = (404, 410)
"""What naming a session may answer: no such session (forged, completed, aborted), expired."""
PartNumber = Annotated[int, Path(ge=1, le=MAX_PARTS, description="1..10,000")]


def _session(gateway: Gateway, principal: Principal, upload_id: str) -> UploadSession:
    """The session ``upload_id`` names, if ``principal`` started it and may still write there.

    Raises:
        UploadNotFoundError, UploadExpiredError: as :meth:`SessionSigner.decode`.
        PermissionDeniedError: another key started it, or this key's scope has changed.
    """
    session = gateway.sessions.decode(upload_id, time.time())
    if session.owner != principal.identity:
        raise errors.PermissionDeniedError(
            f"{principal.name} did not start this upload session; only its starter may use it"
        )
    principal.require(Action.write, session.logic_bucket, session.upload.key, gateway.mapping)
    return session


def _answer(gateway: Gateway, session: UploadSession, upload_id: str) -> UploadSessionResponse:
    upload = session.upload
    return UploadSessionResponse(
        upload_id=upload_id,
        uri=session.uri,
        part_size=upload.part_size,
        size=upload.size,
        part_count=upload.part_count,
        expires_at=session.expires,
        checksum_algorithm="CRC32C" if gateway.store.settings.checksums else None,
    )


def _parts(parts: list[UploadedPart]) -> list[UploadPart]:
    return [part_answer(p) for p in parts]


@router.post(
    "",
    response_model=UploadSessionResponse,
    summary="Start an upload session (a multipart upload) of one object",
    responses=_errors(*COMMON, 413),
)
async def start(
    body: UploadStartRequest, gateway: GatewayDep, principal: ObjectPrincipalDep
) -> UploadSessionResponse:
    """The gateway chooses the part size (`part_size` asks for one) within S3's limits:
    5 MiB..`uploads.max_part_size` per part, at most 10,000 parts."""
    bucket, key = decode_uri(body.uri)
    key = normalize_key(key)
    principal.require(Action.write, bucket, key, gateway.mapping)
    settings = gateway.settings.uploads
    largest = settings.max_part_size
    part_size = choose_part_size(body.size, body.part_size or settings.part_size, largest=largest)
    upload = await gateway.store.start_upload(
        encode_uri(bucket, key), size=body.size, part_size=part_size, content_type=body.content_type
    )
    expires = int(time.time()) + settings.session_expiry
    session = UploadSession(upload, principal.identity, expires, bucket)
    return _answer(gateway, session, gateway.sessions.encode(session))


@router.get(
    "",
    response_model=PendingUploadsResponse,
    summary="Multipart uploads in progress in a bucket (admin, or a key's own prefix)",
    responses=_errors(*COMMON, 404),
)
async def pending(
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    logic_bucket: Annotated[str | None, Query(description="Default: default_bucket")] = None,
    prefix: Annotated[str, Query(description="Only keys starting with this")] = "",
) -> PendingUploadsResponse:
    bucket = logic_bucket or gateway.settings.default_bucket
    prefix = principal.scoped_prefix(prefix)
    principal.require(Action.list, bucket, prefix, gateway.mapping)
    listed = await gateway.store.list_uploads(bucket, prefix)
    return PendingUploadsResponse(
        uploads=[
            PendingUploadInfo(
                uri=encode_uri(bucket, u.key), backend_upload_id=u.upload_id, started=u.started
            )
            for u in listed
        ]
    )


@router.get(
    "/{upload_id}",
    response_model=UploadSessionResponse,
    summary="The session and the parts stored so far (to resume)",
    responses=_errors(*COMMON, *SESSION),
)
async def status(
    upload_id: str, gateway: GatewayDep, principal: ObjectPrincipalDep
) -> UploadSessionResponse:
    session = _session(gateway, principal, upload_id)
    answer = _answer(gateway, session, upload_id)
    answer.parts = _parts(await gateway.store.list_parts(session.upload))
    return answer


@router.put(
    "/{upload_id}/parts/{part_number}",
    response_model=UploadPart,
    summary="Store one part (the raw body; Content-Length required); a part sent again "
    "replaces the one before",
    responses=_errors(*COMMON, *SESSION, *UPLOAD),
)
async def put_part(
    upload_id: str,
    part_number: PartNumber,
    request: Request,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
) -> UploadPart:
    session = _session(gateway, principal, upload_id)
    part = await receive_part(gateway, request, session.upload, part_number, principal.name)
    return part_answer(part)


def part_answer(part: UploadedPart) -> UploadPart:
    return UploadPart(
        part_number=part.number, etag=part.etag, size=part.size, checksum_crc32c=part.checksum
    )


async def receive_part(
    gateway: Gateway,
    request: Request,
    upload: MultipartUpload,
    number: int,
    holder: str,
    *,
    checksum_required: bool = False,
) -> UploadedPart:
    """Stream a part's raw body into storage, in an upload slot of ``holder``, checked
    against the checksums the request declares (a part's link must declare its CRC32C,
    as MinIO's own part URLs do)."""
    if upload.part_count is not None:
        upload.part_range(number)  # refuses a part beyond the announced size
    declared = check_declared_length(request, upload.part_size)
    if declared is None:
        raise errors.InvalidInputError("a part needs a Content-Length")
    expected = declared_checksums(request)
    if checksum_required and (expected is None or expected.get(CRC32C) is None):
        raise errors.InvalidInputError(
            f"a part sent through its link needs its CRC32C in {S3_HEADERS[CRC32C]}"
        )

    async def store(body: AsyncIterator[bytes] | bytes) -> UploadedPart:
        return await gateway.uploads.upload_part(upload, number, body, declared, expected)

    return await store_raw_body(gateway, request, holder, upload.part_size, declared, store)


@router.get(
    "/{upload_id}/parts/{part_number}/url",
    response_model=PartURLResponse,
    summary="A URL that stores this part straight into storage, without credentials",
    responses=_errors(*COMMON, *SESSION),
)
async def part_url(
    upload_id: str,
    part_number: PartNumber,
    request: Request,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    expiry_seconds: Annotated[int | None, Query(description="1 s .. 7 days")] = None,
) -> PartURLResponse:
    """The URL is for this part of this upload only, and expires with the session at
    the latest."""
    session = _session(gateway, principal, upload_id)
    principal.require(Action.presign, session.logic_bucket, session.upload.key, gateway.mapping)
    left = max(1, session.expires - int(time.time()))
    expiry = min(expiry_seconds or gateway.settings.presigned_expiry, left)
    url = reachable_link(
        gateway, request, await gateway.store.presign_part(session.upload, part_number, expiry)
    )
    required = [S3_HEADERS[CRC32C]] if gateway.store.settings.checksums else []
    return PartURLResponse(
        url=url, part_number=part_number, expiry=expiry, required_headers=required
    )


@router.post(
    "/{upload_id}/complete",
    response_model=UploadResponse,
    summary="Join the parts into the object, which appears whole (or not at all)",
    responses=_errors(*COMMON, *SESSION, 409, 504),
)
async def complete(
    upload_id: str,
    gateway: GatewayDep,
    principal: ObjectPrincipalDep,
    body: UploadCompleteRequest | None = None,
) -> UploadResponse:
    """Without `parts`, every stored part is joined. A missing, corrupt or too small part,
    or one whose `checksum_crc32c` is not the stored part's, is a 400 (`invalid_part`):
    nothing is created and the session stays open."""
    session = _session(gateway, principal, upload_id)
    parts = None
    if body is not None and body.parts is not None:
        parts = [
            UploadedPart(p.part_number, p.etag, p.size or 0, p.checksum_crc32c) for p in body.parts
        ]
    info = await gateway.store.complete_upload(session.upload, parts)
    return uploaded(session.uri, info)


@router.delete(
    "/{upload_id}",
    summary="Abort the session: its parts are freed and no object appears",
    responses=_errors(*COMMON, *SESSION),
)
async def abort(upload_id: str, gateway: GatewayDep, principal: ObjectPrincipalDep) -> Any:
    session = _session(gateway, principal, upload_id)
    await gateway.store.abort_upload(session.upload)
    return {"upload_id": upload_id, "uri": session.uri, "aborted": True}
