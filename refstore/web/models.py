"""Request and response bodies (the shapes of refstore 0.3.0, extended)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..checksums import CRC32C, S3_HEADERS


class RequestBody(BaseModel):
    """A JSON request body: a field it does not know is refused (422), not ignored, so
    that a misspelt or misplaced field cannot pass for a request that did what it says."""

    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    detail: Any = Field(description="What went wrong")
    code: str = Field(description="Stable machine-readable code, e.g. object_not_found")


CHECKSUMS = (
    "Base64 checksums of the stored bytes, as S3's x-amz-checksum-* headers carry them: "
    "`crc32c` (unless checksums are off), `sha256` where known"
)


class UploadResponse(BaseModel):
    uri: str
    success: bool
    message: str | None = None
    size: int | None = Field(None, description="Bytes stored")
    checksums: dict[str, str] | None = Field(None, description=CHECKSUMS)


class UrlUploadRequest(RequestBody):
    url: str = Field(description="http(s) URL to fetch (non-global addresses are refused)")
    logic_bucket: str | None = None
    path: str | None = None
    use_logical_uri: bool = False
    filename: str | None = Field(None, description="Name to store under (default: from the URL)")
    checksums: dict[str, str] | None = Field(
        None,
        description="The body's expected checksums (`crc32c`, `sha256`; base64): a mismatch "
        "is a 400 checksum_mismatch and stores nothing",
    )


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
    checksums: dict[str, str] = Field(default_factory=dict, description=CHECKSUMS)


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


class UploadStartRequest(RequestBody):
    uri: str = Field(description="s3://bucket/key of the object to create")
    size: int | None = Field(
        None, ge=0, description="The object's size, if known: sets the part count"
    )
    part_size: int | None = Field(
        None, description="Bytes per part (5 MiB..uploads.max_part_size; default: chosen)"
    )
    content_type: str | None = Field(None, description="Stored with the object")
    checksum_algorithm: Literal["CRC32C"] | None = Field(
        None,
        description="The parts' checksum: CRC32C, the only one (and what the gateway uses "
        "whenever checksums are on)",
    )


class UploadPart(BaseModel):
    part_number: int = Field(description="1..10,000")
    etag: str = Field(description="As the part's upload answered it")
    size: int | None = Field(None, description="Bytes of the part")
    checksum_crc32c: str | None = Field(None, description="The part's CRC32C (base64)")


class UploadSessionResponse(BaseModel):
    upload_id: str = Field(description="The session's id: name it in every later call")
    uri: str
    part_size: int = Field(description="Bytes of every part but the last")
    size: int | None = Field(None, description="The announced size, if any")
    part_count: int | None = Field(None, description="Parts of the announced size")
    expires_at: int = Field(description="Deadline (seconds since the epoch)")
    checksum_algorithm: str | None = Field(
        "CRC32C",
        description="Each part carries this checksum (x-amz-checksum-crc32c on part URLs); "
        "null when the gateway runs with checksums off",
    )
    parts: list[UploadPart] = Field(
        default_factory=list, description="Parts stored so far (on GET)"
    )


class UploadCompleteRequest(RequestBody):
    parts: list[UploadPart] | None = Field(
        None, description="The parts to join, ascending (default: every stored part)"
    )


class PartURLResponse(BaseModel):
    url: str = Field(description="PUT the part's bytes here, without credentials")
    method: str = "PUT"
    required_headers: list[str] = Field(
        default_factory=lambda: [S3_HEADERS[CRC32C]],
        description="Send the part's CRC32C (base64 of its 4 big-endian bytes) in "
        "x-amz-checksum-crc32c: storage checks the bytes against it",
    )
    part_number: int
    expiry: int = Field(description="Seconds the URL stays valid")


class PendingUploadInfo(BaseModel):
    uri: str
    backend_upload_id: str = Field(description="The storage's id of the upload")
    started: datetime | None = None


class PendingUploadsResponse(BaseModel):
    uploads: list[PendingUploadInfo]
