"""``/gateway/*``: status, configuration, buckets and the bucket mapping (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from .. import __version__, errors
from ..mapping import BucketMap, MappingVersion
from .models import (
    BucketDetailResponse,
    BucketListResponse,
    BucketMappingResponse,
    CreateBucketRequest,
    CreateBucketResponse,
    DeleteBucketResponse,
    GatewayConfigResponse,
    GatewayStatusResponse,
    MappingVersionModel,
    UpdateBucketMappingRequest,
)
from .routes_files import _errors
from .state import AdminDep, Gateway, GatewayDep, MappingPrincipalDep, PrincipalDep
from .strict import CheckedBodyRoute

router = APIRouter(prefix="/gateway", tags=["gateway"], route_class=CheckedBodyRoute)
ADMIN = (400, 401, 403, 422, 503)


@router.get(
    "/status",
    response_model=GatewayStatusResponse,
    summary="Backend connection status and service information",
    responses=_errors(401, 503),
)
async def status(gateway: GatewayDep, principal: PrincipalDep) -> GatewayStatusResponse:
    buckets = await gateway.store.bucket_manager.list_buckets()
    gateway.set_backend_up(True)
    return GatewayStatusResponse(
        status="connected",
        endpoint=gateway.endpoint,
        secure=bool(gateway.settings.minio and gateway.settings.minio.secure),
        enable_bucket_mapping=gateway.mapping.enabled,
        default_bucket=gateway.settings.default_bucket,
        bucket_count=len(buckets),
        backend=gateway.settings.backend_name,
        version=__version__,
        max_upload_bytes=gateway.settings.server.max_upload_bytes,
    )


@router.get(
    "/config",
    response_model=GatewayConfigResponse,
    summary="Current configuration (credentials are never shown)",
    responses=_errors(401, 403),
)
async def config(gateway: GatewayDep, admin: AdminDep) -> GatewayConfigResponse:
    settings = gateway.settings
    return GatewayConfigResponse(
        endpoint=gateway.endpoint,
        secure=bool(settings.minio and settings.minio.secure),
        enable_bucket_mapping=gateway.mapping.enabled,
        bucket_map=dict(gateway.mapping.forward),
        default_bucket=settings.default_bucket,
        presigned_expiry=settings.presigned_expiry,
        public_url=settings.public_url,
        backend=settings.backend_name,
        auth_mode=settings.auth.mode,
        max_upload_bytes=settings.server.max_upload_bytes,
    )


@router.post(
    "/uploads/sweep",
    summary="Abort now the uploads of expired sessions (the gateway also does it every "
    "uploads.sweep_interval)",
    responses=_errors(401, 403, 503),
)
async def sweep_uploads(gateway: GatewayDep, admin: AdminDep) -> dict[str, int]:
    return {"aborted": await gateway.sweep_uploads()}


@router.get(
    "/buckets",
    response_model=BucketListResponse,
    summary="All buckets on the backend",
    responses=_errors(*ADMIN),
)
async def list_buckets(gateway: GatewayDep, admin: AdminDep) -> BucketListResponse:
    buckets = await gateway.store.bucket_manager.list_buckets()
    return BucketListResponse(buckets=buckets, total=len(buckets))


@router.post(
    "/buckets",
    response_model=CreateBucketResponse,
    summary="Create a bucket (succeeds if it exists)",
    responses=_errors(*ADMIN),
)
async def create_bucket(
    request: Annotated[CreateBucketRequest, Body()], gateway: GatewayDep, admin: AdminDep
) -> CreateBucketResponse:
    await gateway.store.bucket_manager.create_bucket(request.name, request.location)
    return CreateBucketResponse(success=True, name=request.name, message="Bucket created")


@router.get(
    "/buckets/{name}",
    response_model=BucketDetailResponse,
    summary="Object count and total size of a bucket (`exists` is false for a missing one)",
    responses=_errors(*ADMIN),
)
async def bucket_info(name: str, gateway: GatewayDep, admin: AdminDep) -> BucketDetailResponse:
    try:
        info = await gateway.store.bucket_manager.get_bucket_info(name)
    except errors.BucketNotFoundError:
        # refstore 0.3.0 answered 200 {"name", "exists": false}; its clients rely on it.
        return BucketDetailResponse(name=name, exists=False)
    return BucketDetailResponse(**info)


@router.delete(
    "/buckets/{name}",
    response_model=DeleteBucketResponse,
    summary="Delete a bucket; `force` deletes its objects first",
    responses=_errors(*ADMIN, 409),
)
async def delete_bucket(
    name: str,
    gateway: GatewayDep,
    admin: AdminDep,
    force: Annotated[bool, Query(description="Delete the objects first")] = False,
) -> DeleteBucketResponse:
    await gateway.store.bucket_manager.delete_bucket(name, force=force)
    return DeleteBucketResponse(success=True, name=name, message="Bucket deleted")


def mapping_response(snapshot: BucketMap, changed: bool | None = None) -> BucketMappingResponse:
    version = snapshot.version.to_dict() if snapshot.version else None
    return BucketMappingResponse(
        enable_bucket_mapping=snapshot.enabled,
        bucket_map=dict(snapshot.forward),
        # As in refstore 0.3.0: the reverse map is empty while mapping is off.
        reverse_bucket_map=(
            {p: lg for lg, p in snapshot.forward.items()} if snapshot.enabled else {}
        ),
        generation=snapshot.generation,
        hash=snapshot.hash,
        version=MappingVersionModel(**version) if version else None,
        changed=changed,
    )


@router.get(
    "/bucket-mapping",
    response_model=BucketMappingResponse,
    summary="The bucket mapping in use, with its version",
    responses=_errors(401, 403),
)
async def get_mapping(gateway: GatewayDep, caller: MappingPrincipalDep) -> BucketMappingResponse:
    return mapping_response(gateway.mapping)


@router.put(
    "/bucket-mapping",
    response_model=BucketMappingResponse,
    summary="Replace the bucket mapping atomically (versioned: older -> 409, equal -> no-op)",
    responses=_errors(*ADMIN, 409),
)
async def put_mapping(
    request: Annotated[UpdateBucketMappingRequest, Body()],
    gateway: GatewayDep,
    caller: MappingPrincipalDep,
) -> BucketMappingResponse:
    version = MappingVersion(**request.version.model_dump()) if request.version else None
    require_one_logical_name_per_bucket(request.bucket_map or {})
    changed, snapshot = apply_mapping(
        gateway, request.enable_bucket_mapping, request.bucket_map, version
    )
    return mapping_response(snapshot, changed)


def require_one_logical_name_per_bucket(bucket_map: dict[str, str]) -> None:
    """Refuse two logical names on one physical bucket, as the BucketMapping CRD does: the
    reverse mapping (physical -> logical, for logical URIs) would keep only one of them.

    Raises:
        InvalidInputError: a physical bucket is named twice.
    """
    by_physical: dict[str, list[str]] = {}
    for logical, physical in bucket_map.items():
        by_physical.setdefault(physical, []).append(logical)
    shared = {physical: names for physical, names in by_physical.items() if len(names) > 1}
    if shared:
        physical, names = next(iter(sorted(shared.items())))
        raise errors.InvalidInputError(
            f"logical buckets {sorted(names)} all map to the physical bucket {physical!r}; "
            "each physical bucket may have one logical name"
        )


def apply_mapping(
    gateway: Gateway,
    enabled: bool | None,
    bucket_map: dict[str, str] | None,
    version: MappingVersion | None,
) -> tuple[bool, Any]:
    """Apply a mapping update and publish its generation.

    Raises:
        ConflictError: older version (409 with the current mapping).
    """
    try:
        changed, snapshot = gateway.store.update_bucket_mapping(enabled, bucket_map, version)
    except errors.ConflictError as exc:
        current = mapping_response(gateway.mapping).model_dump(mode="json")
        raise errors.ConflictError(exc.detail, current=current) from exc
    gateway.metrics.mapping_generation.set(snapshot.generation)
    return changed, snapshot
