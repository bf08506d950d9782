"""``ConfigValidator``: refstore 0.3.0's config API, over :class:`~refstore.config.StoreConfig`."""

from __future__ import annotations

from typing import Any

from .backends import create_backend
from .config import StoreConfig


class ConfigValidator:
    """Validates refstore configuration dicts (compatible with refstore 0.3.0)."""

    @classmethod
    def get_config_schema(cls) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of a config dict, generated from :class:`StoreConfig`."""
        return StoreConfig.model_json_schema()

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Validate ``config`` and return a normalised copy with defaults filled in.

        Raises:
            ConfigError: the config is invalid; the message names the field.
        """
        return StoreConfig.from_dict(config).to_dict()

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
        backend = create_backend(StoreConfig.from_dict(config))
        try:
            backend.ping()
        finally:
            backend.close()
        return True
