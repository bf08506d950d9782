"""Library configuration: one typed model, :class:`StoreConfig`, for the library and the gateway.

The model is the single source of every field, default, bound and check. Three things
derive from it:

- the refstore 0.3.0 dict API: ``RefStore(config_dict)``, ``ConfigValidator.validate_config``
  (types checked strictly, as 0.3.0 did: ``"3600"`` is not an integer);
- ``ConfigValidator.get_config_schema()``: a JSON Schema a standard validator enforces;
- the gateway's settings (``refstore.web.settings.GatewaySettings``), which inherit these
  fields and add only the service's own sections.

A config holds exactly one backend section, ``"minio": {...}`` or ``"local": {"root": "<dir>"}``.
"""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .checksums import ChecksumPolicy
from .errors import ConfigError
from .keys import validate_bucket_name

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
DEFAULT_LOCAL_ROOT = "./refstore-data"
"""Where the embedded local backend keeps its files when nothing else is configured."""
BUCKET_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
SECRET_FIELDS = frozenset({"secret_key", "secret"})


class Section(BaseModel):
    """A config section: unknown keys are errors, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MinioSettings(Section):
    """How to reach MinIO (or another S3 server)."""

    endpoint: str = Field(
        json_schema_extra={"pattern": r"^\s*(https?://)?[^/\s]+:[0-9]+/?\s*$"},
        description="host:port; an http:// or https:// prefix sets 'secure' and is stripped",
    )
    access_key: str = Field(min_length=1, description="Access key")
    secret_key: SecretStr = Field(min_length=1, description="Secret key (never shown)")
    secure: bool = Field(False, description="Use HTTPS")
    region: str | None = Field(None, description="Region; looked up when not set")
    cert_check: bool = Field(True, description="Verify the server's TLS certificate")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect")
    read_timeout: float = Field(60.0, gt=0, description="Seconds to wait for data")

    @model_validator(mode="before")
    @classmethod
    def _scheme_sets_secure(cls, data: Any) -> Any:
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        if isinstance(endpoint, str) and endpoint.strip().startswith(("http://", "https://")):
            scheme, _, rest = endpoint.strip().partition("://")
            data = {**data, "endpoint": rest, "secure": scheme == "https"}
        return data

    @field_validator("endpoint")
    @classmethod
    def _host_and_port(cls, endpoint: str) -> str:
        endpoint = endpoint.strip().rstrip("/")
        host, _, port = endpoint.rpartition(":")
        if not host.strip():
            raise ValueError(f"must be 'host:port', got {endpoint!r}")
        if not (port.isdigit() and 0 < int(port) <= 65535):
            raise ValueError(f"port must be an integer 1-65535, got {port!r}")
        return endpoint

    @field_validator("access_key")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value


class LocalSettings(Section):
    """The embedded local backend: buckets are directories under ``root``."""

    root: str = Field(min_length=1, description="Directory holding the buckets")
    secret: SecretStr | None = Field(
        None, description="HMAC key for presigned links (default: one kept in the root)"
    )

    @field_validator("root")
    @classmethod
    def _a_directory_path(cls, root: str) -> str:
        if not root.strip():
            raise ValueError("must be a directory path")
        return root


class RetrySettings(Section):
    """Retries of transient backend failures, with capped exponential backoff."""

    max_retries: int = Field(3, ge=0, description="Retries after the first attempt")
    base_delay: float = Field(0.2, ge=0, description="Seconds before the first retry")
    max_delay: float = Field(5.0, ge=0, description="Longest wait between two attempts")


class UrlFetchSettings(Section):
    """``upload_from_url``: what the library fetches."""

    block_private: bool = Field(
        False, description="Refuse URLs resolving to non-global addresses (SSRF guard)"
    )
    max_bytes: int | None = Field(None, gt=0, description="Largest body fetched; null: no cap")
    max_redirects: int = Field(5, ge=0, description="Redirects followed")
    deadline: float | None = Field(
        None, gt=0, description="Total seconds for a fetch, DNS included; null: none"
    )


def _exactly_one_backend(schema: dict[str, Any]) -> None:
    """JSON Schema: one of ``minio`` / ``local``, each an object (not null) when present."""
    properties = schema["properties"]
    for backend in ("minio", "local"):
        spec = properties[backend]
        ref = next(option for option in spec.pop("anyOf") if "$ref" in option)
        spec.pop("default", None)
        spec.update(ref)
    schema["oneOf"] = [{"required": ["minio"]}, {"required": ["local"]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"


class StoreConfig(Section):
    """The validated configuration of a :class:`~refstore.RefStore`."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_backend)

    minio: MinioSettings | None = Field(None, description="MinIO backend")
    local: LocalSettings | None = Field(None, description="Embedded local-disk backend")
    enable_bucket_mapping: bool = Field(False, description="Map logical to physical buckets")
    bucket_map: dict[str, str] = Field(
        default_factory=dict,
        description="Logical -> physical bucket names (used when enable_bucket_mapping is on)",
    )
    default_bucket: str = Field(
        "default",
        json_schema_extra={"pattern": BUCKET_NAME_PATTERN},
        description="Bucket used when none is given",
    )
    presigned_expiry: int = Field(
        3600, gt=0, le=MAX_PRESIGN_SECONDS, description="Default presigned URL lifetime (s)"
    )
    public_url: str | None = Field(
        None, description="Presigned URLs are rewritten to this base (reverse proxy, path prefix)"
    )
    public_endpoint: str | None = Field(
        None, description="Presigned URLs are signed for this scheme://host[:port] directly"
    )
    part_size: int = Field(8 * MiB, ge=MIN_PART_SIZE, description="Multipart part size (bytes)")
    max_concurrency: int = Field(32, ge=1, description="Backend calls in flight at once")
    auto_create_buckets: bool = Field(True, description="Create a missing bucket on upload")
    checksums: bool = Field(
        True,
        description="Compute, record and verify the CRC32C of every transfer "
        "(false: none, except of bytes whose checksum a caller declares)",
    )
    sha256: bool = Field(
        True,
        description="Also compute SHA-256 of every upload, answered with it and recorded "
        "where the object is sent in one request (false saves about 0.9 ms of CPU per MB)",
    )

    @property
    def checksum_policy(self) -> ChecksumPolicy:
        return ChecksumPolicy(crc32c=self.checksums, sha256=self.checksums and self.sha256)

    retry: RetrySettings = Field(default_factory=RetrySettings)
    url_fetch: UrlFetchSettings = Field(default_factory=UrlFetchSettings)

    @field_validator("default_bucket")
    @classmethod
    def _a_bucket_name(cls, name: str) -> str:
        validate_bucket_name(name)
        return name

    @field_validator("bucket_map")
    @classmethod
    def _bucket_names(cls, bucket_map: dict[str, str]) -> dict[str, str]:
        for logical, physical in bucket_map.items():
            validate_bucket_name(logical)
            validate_bucket_name(physical)
        return bucket_map

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(url)

    @field_validator("public_endpoint")
    @classmethod
    def _public_endpoint(cls, url: str | None) -> str | None:
        if url is None:
            return None
        url = _http_url(url)
        if urlsplit(url).path not in ("", "/"):
            raise ValueError(
                "must be scheme://host[:port] without a path "
                "(use public_url for a proxy that strips a path prefix)"
            )
        return url.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> StoreConfig:
        if (self.minio is None) == (self.local is None):
            raise ValueError(
                "config needs exactly one backend section: 'minio': {...} or 'local': {'root': ...}"
            )
        if self.enable_bucket_mapping and not self.bucket_map:
            raise ValueError("enable_bucket_mapping is on but bucket_map is empty")
        if self.public_url and self.public_endpoint:
            raise ValueError("set public_url or public_endpoint, not both")
        return self

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> StoreConfig:
        """Validate a refstore config dict (0.3.0's format) into the typed config.

        A ``bucket_map`` given without ``enable_bucket_mapping`` turns mapping on and
        emits a :class:`DeprecationWarning`. The dict is never modified.

        Raises:
            ConfigError: the config is invalid; the message names each field at fault.
        """
        if not isinstance(config, dict):
            raise ConfigError("config must be a dict")
        if config.get("bucket_map") and "enable_bucket_mapping" not in config:
            warnings.warn(
                "'bucket_map' without 'enable_bucket_mapping' turns bucket mapping on; "
                "set enable_bucket_mapping: true explicitly",
                DeprecationWarning,
                stacklevel=3,
            )
            config = {**config, "enable_bucket_mapping": True}
        try:
            return cls.model_validate(config, strict=True)
        except ValidationError as exc:
            raise config_error(exc) from None

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict: every default filled in, secrets in clear."""
        data: dict[str, Any] = _reveal(self.model_dump())
        for backend in ("minio", "local"):
            if data[backend] is None:
                del data[backend]
        return data


def config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """One :class:`ConfigError` naming every field at fault (never showing a secret)."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] != "missing" and not SECRET_FIELDS & {str(p) for p in error["loc"]}:
            value = error.get("input")
            if isinstance(value, (str, int, float, bool)) or value is None:
                message += f" (got {value!r})"
        problems.append(f"{where}: {message}" if where else message)
    return ConfigError(prefix + "; ".join(problems))


def _http_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"has no host: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return url


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    return value
