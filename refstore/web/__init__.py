"""The RefStore gateway: a FastAPI service over the library.

``uvicorn refstore.web:web_app`` serves it configured from the environment
(``REFSTORE_...``) or the YAML file named by ``REFSTORE_CONFIG``;
``init_web_service(config)`` configures ``web_app`` from a refstore config dict
first, as in refstore 0.3.0. ``create_app(settings)`` builds independent apps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import GatewaySettings, load_settings, settings_from_library_config

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

    from .app import create_app


def __getattr__(name: str) -> Any:
    # FastAPI and the routes load only when an app is built: reading settings
    # (refstore --config ...) stays fast.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GatewaySettings", "create_app", "init_web_service", "load_settings", "web_app"]


class _ModuleApp:
    """The documented module-level app: built on first use, from ``init_web_service``
    settings when given, else from the environment."""

    def __init__(self) -> None:
        self._settings: GatewaySettings | None = None
        self._app: FastAPI | None = None

    def configure(self, settings: GatewaySettings) -> None:
        if self._app is not None:
            raise RuntimeError("web_app is already running; call init_web_service before serving")
        self._settings = settings

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            from .app import create_app

            self._app = create_app(self._settings or GatewaySettings())
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # introspection must not build the app
            raise AttributeError(name)
        return getattr(self.app, name)


web_app = _ModuleApp()


def init_web_service(config: dict[str, Any]) -> GatewaySettings:
    """Configure ``web_app`` from a refstore config dict (the library's, plus optional
    ``auth`` and ``server`` sections). Call it before serving ``web_app``.

    Raises:
        ConfigError: the config is invalid.
    """
    settings = settings_from_library_config(config)
    web_app.configure(settings)
    return settings
