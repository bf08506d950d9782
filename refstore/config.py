"""Library configuration: the refstore 0.3.0 dict, validated into a typed :class:`StoreConfig`.

A config holds exactly one backend section, ``"minio": {...}`` or
``"local": {"root": "<dir>"}``; everything else is optional.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, InvalidInputError
from .keys import validate_bucket_name

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Exactly one of 'minio' or 'local' is required.",
    "properties": {
        "minio": {
            "type": "object",
            "required": ["endpoint", "access_key", "secret_key"],
            "properties": {
                "endpoint": {"type": "string", "description": "host:port; http(s):// sets secure"},
                "access_key": {"type": "string"},
                "secret_key": {"type": "string"},
                "secure": {"type": "boolean", "default": False},
                "region": {"type": ["string", "null"], "default": None},
                "cert_check": {"type": "boolean", "default": True},
                "connect_timeout": {"type": "number", "default": 5.0},
                "read_timeout": {"type": "number", "default": 60.0},
            },
        },
        "local": {
            "type": "object",
            "required": ["root"],
            "properties": {
                "root": {"type": "string", "description": "directory holding the buckets"},
                "secret": {
                    "type": ["string", "null"],
                    "description": "HMAC key for presigned links (default: kept in the root)",
                },
            },
        },
        "enable_bucket_mapping": {"type": "boolean", "default": False},
        "bucket_map": {"type": "object", "description": "logical -> physical bucket names"},
        "default_bucket": {"type": "string", "default": "default"},
        "presigned_expiry": {"type": "integer", "default": 3600, "minimum": 1},
        "public_url": {
            "type": ["string", "null"],
            "description": "presigned URLs are rewritten to this base (reverse proxy, path prefix)",
        },
        "public_endpoint": {
            "type": ["string", "null"],
            "description": "presigned URLs are signed for this scheme://host[:port] directly",
        },
        "part_size": {"type": "integer", "default": 8 * MiB, "minimum": MIN_PART_SIZE},
        "max_concurrency": {"type": "integer", "default": 32, "minimum": 1},
        "auto_create_buckets": {"type": "boolean", "default": True},
        "retry": {
            "type": "object",
            "properties": {
                "max_retries": {"type": "integer", "default": 3},
                "base_delay": {"type": "number", "default": 0.2},
                "max_delay": {"type": "number", "default": 5.0},
            },
        },
        "url_fetch": {
            "type": "object",
            "properties": {
                "block_private": {"type": "boolean", "default": False},
                "max_bytes": {"type": ["integer", "null"], "default": None},
                "max_redirects": {"type": "integer", "default": 5},
                "deadline": {"type": ["number", "null"], "default": None},
            },
        },
    },
}


@dataclass(frozen=True)
class MinioSettings:
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = False
    region: str | None = None
    cert_check: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 60.0


@dataclass(frozen=True)
class LocalSettings:
    root: str
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0


@dataclass(frozen=True)
class UrlFetchSettings:
    block_private: bool = False
    max_bytes: int | None = None
    max_redirects: int = 5
    deadline: float | None = None


@dataclass(frozen=True)
class StoreConfig:
    """The validated, typed form of a configuration dict."""

    minio: MinioSettings | None = None
    local: LocalSettings | None = None
    enable_bucket_mapping: bool = False
    bucket_map: dict[str, str] = field(default_factory=dict)
    default_bucket: str = "default"
    presigned_expiry: int = 3600
    public_url: str | None = None
    public_endpoint: str | None = None
    part_size: int = 8 * MiB
    max_concurrency: int = 32
    auto_create_buckets: bool = True
    retry: RetrySettings = field(default_factory=RetrySettings)
    url_fetch: UrlFetchSettings = field(default_factory=UrlFetchSettings)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> StoreConfig:
        """Validate and convert a config dict.

        Raises:
            ConfigError: the config is invalid; the message names the field.
        """
        data = ConfigValidator.normalize_config(config)
        minio = MinioSettings(**data["minio"]) if "minio" in data else None
        local = LocalSettings(**data["local"]) if "local" in data else None
        return cls(
            minio=minio,
            local=local,
            enable_bucket_mapping=data["enable_bucket_mapping"],
            bucket_map=dict(data["bucket_map"]),
            default_bucket=data["default_bucket"],
            presigned_expiry=data["presigned_expiry"],
            public_url=data.get("public_url"),
            public_endpoint=data.get("public_endpoint"),
            part_size=data["part_size"],
            max_concurrency=data["max_concurrency"],
            auto_create_buckets=data["auto_create_buckets"],
            retry=RetrySettings(**data["retry"]),
            url_fetch=UrlFetchSettings(**data["url_fetch"]),
        )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_keys(section: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    _require(not unknown, f"unknown key(s) in {where}: {', '.join(unknown)}")


def _section(schema_name: str) -> dict[str, Any]:
    properties: dict[str, Any] = _CONFIG_SCHEMA["properties"][schema_name]["properties"]
    return properties


def _defaults(schema_name: str) -> dict[str, Any]:
    return {
        name: spec["default"] for name, spec in _section(schema_name).items() if "default" in spec
    }


class ConfigValidator:
    """Validates refstore configuration dicts (compatible with refstore 0.3.0)."""

    @classmethod
    def get_config_schema(cls) -> dict[str, Any]:
        """Return a JSON-schema-like description of the config (a copy)."""
        return copy.deepcopy(_CONFIG_SCHEMA)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Validate ``config`` and return a normalised copy with defaults filled in.

        A ``bucket_map`` given without ``enable_bucket_mapping`` turns mapping on and
        emits a :class:`DeprecationWarning`. The input dict is never modified.

        Raises:
            ConfigError: the config is invalid; the message names the field.
        """
        _require(isinstance(config, dict), "config must be a dict")
        data = copy.deepcopy(config)
        _check_keys(data, set(_CONFIG_SCHEMA["properties"]), "config")
        _require(
            ("minio" in data) != ("local" in data),
            "config needs exactly one backend section: 'minio': {...} or 'local': {'root': ...}",
        )
        if "minio" in data:
            data["minio"] = cls._validate_minio(data["minio"])
        else:
            data["local"] = cls._validate_local(data["local"])

        if data.get("bucket_map") and "enable_bucket_mapping" not in data:
            warnings.warn(
                "'bucket_map' without 'enable_bucket_mapping' turns bucket mapping on; "
                "set enable_bucket_mapping: true explicitly",
                DeprecationWarning,
                stacklevel=3,
            )
            data["enable_bucket_mapping"] = True
        data.setdefault("enable_bucket_mapping", False)
        data.setdefault("bucket_map", {})
        data.setdefault("default_bucket", "default")
        data.setdefault("presigned_expiry", 3600)
        data.setdefault("part_size", 8 * MiB)
        data.setdefault("max_concurrency", 32)
        data.setdefault("auto_create_buckets", True)
        _require(
            isinstance(data["enable_bucket_mapping"], bool), "enable_bucket_mapping must be a bool"
        )
        cls._validate_bucket_map(data["bucket_map"], data["enable_bucket_mapping"])
        _require(
            isinstance(data["default_bucket"], str) and bool(data["default_bucket"]),
            "default_bucket must be a non-empty string",
        )
        cls._validate_bucket("default_bucket", data["default_bucket"])
        expiry = data["presigned_expiry"]
        _require(
            _is_int(expiry) and 0 < expiry <= MAX_PRESIGN_SECONDS,
            f"presigned_expiry must be a positive integer of at most {MAX_PRESIGN_SECONDS} "
            f"seconds (7 days), got {expiry!r}",
        )
        if data.get("public_url") is not None:
            data["public_url"] = cls._validate_url("public_url", data["public_url"])
        if data.get("public_endpoint") is not None:
            endpoint = cls._validate_url("public_endpoint", data["public_endpoint"])
            _require(
                urlsplit(endpoint).path in ("", "/"),
                "public_endpoint must be scheme://host[:port] without a path "
                "(use public_url for a proxy that strips a path prefix)",
            )
            data["public_endpoint"] = endpoint.rstrip("/")
        _require(
            not (data.get("public_url") and data.get("public_endpoint")),
            "set public_url or public_endpoint, not both",
        )
        _require(
            _is_int(data["part_size"]) and data["part_size"] >= MIN_PART_SIZE,
            f"part_size must be an integer >= {MIN_PART_SIZE} (5 MiB)",
        )
        _require(
            _is_int(data["max_concurrency"]) and data["max_concurrency"] >= 1,
            "max_concurrency must be a positive integer",
        )
        _require(
            isinstance(data["auto_create_buckets"], bool), "auto_create_buckets must be a bool"
        )
        data["retry"] = cls._validate_retry(data.get("retry", {}))
        data["url_fetch"] = cls._validate_url_fetch(data.get("url_fetch", {}))
        return data

    @classmethod
    def normalize_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Same as :meth:`validate_config` (kept for refstore 0.3.0 compatibility).

        Raises:
            ConfigError: the config is invalid.
        """
        return cls.validate_config(config)

    @classmethod
    def test_connection(cls, config: dict[str, Any]) -> bool:
        """Validate ``config`` and check that its backend answers.

        Returns:
            True when the backend answered.

        Raises:
            ConfigError: the config is invalid.
            ConnectionError: the backend is unreachable.
            AuthenticationError: the credentials are wrong.
        """
        from .backends import create_backend

        backend = create_backend(StoreConfig.from_dict(config))
        try:
            backend.ping()
        finally:
            backend.close()
        return True

    @staticmethod
    def _validate_bucket(field_name: str, name: str) -> None:
        try:
            validate_bucket_name(name)
        except InvalidInputError as exc:
            raise ConfigError(f"{field_name}: {exc.detail}") from exc

    @classmethod
    def _validate_minio(cls, section: Any) -> dict[str, Any]:
        _require(isinstance(section, dict), "minio must be a dict")
        _check_keys(section, set(_section("minio")), "minio")
        for name in ("endpoint", "access_key", "secret_key"):
            _require(name in section, f"minio.{name} is required")
            _require(
                isinstance(section[name], str) and bool(section[name].strip()),
                f"minio.{name} must be a non-empty string",
            )
        merged = {**_defaults("minio"), **section}
        endpoint = merged["endpoint"].strip()
        if endpoint.startswith(("http://", "https://")):
            scheme, _, endpoint = endpoint.partition("://")
            merged["secure"] = scheme == "https"
        endpoint = endpoint.rstrip("/")
        host, sep, port = endpoint.rpartition(":")
        _require(
            bool(sep) and bool(host.strip()) and "/" not in endpoint,
            f"minio.endpoint must be 'host:port', got {section['endpoint']!r}",
        )
        _require(
            port.isdigit() and 0 < int(port) <= 65535,
            f"minio.endpoint port must be an integer 1-65535, got {port!r}",
        )
        merged["endpoint"] = endpoint
        _require(isinstance(merged["secure"], bool), "minio.secure must be a bool")
        _require(isinstance(merged["cert_check"], bool), "minio.cert_check must be a bool")
        for name in ("connect_timeout", "read_timeout"):
            _require(
                _is_number(merged[name]) and merged[name] > 0,
                f"minio.{name} must be a positive number of seconds",
            )
        return merged

    @staticmethod
    def _validate_local(section: Any) -> dict[str, Any]:
        _require(isinstance(section, dict), "local must be a dict")
        _check_keys(section, set(_section("local")), "local")
        root = section.get("root")
        _require(
            isinstance(root, str) and bool(root.strip()), "local.root must be a directory path"
        )
        secret = section.get("secret")
        _require(secret is None or isinstance(secret, str), "local.secret must be a string")
        return {"root": root, "secret": secret}

    @classmethod
    def _validate_bucket_map(cls, bucket_map: Any, enabled: bool) -> None:
        _require(isinstance(bucket_map, dict), "bucket_map must be a dict")
        for logical, physical in bucket_map.items():
            _require(
                isinstance(logical, str) and isinstance(physical, str),
                "bucket_map names must be strings",
            )
            cls._validate_bucket("bucket_map key", logical)
            cls._validate_bucket(f"bucket_map[{logical!r}]", physical)
        _require(
            not enabled or bool(bucket_map), "enable_bucket_mapping is on but bucket_map is empty"
        )

    @staticmethod
    def _validate_url(field_name: str, url: Any) -> str:
        _require(
            isinstance(url, str) and bool(url.strip()), f"{field_name} must be a non-empty URL"
        )
        parts = urlsplit(url.strip())
        _require(
            parts.scheme in ("http", "https"),
            f"{field_name} must start with http:// or https://, got {url!r}",
        )
        _require(bool(parts.hostname), f"{field_name} has no host: {url!r}")
        _require(not parts.query and not parts.fragment, f"{field_name} must not have a query")
        return str(url.strip())

    @staticmethod
    def _validate_retry(section: Any) -> dict[str, Any]:
        _require(isinstance(section, dict), "retry must be a dict")
        _check_keys(section, set(_section("retry")), "retry")
        merged = {**_defaults("retry"), **section}
        _require(
            _is_int(merged["max_retries"]) and merged["max_retries"] >= 0,
            "retry.max_retries must be an integer >= 0",
        )
        for name in ("base_delay", "max_delay"):
            _require(_is_number(merged[name]) and merged[name] >= 0, f"retry.{name} must be >= 0")
        return merged

    @staticmethod
    def _validate_url_fetch(section: Any) -> dict[str, Any]:
        _require(isinstance(section, dict), "url_fetch must be a dict")
        _check_keys(section, set(_section("url_fetch")), "url_fetch")
        merged = {**_defaults("url_fetch"), **section}
        _require(
            isinstance(merged["block_private"], bool), "url_fetch.block_private must be a bool"
        )
        _require(
            merged["max_bytes"] is None
            or (_is_int(merged["max_bytes"]) and merged["max_bytes"] > 0),
            "url_fetch.max_bytes must be a positive integer or null",
        )
        _require(
            _is_int(merged["max_redirects"]) and merged["max_redirects"] >= 0,
            "url_fetch.max_redirects must be an integer >= 0",
        )
        _require(
            merged["deadline"] is None
            or (_is_number(merged["deadline"]) and merged["deadline"] > 0),
            "url_fetch.deadline must be a positive number of seconds or null",
        )
        return merged
