"""Malformed request bodies: every parser error is a 4xx with the JSON error shape and
nothing is stored. Multipart forms to ``POST /upload`` (part headers, names, filenames,
``filename*=``, repeated file parts, too many parts) and JSON bodies. In process on the
local backend, and one case against a real ``refstore serve``."""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
from gateway_process import ADMIN_TOKEN, GatewayProcess

from refstore.web import GatewaySettings, create_app
from refstore.web.settings import ServerSection
from refstore.web.transfer import parse_disposition

MAX_FORM_PARTS = ServerSection().max_form_parts

BUCKET = "malformed"
BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Gateway:
    root: Path
    http: httpx.AsyncClient
    portal: anyio.from_thread.BlockingPortal

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The answer, or a failure when there is none within 10 s."""

        headers = {**AUTH, **kwargs.pop("headers", {})}

        async def send() -> httpx.Response:
            with anyio.fail_after(10):
                return await self.http.request(method, url, headers=headers, **kwargs)

        return self.portal.call(send)

    def upload(self, body: bytes, content_type: str = CONTENT_TYPE) -> httpx.Response:
        return self.request("POST", "/upload", content=body, headers={"content-type": content_type})

    def stored(self) -> list[str]:
        """The objects on disk (the local backend keeps its own files under .refstore/)."""
        paths = (p.relative_to(self.root) for p in self.root.rglob("*") if p.is_file())
        return sorted(str(p) for p in paths if p.parts[0] != ".refstore")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with running_gateway(tmp_path / "store") as running:
        yield running


@contextmanager
def running_gateway(root: Path, **server: int) -> Iterator[Gateway]:
    settings = GatewaySettings(
        local={"root": str(root)},
        default_bucket=BUCKET,
        auth={"mode": "keys", "admin_tokens": [ADMIN_TOKEN]},
        server=server,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    http = httpx.AsyncClient(transport=transport, base_url="http://gateway")
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        try:
            yield Gateway(root, http, portal)
        finally:
            portal.call(http.aclose)


def part(disposition: bytes, data: bytes = b"x", extra: bytes = b"") -> bytes:
    return (
        b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; " + disposition
        + b"\r\n" + extra + b"\r\n" + data + b"\r\n"
    )  # fmt: skip


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


FILE = part(b'name="file"; filename="a.txt"', b"hello")

MALFORMED_FORMS: dict[str, tuple[bytes, str]] = {
    "field-name-not-utf8": (form(part(b'name="p\xffth"'), FILE), "invalid_input"),
    "filename-not-utf8": (form(part(b'name="file"; filename="a\xff.txt"')), "invalid_key"),
    "filename-overlong-utf8": (form(part(b'name="file"; filename="a\xc0\xae.txt"')), "invalid_key"),
    "path-field-not-utf8": (form(part(b'name="path"', b"dir\xfe"), FILE), "invalid_key"),
    "path-field-after-file-not-utf8": (
        form(FILE, part(b'name="path"', b"dir\xfe")),
        "invalid_key",
    ),
    "logic-bucket-not-utf8": (form(part(b'name="logic_bucket"', b"b\xff"), FILE), "invalid_input"),
    "header-without-colon": (
        form(part(b'name="file"; filename="a.txt"', extra=b"no colon here\r\n")),
        "invalid_input",
    ),
    "garbage-before-first-boundary": (b"garbage\r\n" + form(FILE), "invalid_input"),
    "crlf-in-quoted-filename": (form(part(b'name="file"; filename="a\r\nb.txt"')), "invalid_input"),
    "lf-in-quoted-filename": (form(part(b'name="file"; filename="a\nb.txt"')), "invalid_key"),
    "cr-in-quoted-filename": (form(part(b'name="file"; filename="a\rb.txt"')), "invalid_input"),
    "part-without-disposition": (
        form(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n", FILE),
        "invalid_input",
    ),
    "filename-star-not-utf8": (
        form(part(b"name=\"file\"; filename*=UTF-8''a%FF.txt")),
        "invalid_key",
    ),
    "filename-star-unknown-charset": (
        form(part(b"name=\"file\"; filename*=KOI8-R''a.txt")),
        "invalid_key",
    ),
    "no-closing-boundary": (
        b"--" + BOUNDARY.encode() + b"\r\n" + FILE.split(b"\r\n", 1)[1],
        "invalid_input",
    ),
    "two-file-parts": (form(FILE, FILE), "invalid_input"),
    "four-file-parts": (form(FILE, FILE, FILE, FILE), "invalid_input"),
    "too-many-fields": (
        form(*(part(b'name="f%d"' % i) for i in range(MAX_FORM_PARTS)), FILE),
        "invalid_input",
    ),
    "two-thousand-fields": (
        form(*(part(b'name="f%d"' % i) for i in range(2000)), FILE),
        "invalid_input",
    ),
    "part-headers-too-long": (
        form(part(b'name="file"; filename="a.txt"', extra=b"X-Pad: " + b"p" * 20000 + b"\r\n")),
        "invalid_input",
    ),
}


@pytest.mark.parametrize("case", MALFORMED_FORMS)
def test_each_malformed_form_is_a_400_and_stores_nothing(gateway: Gateway, case: str) -> None:
    body, code = MALFORMED_FORMS[case]
    response = gateway.upload(body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code, response.json()
    assert isinstance(response.json()["detail"], str)
    assert gateway.stored() == []


@pytest.mark.parametrize(
    ("setting", "value", "body"),
    [
        ("max_form_parts", 3, form(part(b'name="a"'), part(b'name="b"'), part(b'name="c"'), FILE)),
        ("max_form_field_bytes", 10, form(part(b'name="path"', b"p" * 11), FILE)),
        (
            "max_form_header_bytes",
            200,
            form(part(b'name="file"; filename="a.txt"', extra=b"X-Pad: " + b"p" * 200 + b"\r\n")),
        ),
    ],
)
def test_the_form_limits_are_the_servers_settings(
    tmp_path: Path, setting: str, value: int, body: bytes
) -> None:
    with running_gateway(tmp_path / "store", **{setting: value}) as limited:
        refused = limited.upload(body)
        assert refused.status_code == 400, refused.text
        assert str(value) in refused.json()["detail"]
        assert limited.stored() == []
    with running_gateway(tmp_path / "store") as default:
        assert default.upload(body).status_code == 200


def test_a_form_at_the_cap_of_parts_is_accepted(gateway: Gateway) -> None:
    fields = [part(b'name="f%d"' % i) for i in range(MAX_FORM_PARTS - 1)]
    response = gateway.upload(form(*fields, FILE))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("disposition", "key"),
    [
        (b"name=\"file\"; filename*=UTF-8''na%C3%AFve.txt", "naïve.txt"),
        (b"name=\"file\"; filename*=utf-8'en'na%C3%AFve.txt", "naïve.txt"),
        (b'name="file"; filename="naive.txt"; filename*=UTF-8\'\'na%C3%AFve.txt', "naïve.txt"),
        (b'name="file"; filename*=UTF-8\'\'na%C3%AFve.txt; filename="naive.txt"', "naïve.txt"),
        (b"name=\"file\"; filename*=ISO-8859-1''na%EFve.txt", "naïve.txt"),
        (b'name="file"; filename="na\xc3\xafve.txt"', "naïve.txt"),
        (b'name="file"; filename="semi;colon \\"q\\".txt"', 'semi;colon "q".txt'),
    ],
)
def test_the_filename_of_the_file_part_is_the_key(
    gateway: Gateway, disposition: bytes, key: str
) -> None:
    response = gateway.upload(form(part(b'name="path"', b"d\xc3\xafr"), part(disposition, b"hi")))
    assert response.status_code == 200, response.text
    info = gateway.request("GET", f"/files/{BUCKET}/dïr/{key}")
    assert info.status_code == 200, info.text
    assert info.content == b"hi"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (b'form-data; name="file"; filename="a\\b.txt"', ("file", "a\\b.txt")),  # as browsers send
        (b'form-data; name="file"; filename="q\\"\\\\.txt"', ("file", 'q"\\.txt')),
        (b"Form-Data; NAME=path", ("path", None)),
        (
            b"form-data; name=\"file\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt",
            ("file", "报告.txt"),
        ),
    ],
)
def test_parse_disposition(header: bytes, parsed: tuple[str, str | None]) -> None:
    assert parse_disposition(header) == parsed


JSON_BODIES: dict[str, bytes] = {
    "not-json": b"{not json",
    "truncated": b'{"enabled": tr',
    "not-utf8": b'{"bucket_map": {"a\xff": "b"}}',
    "empty": b"",
    # Valid JSON in another encoding than UTF-8, which json.loads would take.
    "utf-16": '{"enabled": false, "bucket_map": {}}'.encode("utf-16"),
    "utf-32": '{"enabled": false, "bucket_map": {}}'.encode("utf-32"),
}


@pytest.mark.parametrize("case", JSON_BODIES)
@pytest.mark.parametrize(
    ("method", "url"), [("PUT", "/gateway/bucket-mapping"), ("POST", "/upload-from-url")]
)
def test_each_malformed_json_body_is_a_4xx_with_the_error_shape(
    gateway: Gateway, method: str, url: str, case: str
) -> None:
    before = gateway.request("GET", "/gateway/bucket-mapping").json()
    response = gateway.request(
        method, url, content=JSON_BODIES[case], headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"detail", "code"}, response.json()
    assert gateway.request("GET", "/gateway/bucket-mapping").json() == before
    assert gateway.stored() == []


def test_a_real_server_answers_repeated_file_parts_with_a_400(tmp_path: Path) -> None:
    """uvicorn in front: the answer comes, and the connection is still usable after it."""
    settings = {"local": {"root": str(tmp_path / "store")}, "default_bucket": BUCKET}
    with GatewayProcess(settings) as process:
        connection = http.client.HTTPConnection(process.host, process.port, timeout=10)
        try:
            headers = {**AUTH, "Content-Type": CONTENT_TYPE}
            connection.request(
                "POST", "/upload", body=form(FILE, FILE, FILE, FILE), headers=headers
            )
            response = connection.getresponse()
            assert response.status == 400
            assert b"only one" in response.read()
            connection.request("POST", "/upload", body=form(FILE), headers=headers)
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
        finally:
            connection.close()
        objects = [p for p in (tmp_path / "store" / BUCKET).rglob("*") if p.is_file()]
        assert len(objects) == 1, objects  # the one upload that was answered 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/gateway/bucket-mapping"),
        ("POST", "/upload-from-url"),
        ("DELETE", "/delete"),
        ("POST", "/gateway/buckets"),
    ],
)
def test_a_json_body_in_utf_16_is_refused_by_every_json_route(
    gateway: Gateway, method: str, url: str
) -> None:
    body = '{"uris": [], "name": "x", "url": "https://example.com/"}'.encode("utf-16")
    response = gateway.request(
        method, url, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "detail": "a JSON body must be UTF-8 (RFC 8259)",
        "code": "invalid_input",
    }


def test_a_json_body_over_the_cap_is_413_declared_or_not(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "store", max_json_bytes=1000) as gateway:
        big = b'{"uris": [' + b'"s3://b/k",' * 200 + b'"s3://b/k"]}'
        declared = gateway.request("DELETE", "/delete", content=big)
        assert declared.status_code == 413 and declared.json()["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield big  # sent chunked: no Content-Length to refuse it by

        chunked = gateway.request("DELETE", "/delete", content=chunks())
        assert chunked.status_code == 413 and "max_json_bytes" in chunked.json()["detail"]
        small = gateway.request("DELETE", "/delete", json={"uris": ["s3://b/k"]})
        assert small.status_code == 200, small.text


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("/list?prefix=a%ff", "invalid_key"),
        ("/list?prefix=%c0%ae%c0%ae", "invalid_key"),
        ("/list?logic_bucket=b%fe", "invalid_input"),
        ("/list?x%ff=1", "invalid_input"),
        ("/info?uri=s3://b/k%ff", "invalid_key"),
        ("/download?uri=s3://b/k%ff", "invalid_key"),  # a fast route
        (f"/files/{BUCKET}/k?use_logical_uri=%ff", "invalid_input"),  # a fast route
        ("/gateway/status?x=%80", "invalid_input"),
        ("/presigned-url?uri=s3://b/k&method=G%e9T", "invalid_input"),
    ],
)
def test_a_query_string_that_is_not_utf8_is_a_400_on_every_route(
    gateway: Gateway, query: str, code: str
) -> None:
    response = gateway.request("GET", query)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert "not valid UTF-8" in response.json()["detail"]
