"""One table from RefStore errors to HTTP statuses, and the JSON error body.

Every error answer is ``{"detail": "...", "code": "..."}``; the SDK maps the
status and code back to the same exception classes.
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

STATUS_BY_ERROR = errors.HTTP_STATUS_BY_ERROR

CODE_BY_STATUS = {
    400: "bad_request",
    401: "authentication_failed",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    416: "invalid_range",
    422: "validation_error",
    503: "backend_unavailable",
}


def status_for(exc: errors.RefStoreError) -> int:
    """HTTP status for a RefStore error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(
    status: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def refstore_error_response(exc: errors.RefStoreError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
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
    if status_for(exc) >= 500:
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
        code = CODE_BY_STATUS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, exc.detail, code, dict(exc.headers or {}))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return error_response(422, detail, "validation_error")

    app.add_exception_handler(errors.RefStoreError, on_refstore_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
