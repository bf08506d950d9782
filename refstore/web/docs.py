"""The API docs pages, ``/docs`` (Swagger UI) and ``/redoc``, with no internet needed.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and render blank where the
browser cannot reach it (air-gapped clusters). These are the same pages at the same
URLs, built by FastAPI's ``get_swagger_ui_html`` / ``get_redoc_html``, with the scripts,
stylesheet and icon served by the gateway itself under ``/docs/assets/``: the files the
``fastapi-offline`` package ships (Swagger UI 5, ReDoc 2). Only its files are used, not
its ``FastAPIOffline`` factory. Nothing else is fetched: ReDoc is told not to load Google
Fonts, and the one address its script has of another host, Redocly's logo in the sidebar
(an image that hides itself when it does not load), is blanked in the copy served.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

SWAGGER_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"  # FastAPI's default swagger_ui_oauth2_redirect_url
ASSETS_PATH = "/docs/assets"

ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
# What the pages load, and nothing else of the package's directory.
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# (asset, address of another host in it, what is served instead)
ASSET_EDITS = (("redoc.standalone.js", b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'""'),)

router = APIRouter(include_in_schema=False)


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _openapi_url(request: Request) -> str:
    openapi_url: str | None = request.app.openapi_url
    if openapi_url is None:
        raise HTTPException(status_code=404, detail="this app publishes no OpenAPI document")
    return _root_path(request) + openapi_url


def _asset_url(request: Request, name: str) -> str:
    return f"{_root_path(request)}{ASSETS_PATH}/{name}"


@router.get(SWAGGER_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset_url(request, "swagger-ui.css"),
        swagger_favicon_url=_asset_url(request, "favicon.png"),
        oauth2_redirect_url=_root_path(request) + OAUTH2_REDIRECT_PATH,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_PATH)
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset_url(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset_url(request, "favicon.png"),
        with_google_fonts=False,
    )


@functools.cache
def asset_body(name: str) -> tuple[bytes, str]:
    """The bytes served for an asset, and their ETag (read once, then kept in memory)."""
    body = (ASSET_DIR / name).read_bytes()
    for asset_name, old, new in ASSET_EDITS:
        if asset_name == name:
            body = body.replace(old, new)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str, request: Request) -> Response:  # sync: the first call reads the file
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no such docs asset: {name}")
    body, etag = asset_body(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}  # revalidated, then 304
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
