"""The gateway application factory."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from .. import __version__
from .docs import router as docs_router
from .errors import install_error_handlers
from .fast_routes import fast_routes
from .metrics import Metrics
from .middleware import ObservabilityMiddleware
from .routes_files import register_url_upload
from .routes_files import router as files_router
from .routes_gateway import router as gateway_router
from .routes_service import local_links
from .routes_service import router as service_router
from .routes_uploads import router as uploads_router
from .settings import GatewaySettings
from .state import Gateway
from .strict import utf8_query

logger = logging.getLogger("refstore.web")

DESCRIPTION = """
Shared object-storage gateway. Projects hold only this URL and a key, never
storage credentials. Send `Authorization: Bearer <key>`. Errors are JSON
`{"detail": ..., "code": ...}`.
"""


def describe_startup(settings: GatewaySettings, gateway: Gateway) -> None:
    if settings.minio is None:
        logger.info(
            "serving the embedded local backend from %s", gateway.endpoint.removeprefix("local:")
        )
    else:
        logger.info("serving MinIO at %s", settings.minio.endpoint)
    if settings.auth.mode == "none":
        logger.warning("auth.mode is 'none': anyone who can reach this gateway has full access")
    elif not gateway.authenticator.has_credentials:
        logger.warning(
            "auth.mode is 'keys' but no admin token or API key is configured: "
            "every request needing a key is refused"
        )


def _fastapi_telemetry() -> dict[str, Any]:
    """Turn off FastAPI's own OpenTelemetry hooks unless the deployment asks FastAPI to set
    OpenTelemetry up (``FASTAPI_OTEL_AUTO_CONFIGURE=true``): the gateway exports Prometheus
    metrics itself, and the hooks look the global providers up on every request (~40 us,
    a few percent of a small GET). FastAPI versions without the hooks take nothing."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build a gateway app; the backend connection opens in its lifespan."""
    settings = settings or GatewaySettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(settings, metrics)
        app.state.gateway = gateway
        describe_startup(settings, gateway)
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="RefStore gateway",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(utf8_query)],
        docs_url=None,  # served offline by .docs instead of from a CDN
        redoc_url=None,
        **_fastapi_telemetry(),
    )
    # First in the router: ahead of the declared routes that they stand in for.
    app.router.routes[:0] = fast_routes()
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.include_router(service_router)
    app.include_router(docs_router)
    app.include_router(files_router)
    app.include_router(uploads_router)
    if settings.url_fetch.block_private:
        register_url_upload(app)
    app.include_router(gateway_router)
    if settings.minio is None:
        app.include_router(local_links)
    app.state.settings = settings
    return app


def app_from_environment() -> Any:
    """The app for ``uvicorn refstore.web:web_app``: settings from env / $REFSTORE_CONFIG."""
    return create_app(GatewaySettings())
