"""Error answers of the gateway: ``{"detail": "...", "code": "..."}``.

A RefStore error is answered with the status and code of its entry in the table
of :mod:`refstore.errors` (the SDK maps them back to the same class); plain HTTP
errors of the framework (unknown route, wrong method, malformed request) get the
code of the class that status stands for, or one of :data:`HTTP_ONLY_CODES`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors

logger = logging.getLogger("refstore.web")

RETRY_AFTER_SECONDS = 5
# A body refused unread (Content-Length over the cap) is read and dropped when it is no
# larger than this, rather than the connection closed under it: clients that read the
# answer only after sending the whole body (httpx, requests) would otherwise often get a
# reset connection instead of the 413. Larger bodies are not worth taking in.
DRAIN_REFUSED_BODY_BYTES = 64 * 1024 * 1024

HTTP_ONLY_CODES = {
    400: "bad_request",
    405: "method_not_allowed",
    422: "validation_error",
}
"""Codes of framework HTTP errors that no RefStore class stands for."""


def http_error_code(status: int) -> str:
    """The code of a plain HTTP error (not a RefStore error) answered with ``status``."""
    if status in HTTP_ONLY_CODES:
        return HTTP_ONLY_CODES[status]
    cls = errors.class_for_status(status)
    return cls.code if errors.http_status(cls) == status else "http_error"


def error_response(
    status: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def refstore_error_response(exc: errors.RefStoreError) -> JSONResponse:
    spec = errors.spec_for(exc)
    status = spec.status
    headers: dict[str, str] = {}
    if spec.transient:
        headers["Retry-After"] = str(exc.context.get("retry_after", RETRY_AFTER_SECONDS))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 413 and not _drained(exc):
        headers["Connection"] = "close"
    if isinstance(exc, errors.InvalidRangeError) and "size" in exc.context:
        headers["Content-Range"] = f"bytes */{exc.context['size']}"
    detail: object = exc.detail
    if isinstance(exc, errors.ConflictError) and "current" in exc.context:
        detail = {"message": exc.detail, "current": exc.context["current"]}
    return error_response(status, detail, exc.code, headers)


def _drained(exc: errors.RefStoreError) -> bool:
    """Whether the server (uvicorn keeps a connection open after an answer) will read
    and drop the rest of a refused body."""
    declared = exc.context.get("declared")
    return isinstance(declared, int) and declared <= DRAIN_REFUSED_BODY_BYTES


def answer_refstore_error(
    request: Request, operation: str, exc: errors.RefStoreError
) -> JSONResponse:
    """The error answer; a backend failure is also logged, counted and marks the backend down."""
    if errors.http_status(exc) >= 500 and not isinstance(exc, errors.BusyError):
        logger.warning("backend error on %s: %s", request.url.path, exc)
        gateway = getattr(request.app.state, "gateway", None)
        if gateway is not None:
            gateway.metrics.backend_errors.labels(operation, exc.code).inc()
            if isinstance(exc, errors.ConnectionError):
                gateway.set_backend_up(False)
    return refstore_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer RefStore errors, HTTP errors and validation errors with the JSON body."""

    async def on_refstore_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.RefStoreError)
        operation = getattr(request.scope.get("endpoint"), "__name__", "unknown")
        return answer_refstore_error(request, operation, exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = http_error_code(exc.status_code)
        return error_response(exc.status_code, exc.detail, code, dict(exc.headers or {}))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return error_response(422, detail, http_error_code(422))

    app.add_exception_handler(errors.RefStoreError, on_refstore_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
