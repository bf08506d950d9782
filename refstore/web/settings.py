"""Gateway settings: environment (``REFSTORE_...``, nested with ``__``) over a YAML file.

The YAML file is the one named by ``REFSTORE_CONFIG`` (or ``refstore serve --config``);
environment variables override it, e.g. ``REFSTORE_MINIO__ENDPOINT=minio:9000`` or
``REFSTORE_AUTH__MODE=none``.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ..errors import ConfigError

CONFIG_ENV = "REFSTORE_CONFIG"
GiB = 1024**3


class Action(str, Enum):
    """What a project key may do."""

    read = "read"
    write = "write"
    delete = "delete"
    list = "list"
    presign = "presign"


class MinioSection(BaseModel):
    endpoint: str = Field(description="MinIO host:port; an http(s):// prefix sets secure")
    access_key: str = Field(description="MinIO access key")
    secret_key: SecretStr = Field(description="MinIO secret key (never shown)")
    secure: bool = Field(False, description="Use HTTPS to reach MinIO")
    region: str | None = Field(None, description="Region; looked up when empty")
    cert_check: bool = Field(True, description="Verify MinIO's TLS certificate")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to MinIO")
    read_timeout: float = Field(60.0, gt=0, description="Seconds to wait for MinIO data")


class LocalSection(BaseModel):
    root: str = Field("./refstore-data", description="Directory of the embedded local backend")
    secret: SecretStr | None = Field(None, description="HMAC key for presigned links")


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
    storage_threads: int = Field(32, gt=0, description="Threads for backend calls")


class UrlFetchSection(BaseModel):
    block_private: bool = Field(True, description="Refuse non-global addresses (SSRF guard)")
    max_bytes: int | None = Field(None, description="Largest body fetched from a URL")
    max_redirects: int = Field(5, ge=0, description="Redirects followed")
    deadline: float | None = Field(300.0, description="Total seconds for a URL fetch")


class GatewaySettings(BaseSettings):
    """Everything the gateway reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="REFSTORE_", env_nested_delimiter="__", extra="forbid"
    )

    minio: MinioSection | None = Field(None, description="MinIO connection; omit for local")
    local: LocalSection | None = Field(None, description="Embedded local backend")
    default_bucket: str = Field("default", description="Bucket used when none is given")
    enable_bucket_mapping: bool = Field(False, description="Map logical to physical buckets")
    bucket_mapping_source: Literal["config", "operator"] = Field(
        "config",
        description="'operator': the mapping is pushed by the operator; until the first "
        "versioned push /ready answers 503 and object requests are refused with 503",
    )
    bucket_map: dict[str, str] = Field(default_factory=dict, description="logical -> physical")
    presigned_expiry: int = Field(3600, gt=0, description="Default presigned URL lifetime (s)")
    public_url: str | None = Field(None, description="Base URL presigned URLs are rewritten to")
    public_endpoint: str | None = Field(None, description="Host presigned URLs are signed for")
    part_size: int = Field(8 * 1024 * 1024, description="Multipart part size")
    auth: AuthSection = Field(default_factory=AuthSection)
    server: ServerSection = Field(default_factory=ServerSection)
    url_fetch: UrlFetchSection = Field(default_factory=UrlFetchSection)

    @model_validator(mode="after")
    def _one_backend(self) -> GatewaySettings:
        if self.minio is not None and self.local is not None:
            raise ValueError("configure 'minio' or 'local', not both")
        return self

    @property
    def backend_name(self) -> str:
        return "minio" if self.minio else "local"

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
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"{CONFIG_ENV}={config_file}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def library_config(self) -> dict[str, Any]:
        """The :class:`~refstore.RefStore` config dict these settings describe."""
        config: dict[str, Any] = {
            "default_bucket": self.default_bucket,
            "enable_bucket_mapping": self.enable_bucket_mapping,
            "bucket_map": dict(self.bucket_map),
            "presigned_expiry": self.presigned_expiry,
            "public_url": self.public_url,
            "public_endpoint": self.public_endpoint,
            "part_size": self.part_size,
            "max_concurrency": self.server.storage_threads,
            "url_fetch": self.url_fetch.model_dump(),
        }
        if self.minio:
            minio = self.minio.model_dump()
            minio["secret_key"] = self.minio.secret_key.get_secret_value()
            config["minio"] = minio
        else:
            local = self.local or LocalSection()
            config["local"] = {
                "root": local.root,
                "secret": local.secret.get_secret_value() if local.secret else None,
            }
        return config


def load_settings(
    config_file: str | os.PathLike[str] | None = None, **overrides: Any
) -> GatewaySettings:
    """Settings from ``config_file`` (or ``$REFSTORE_CONFIG``), the environment and overrides.

    Raises:
        ConfigError: the file is missing or the settings are invalid.
    """
    from pydantic import ValidationError

    previous = os.environ.get(CONFIG_ENV)
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid gateway settings: {exc}") from exc
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous


def settings_from_library_config(config: dict[str, Any]) -> GatewaySettings:
    """Gateway settings for a refstore config dict (``init_web_service``).

    The dict is the library's (validated by :class:`~refstore.ConfigValidator`), plus
    the gateway-only sections ``auth``, ``server`` and ``url_fetch``.

    Raises:
        ConfigError: the config is invalid.
    """
    from pydantic import ValidationError

    from ..config import ConfigValidator

    service_only = {"auth", "server"}
    library = {k: v for k, v in config.items() if k not in service_only}
    data = ConfigValidator.normalize_config(library)
    data.update({k: v for k, v in config.items() if k in service_only})
    if "url_fetch" not in config:
        data.pop("url_fetch", None)
    picked = {k: v for k, v in data.items() if k in GatewaySettings.model_fields and v is not None}
    try:
        return GatewaySettings(**picked)
    except ValidationError as exc:
        raise ConfigError(f"invalid gateway settings: {exc}") from exc
