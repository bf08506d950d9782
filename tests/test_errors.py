"""One table in ``refstore.errors`` says, for every error class, its HTTP status, wire
code, whether it is transient and which S3 error codes stand for it; the gateway
answers with it, the SDK maps answers back to the same class, and the MinIO backend
and the retries read it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

import refstore
from refstore import errors
from refstore.backends.minio import error_for_s3_code
from refstore.errors import SPECS, ErrorSpec, RefStoreError
from refstore.gateway import AsyncGatewayClient, RetryPolicy
from refstore.gateway._core import Call, error_from_response
from refstore.web import GatewaySettings, create_app
from refstore.web.errors import http_error_code

ERROR_CLASSES = {
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, RefStoreError)
}


def spec_id(spec: ErrorSpec) -> str:
    return spec.cls.__name__


# -- the table --------------------------------------------------------------------------


def test_every_error_class_has_exactly_one_entry():
    assert [spec.cls for spec in SPECS if spec.cls not in ERROR_CLASSES] == []
    assert sorted(c.__name__ for c in ERROR_CLASSES) == sorted(s.cls.__name__ for s in SPECS)
    exported = {
        getattr(refstore, name)
        for name in refstore.__all__
        if isinstance(getattr(refstore, name), type)
        and issubclass(getattr(refstore, name), RefStoreError)
    }
    assert exported == ERROR_CLASSES


def test_codes_s3_codes_and_fallback_statuses_each_name_one_class():
    codes = [spec.code for spec in SPECS]
    s3_codes = [code for spec in SPECS for code in spec.s3_codes]
    statuses = [status for spec in SPECS for status in spec.fallback_statuses]
    assert len(set(codes)) == len(codes)
    assert len(set(s3_codes)) == len(s3_codes)
    assert len(set(statuses)) == len(statuses)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_an_error_and_its_class_find_their_entry(spec):
    assert errors.spec_for(spec.cls) is spec
    assert errors.spec_for(spec.cls("x")) is spec
    assert errors.http_status(spec.cls("x")) == spec.status
    assert errors.class_for_code(spec.code) is spec.cls
    assert errors.error_class_for(spec.status, spec.code) is spec.cls


def test_a_subclass_defined_elsewhere_takes_its_nearest_registered_parent():
    class Expired(errors.AuthenticationError):
        pass

    class Mine(Expired, errors.ConflictError):
        pass

    assert errors.spec_for(Expired("x")).cls is errors.AuthenticationError
    assert errors.spec_for(Mine).cls is errors.AuthenticationError  # MRO order
    with pytest.raises(TypeError):
        errors.spec_for(ValueError("not ours"))


def test_only_connection_errors_are_transient():
    assert [spec.cls for spec in SPECS if spec.transient] == [
        errors.ConnectionError,
        errors.OutcomeUnknownError,
        errors.BusyError,
        errors.TooManyRequestsError,
    ]
    assert all(issubclass(spec.cls, errors.ConnectionError) for spec in SPECS if spec.transient)
    assert [spec.cls for spec in SPECS if spec.transient is None] == [
        errors.RefStoreError,
        errors.RequestTimeoutError,
        errors.SourceError,
    ]


def test_a_code_that_contradicts_its_status_is_not_trusted():
    assert errors.class_for_code("object_not_found", 500) is None
    assert errors.error_class_for(500, "object_not_found") is errors.RefStoreError
    assert errors.error_class_for(404, "object_not_found") is errors.ObjectNotFoundError
    assert errors.error_class_for(404, "no_such_code") is errors.NotFoundError


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.InvalidInputError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (405, errors.InvalidInputError),
        (409, errors.ConflictError),
        (413, errors.ObjectTooLargeError),
        (416, errors.InvalidRangeError),
        (418, errors.InvalidInputError),
        (422, errors.InvalidInputError),
        (500, errors.RefStoreError),
        (502, errors.ConnectionError),
        (503, errors.ConnectionError),
        (504, errors.OutcomeUnknownError),
    ],
)
def test_an_answer_without_a_known_code_maps_by_status(status, expected):
    assert errors.class_for_status(status) is expected
    assert errors.error_class_for(status) is expected


def test_the_module_docstring_draws_the_table():
    doc = errors.__doc__ or ""
    for spec in SPECS:
        line = re.search(rf"(?:── |^    ){spec.cls.__name__} +(T)? +(\d{{3}})", doc, re.M)
        assert line, f"{spec.cls.__name__} is not in the drawing"
        assert int(line.group(2)) == spec.status, spec.cls.__name__
        assert (line.group(1) == "T") is (spec.transient is True), spec.cls.__name__


# -- S3 error codes -----------------------------------------------------------------------

S3_CODES = [(code, spec) for spec in SPECS for code in sorted(spec.s3_codes)]


@pytest.mark.parametrize(("code", "spec"), S3_CODES, ids=[code for code, _ in S3_CODES])
def test_the_backend_translates_each_s3_code_to_its_class(code, spec):
    error = error_for_s3_code(code, "message", "bucket", "key")
    assert type(error) is spec.cls
    assert errors.class_for_s3_code(code) is spec.cls
    assert error.context == {"bucket": "bucket", "key": "key", "s3_code": code}


def test_an_unknown_s3_code_is_a_plain_refstore_error_that_keeps_the_code():
    error = error_for_s3_code("SomethingNew", "the server says", "b", "k")
    assert type(error) is errors.RefStoreError
    assert errors.class_for_s3_code("SomethingNew") is None
    assert "SomethingNew" in error.detail and "the server says" in error.detail


@pytest.mark.parametrize(("code", "spec"), S3_CODES, ids=[code for code, _ in S3_CODES])
def test_the_sdk_maps_an_s3_answer_of_a_presigned_transfer_to_the_same_class(code, spec):
    body = f"<Error><Code>{code}</Code><Message>said</Message></Error>".encode()
    call = Call("GET", "http://storage.invalid/b/k?X-Amz-Signature=s", to_gateway=False)
    error = error_from_response(httpx.Response(spec.status, content=body), call)
    assert type(error) is spec.cls
    assert error.code == code and error.detail == "said"


# -- the gateway answers, the SDK raises the same class -------------------------------------

BASE = "http://testserver"


def test_http_errors_of_the_framework_keep_their_codes():
    expected = {
        400: "bad_request",
        401: "authentication_failed",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        408: "request_timeout",
        409: "conflict",
        413: "too_large",
        416: "invalid_range",
        422: "validation_error",
        429: "too_many_requests",
        503: "backend_unavailable",
        504: "outcome_unknown",
    }
    assert {s: http_error_code(s) for s in range(400, 600)} == {
        s: expected.get(s, "http_error") for s in range(400, 600)
    }


def _answers_with(app: Any, raised: list[RefStoreError]) -> None:
    """Put first in the app a route for ``GET /gateway/status`` that raises the last
    error of ``raised``, so that it is answered by the gateway's own error handlers."""

    async def fail() -> None:
        raise raised[-1]

    app.router.routes.insert(0, APIRoute("/gateway/status", fail, methods=["GET"]))


class Unregistered(errors.ObjectNotFoundError):
    """A subclass the table does not list: answered and raised again as its parent."""


def test_each_error_raised_in_the_gateway_is_raised_again_by_the_sdk(tmp_path: Path):
    settings = GatewaySettings(local={"root": str(tmp_path / "store")}, auth={"mode": "none"})
    raised: list[RefStoreError] = []
    seen: list[tuple[type[RefStoreError], RefStoreError, httpx.Response]] = []

    async def main() -> None:
        app = create_app(settings)
        _answers_with(app, raised)

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            last_response.append(response)

        last_response: list[httpx.Response] = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            hooks = {"response": [keep]}
            async with (
                httpx.AsyncClient(transport=transport, base_url=BASE, event_hooks=hooks) as http,
                AsyncGatewayClient(BASE, retry=RetryPolicy(0), http_client=http) as client,
            ):
                for cls in [spec.cls for spec in SPECS] + [Unregistered]:
                    raised.append(cls(f"raised {cls.__name__}"))
                    with pytest.raises(RefStoreError) as info:
                        await client.get_status()
                    seen.append((cls, info.value, last_response[-1]))

    asyncio.run(main())
    assert len(seen) == len(SPECS) + 1
    for cls, error, response in seen:
        spec = errors.spec_for(cls)
        assert type(error) is spec.cls, cls.__name__
        assert (error.status, error.code) == (spec.status, spec.code), cls.__name__
        assert response.json() == {"detail": f"raised {cls.__name__}", "code": spec.code}
        assert ("retry-after" in response.headers) is (spec.transient is True), cls.__name__
