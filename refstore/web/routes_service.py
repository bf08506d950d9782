"""Service endpoints: ``/``, ``/health`` (liveness), ``/ready``, ``/metrics``, and the
presigned links of the local backend."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__, errors
from ..uploads import MultipartUpload
from ..uri import encode_uri
from .models import HealthResponse, ReadyResponse, UploadPart, UploadResponse
from .responses import object_response
from .routes_files import (
    OBJECT_BYTES,
    _errors,
    exact_path_key,
    receive_raw,
    uploaded,
)
from .routes_uploads import part_answer, receive_part
from .state import AWAITING_MAPPING, GatewayDep

router = APIRouter(tags=["service"])


@router.get("/", summary="API information")
async def root() -> dict[str, str]:
    return {
        "name": "RefStore API",
        "version": __version__,
        "description": "Object storage gateway: streaming uploads and downloads on MinIO",
        "docs": "/docs",
        "health": "/health",
        "gateway": "/gateway/status",
    }


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Liveness: answers while the process runs (no backend call)",
)
async def health(gateway: GatewayDep) -> HealthResponse:
    return HealthResponse(status="ok", message="RefStore is running", buckets_ok=gateway.backend_up)


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness: 200 when the storage backend answers (and, with "
    "bucket_mapping_source: operator, once the operator has pushed the mapping), else 503",
    responses={503: {"model": ReadyResponse, "description": "Not ready; `reason` says why"}},
)
async def ready(gateway: GatewayDep) -> Response:
    backend = gateway.settings.backend_name
    if gateway.awaiting_mapping:
        return _not_ready("unconfigured", backend, AWAITING_MAPPING)
    if await gateway.check_backend(gateway.settings.server.ready_timeout):
        return JSONResponse({"status": "ready", "backend": backend})
    return _not_ready("unavailable", backend, f"the {backend} backend does not answer")


def _not_ready(status: str, backend: str, reason: str) -> JSONResponse:
    return JSONResponse(
        {"status": status, "backend": backend, "reason": reason},
        status_code=503,
        headers={"Retry-After": "5"},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(gateway: GatewayDep) -> Response:
    return gateway.metrics.render()


local_links = APIRouter(prefix="/presigned", tags=["presigned links (local backend)"])


def _verify(
    gateway: GatewayDep, method: str, bucket: str, key: str, expires: str, signature: str
) -> str:
    uri = encode_uri(bucket, key)
    gateway.store.verify_presigned_link(method, bucket, key, expires, signature)
    return uri


LinkQuery = Annotated[str, Query(description="Set by the link itself")]


@local_links.get(
    "/{bucket}/{key:path}",
    summary="Download through a presigned link (expired or tampered: 403)",
    responses={**_errors(400, 403, 404, 416), **OBJECT_BYTES},
    response_class=Response,
)
async def presigned_get(
    bucket: str,
    key: str,
    request: Request,
    gateway: GatewayDep,
    expires: LinkQuery,
    signature: LinkQuery,
    method: LinkQuery = "GET",
) -> Response:
    uri = _verify(gateway, "GET", bucket, exact_path_key(request, key), expires, signature)
    return await object_response(gateway, uri, request)


@local_links.put(
    "/{bucket}/{key:path}",
    response_model=UploadResponse | UploadPart,
    summary="Upload the body through a presigned PUT link (expired or tampered: 403)",
    responses=_errors(400, 403, 408, 413, 429, 503, 504),
)
async def presigned_put(
    bucket: str,
    key: str,
    request: Request,
    gateway: GatewayDep,
    expires: LinkQuery,
    signature: LinkQuery,
    method: LinkQuery = "PUT",
    upload_id: Annotated[str | None, Query(description="Set by a part's link")] = None,
    part: Annotated[int | None, Query(description="Set by a part's link")] = None,
) -> UploadResponse | UploadPart:
    """A part's link (of an upload session) stores that part and answers its ETag."""
    key = exact_path_key(request, key)
    if upload_id is None and part is None:
        uri = _verify(gateway, "PUT", bucket, key, expires, signature)
        info = await receive_raw(gateway, request, uri, f"presigned:{bucket}")
        return uploaded(uri, info)
    if upload_id is None or part is None:
        raise errors.PermissionDeniedError("malformed presigned link")
    gateway.store.verify_presigned_link("PUT", bucket, key, expires, signature, (upload_id, part))
    upload = MultipartUpload(bucket, key, upload_id, gateway.settings.uploads.max_part_size)
    stored = await receive_part(
        gateway,
        request,
        upload,
        part,
        f"presigned:{bucket}",
        checksum_required=gateway.store.settings.checksums,
    )
    return part_answer(stored)
