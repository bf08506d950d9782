"""Request and response bodies (the shapes of refstore 0.3.0, extended)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestBody(BaseModel):
    """A JSON request body: a field it does not know is refused (422), not ignored, so
    that a misspelt or misplaced field cannot pass for a request that did what it says."""

    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    detail: Any = Field(description="What went wrong")
    code: str = Field(description="Stable machine-readable code, e.g. object_not_found")


class UploadResponse(BaseModel):
    uri: str
    success: bool
    message: str | None = None
    size: int | None = Field(None, description="Bytes stored")


class UrlUploadRequest(RequestBody):
    url: str = Field(description="http(s) URL to fetch (non-global addresses are refused)")
    logic_bucket: str | None = None
    path: str | None = None
    use_logical_uri: bool = False
    filename: str | None = Field(None, description="Name to store under (default: from the URL)")


class PresignedURLResponse(BaseModel):
    url: str
    uri: str
    expiry: int | None = None
    method: str = "GET"


class FileInfo(BaseModel):
    logic_bucket: str
    physical_bucket: str
    object_name: str
    size: int
    size_human: str
    content_type: str
    last_modified: datetime | None
    etag: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class FileInfoResponse(BaseModel):
    uri: str
    info: FileInfo | None = None
    exists: bool


class DeleteRequest(RequestBody):
    uris: list[str] = Field(description="URIs to delete (missing objects count as deleted)")


class DeleteResponse(BaseModel):
    deleted: list[str]
    failed: list[str]
    errors: dict[str, str] = Field(default_factory=dict, description="Reason per failed URI")


class FileListItem(BaseModel):
    object_name: str
    size: int
    size_human: str
    last_modified: datetime | None
    is_dir: bool
    s3_uri: str | None
    etag: str | None = None


class ListResponse(BaseModel):
    logic_bucket: str
    files: list[FileListItem]


class HealthResponse(BaseModel):
    status: str
    message: str
    buckets_ok: bool


class ReadyResponse(BaseModel):
    status: str = Field(description="'ready', 'unavailable' (backend) or 'unconfigured' (mapping)")
    backend: str
    reason: str | None = Field(None, description="Why the gateway is not ready")


class GatewayStatusResponse(BaseModel):
    status: str
    endpoint: str
    secure: bool
    enable_bucket_mapping: bool
    default_bucket: str
    bucket_count: int
    backend: str = "minio"
    version: str = ""
    max_upload_bytes: int = 0


class GatewayConfigResponse(BaseModel):
    endpoint: str
    secure: bool
    enable_bucket_mapping: bool
    bucket_map: dict[str, str]
    default_bucket: str
    presigned_expiry: int
    public_url: str | None = None
    backend: str = "minio"
    auth_mode: str = "keys"
    max_upload_bytes: int = 0


class CreateBucketRequest(RequestBody):
    name: str
    location: str | None = None


class CreateBucketResponse(BaseModel):
    success: bool
    name: str
    message: str | None = None


class BucketDetailResponse(BaseModel):
    name: str
    exists: bool
    object_count: int | None = None
    total_size: int | None = None
    total_size_human: str | None = None


class BucketListResponse(BaseModel):
    buckets: list[dict[str, Any]]
    total: int


class DeleteBucketResponse(BaseModel):
    success: bool
    name: str
    message: str | None = None


class MappingVersionModel(RequestBody):
    source: str = ""
    uid: str = ""
    created: str = Field("", description="RFC 3339 creation time of the source")
    generation: int = 0


class BucketMappingResponse(BaseModel):
    enable_bucket_mapping: bool
    bucket_map: dict[str, str]
    reverse_bucket_map: dict[str, str]
    generation: int = Field(description="Local counter, bumped by every applied change")
    hash: str = Field(description="Hash of the mapping's content")
    version: MappingVersionModel | None = None
    changed: bool | None = Field(None, description="On PUT: whether the update applied")


class UpdateBucketMappingRequest(RequestBody):
    enable_bucket_mapping: bool | None = None
    bucket_map: dict[str, str] | None = None
    version: MappingVersionModel | None = Field(
        None, description="Source version; older -> 409, equal -> unchanged"
    )
