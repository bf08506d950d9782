"""Gateway settings: the library's :class:`~refstore.config.StoreConfig` plus the service's own.

Sources, highest precedence first: keyword arguments, the environment (``REFSTORE_...``,
nested with ``__``, e.g. ``REFSTORE_MINIO__ENDPOINT=minio:9000`` or ``REFSTORE_AUTH__MODE=none``),
then the YAML file given to :func:`load_settings` (``refstore serve --config``) or named by
``REFSTORE_CONFIG``.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ..config import (
    DEFAULT_LOCAL_ROOT,
    MAX_PRESIGN_SECONDS,
    StoreConfig,
    UrlFetchSettings,
    config_error,
)
from ..errors import ConfigError

CONFIG_ENV = "REFSTORE_CONFIG"
MiB = 1024**2
GiB = 1024**3
SERVICE_SECTIONS = frozenset({"auth", "server", "uploads", "bucket_mapping_source"})
"""What the gateway's settings add to the library's config."""

_config_file: ContextVar[str | None] = ContextVar("refstore_config_file", default=None)


class Action(str, Enum):
    """What a project key may do."""

    read = "read"
    write = "write"
    delete = "delete"
    list = "list"
    presign = "presign"


class ApiKey(BaseModel):
    """A project key: which buckets, which key prefix, which actions."""

    key: SecretStr = Field(description="The bearer token the project sends")
    project: str = Field(description="Project name, for logs and metrics")
    buckets: list[str] = Field(description="Logical (or physical) buckets the key may use")
    prefix: str = Field("", description="Object keys must start with this prefix")
    actions: set[Action] = Field(default_factory=lambda: set(Action), description="Allowed actions")

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_directory(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        return f"{prefix}/" if prefix else ""


def _tokens(listed: list[SecretStr], file: Path | None) -> list[str]:
    tokens = [t.get_secret_value() for t in listed]
    if file:
        tokens += [line.strip() for line in file.read_text().splitlines() if line.strip()]
    return tokens


class AuthSection(BaseModel):
    mode: Literal["keys", "none"] = Field(
        "keys", description="'keys': bearer tokens required; 'none': open to anyone (logged)"
    )
    admin_tokens: list[SecretStr] = Field(default_factory=list, description="Admin bearer tokens")
    admin_tokens_file: Path | None = Field(None, description="File with one admin token per line")
    api_keys: list[ApiKey] = Field(default_factory=list, description="Project keys")
    api_keys_file: Path | None = Field(None, description="YAML list of project keys")
    mapping_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Tokens that may read and update /gateway/bucket-mapping and nothing else "
        "(the operator's)",
    )
    mapping_tokens_file: Path | None = Field(
        None, description="File with one bucket-mapping token per line"
    )

    def all_admin_tokens(self) -> list[str]:
        return _tokens(self.admin_tokens, self.admin_tokens_file)

    def all_mapping_tokens(self) -> list[str]:
        return _tokens(self.mapping_tokens, self.mapping_tokens_file)

    def all_api_keys(self) -> list[ApiKey]:
        keys = list(self.api_keys)
        if self.api_keys_file:
            loaded = yaml.safe_load(self.api_keys_file.read_text()) or []
            keys += [ApiKey.model_validate(item) for item in loaded]
        return keys


class ServerSection(BaseModel):
    max_upload_bytes: int = Field(5 * GiB, gt=0, description="Largest accepted upload body")
    max_form_parts: int = Field(
        64, gt=0, description="Most parts (text fields and the file) of an upload form"
    )
    max_form_header_bytes: int = Field(
        16 * 1024, gt=0, description="Largest headers of one part of an upload form"
    )
    max_form_field_bytes: int = Field(
        64 * 1024, gt=0, description="Largest text field of an upload form"
    )
    max_json_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Largest JSON request body (delete, mapping...)"
    )
    storage_threads: int | None = Field(
        None,
        gt=0,
        description="Threads for short backend calls: info, list, delete, reads, presigning "
        "(default: max_concurrency); uploads have threads of their own",
    )
    max_queued_calls: int = Field(
        256,
        gt=0,
        description="Backend calls that may wait for a storage thread; past that a request is "
        "refused at once with 503 (code busy) and Retry-After",
    )
    max_concurrent_uploads: int = Field(
        64,
        gt=0,
        description="Uploads in flight in this process, each with a thread of its own (so "
        "uploads never take the short calls' threads); past that 503 (busy) and Retry-After",
    )
    max_uploads_per_key: int | None = Field(
        None,
        gt=0,
        description="Uploads in flight for one API key (with auth.mode none: for everyone); "
        "past that 429 (too_many_requests) and Retry-After. Default: half of "
        "max_concurrent_uploads, so one project cannot take every upload slot",
    )
    body_idle_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an upload body may send nothing before it is refused with 408 "
        "(nothing is stored)",
    )
    min_body_rate: int = Field(
        4096,
        ge=0,
        description="Bytes per second an upload body must average over each "
        "body_rate_window while the gateway waits for it, else 408; 0: no minimum",
    )
    body_rate_window: float = Field(
        30.0, gt=0, description="Seconds over which min_body_rate is measured"
    )
    ready_timeout: float = Field(
        3.0, gt=0, description="Seconds /ready waits for the backend before answering 503"
    )
    shutdown_grace: int = Field(
        25,
        gt=0,
        description="Seconds requests in flight get to finish after SIGTERM; then they are "
        "cancelled (uploads abort, nothing half stored) and the process exits. Keep it below "
        "the pod's terminationGracePeriodSeconds",
    )
    retry_after: int = Field(
        2, gt=0, description="Retry-After (seconds) of a request refused for capacity"
    )

    @property
    def uploads_per_key(self) -> int:
        """Uploads one key may have in flight (never more than the total)."""
        if self.max_uploads_per_key is None:
            return max(1, self.max_concurrent_uploads // 2)
        return min(self.max_uploads_per_key, self.max_concurrent_uploads)


class UploadsSection(BaseModel):
    """Upload sessions (multipart uploads that can be resumed): ``/uploads``."""

    session_expiry: int = Field(
        24 * 3600,
        ge=1,
        le=MAX_PRESIGN_SECONDS,
        description="Seconds an upload session may stay open; afterwards it answers 410 and "
        "the sweeper aborts it, freeing its parts",
    )
    part_size: int = Field(
        16 * MiB,
        ge=5 * MiB,
        description="Default part size (raised for objects that need more than 10,000 parts)",
    )
    max_part_size: int = Field(
        512 * MiB,
        ge=5 * MiB,
        le=5 * GiB,
        description="Largest part size; a part relayed by the gateway is held in memory once",
    )
    sweep_interval: float = Field(
        3600.0, gt=0, description="Seconds between sweeps that abort expired sessions' uploads"
    )
    session_secret: SecretStr | None = Field(
        None,
        description="Key that signs session ids; every replica needs the same. Default: "
        "derived from the backend's secret (MinIO secret key, local storage secret)",
    )


class GatewayUrlFetchSettings(UrlFetchSettings):
    """``url_fetch`` as a shared service needs it: guarded by default."""

    block_private: bool = Field(
        True, description="Refuse URLs resolving to non-global addresses (SSRF guard)"
    )
    deadline: float | None = Field(
        300.0, gt=0, description="Total seconds for a fetch, DNS included; null: none"
    )


class GatewaySettings(BaseSettings, StoreConfig):
    """Everything the gateway reads at start-up: the library's fields, and the service's own."""

    model_config = SettingsConfigDict(
        env_prefix="REFSTORE_", env_nested_delimiter="__", extra="forbid", json_schema_extra=None
    )

    bucket_mapping_source: Literal["config", "operator"] = Field(
        "config",
        description="'operator': the mapping is pushed by the operator; until the first "
        "versioned push /ready answers 503 and object requests are refused with 503",
    )
    auth: AuthSection = Field(default_factory=AuthSection)
    server: ServerSection = Field(default_factory=ServerSection)
    url_fetch: GatewayUrlFetchSettings = Field(default_factory=GatewayUrlFetchSettings)
    uploads: UploadsSection = Field(default_factory=UploadsSection)

    @model_validator(mode="before")
    @classmethod
    def _local_backend_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("minio") is None and data.get("local") is None:
            data = {**data, "local": {"root": DEFAULT_LOCAL_ROOT}}
        return data

    @property
    def backend_name(self) -> str:
        return "minio" if self.minio else "local"

    @property
    def storage_threads(self) -> int:
        """Threads (and backend connections) for storage calls."""
        return self.server.storage_threads or self.max_concurrency

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"configuration file {config_file}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def store_config(self) -> StoreConfig:
        """The library configuration these settings hold, every field kept."""
        fields = {name: getattr(self, name) for name in StoreConfig.model_fields}
        fields["max_concurrency"] = self.storage_threads
        fields["url_fetch"] = UrlFetchSettings(**self.url_fetch.model_dump())
        return StoreConfig(**fields)


def load_settings(
    config_file: str | os.PathLike[str] | None = None, **overrides: Any
) -> GatewaySettings:
    """Settings from ``config_file`` (or ``$REFSTORE_CONFIG``), the environment and overrides.

    Raises:
        ConfigError: the file is missing or the settings are invalid.
    """
    token = _config_file.set(os.fspath(config_file) if config_file is not None else None)
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        raise config_error(exc, "invalid gateway settings: ") from None
    finally:
        _config_file.reset(token)


def settings_from_library_config(config: dict[str, Any]) -> GatewaySettings:
    """Gateway settings for a refstore config dict (``init_web_service``).

    The dict is the library's, checked as :class:`~refstore.ConfigValidator` checks it
    (refstore 0.3.0's rules and messages), plus the service's own sections
    (:data:`SERVICE_SECTIONS`). Every library field is kept.

    Raises:
        ConfigError: the config is invalid.
    """
    if not isinstance(config, dict):
        raise ConfigError("config must be a dict")
    library = StoreConfig.from_dict({k: v for k, v in config.items() if k not in SERVICE_SECTIONS})
    return load_settings(**{**config, "enable_bucket_mapping": library.enable_bucket_mapping})
