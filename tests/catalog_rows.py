"""The rows of the hostile-input catalog (tests/test_hostile_catalog.py).

A gateway row is one raw HTTP/1.1 request and the answers the documented contract allows;
a library row is one call on a ``RefStore`` and the exception classes it may raise. In
targets and bodies, ``<main>``, ``<other>`` (the two buckets), ``<src>`` (a local HTTP
source, ``http://127.0.0.1:PORT``) and ``<port>`` (its port) are filled in at run time.
Expectations come from the README and the error table, not from what the code does.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from refstore import errors

MiB = 1024 * 1024
MAX_UPLOAD = 8 * MiB
"""server.max_upload_bytes of the catalog's gateway: over one 5 MiB part, so that a
truncated body near the cap has started a multipart upload that must be aborted."""

SEED = bytes(range(65, 91))  # 26 bytes, A..Z
NFC_NAME = unicodedata.normalize("NFC", "café.txt")
NFD_NAME = unicodedata.normalize("NFD", NFC_NAME)
ADMIN = "admin"
PROJECT = "project"  # tenant-a: bucket <main>, prefix tenant-a/, every action
READONLY = "readonly"  # tenant-a: bucket <main>, prefix tenant-a/, read and list
MAPPING = "mapping"  # a bucket-mapping token
TOKENS = {
    ADMIN: "admin-test-token",
    PROJECT: "project-key-tenant-a",
    READONLY: "readonly-key-tenant-a",
    MAPPING: "mapping-token-operator",
}
MAPPING_VERSION: dict[str, Any] = {
    "source": "BucketMapping/default/main",
    "uid": "5a1d",
    "created": "2026-01-01T00:00:00Z",
    "generation": 5,
}

CLIENT_ERROR_JSON = ((400, "invalid_input"), (422, "validation_error"))
"""A malformed request body or parameter: either answer the README lists (400, 422)."""
BAD_KEY = ((400, "invalid_key"), (400, "invalid_uri"))
BAD_BUCKET = ((400, "invalid_bucket_name"), (400, "invalid_uri"))
BAD_URI = ((400, "invalid_uri"),)
DENIED = ((403, "permission_denied"),)
UNAUTHENTICATED = ((401, "authentication_failed"),)
TOO_LARGE = ((413, "too_large"),)
UNSAFE = ((400, "unsafe_url"),)
WHOLE = "whole"
"""A successful answer's body: the seed object's bytes, whole."""


@dataclass(frozen=True)
class Http:
    """One request to the gateway.

    Attributes:
        errors: (status, code) answers that are allowed, each as a JSON error body.
        ok: a success that is allowed instead: (status, body) with body ``WHOLE`` or the
            exact bytes.
        body: the body as sent (str: encoded as UTF-8 after substitution).
        length: Content-Length to declare (None: the body's length; "" : none at all).
        truncate: close the sending side after the body, without sending what was declared.
        no_answer_ok: no answer at all is allowed (the client went away first).
    """

    id: str
    kind: str
    method: str
    target: str
    token: str | None = ADMIN
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | str = b""
    length: str | None = None
    errors: tuple[tuple[int, str], ...] = ()
    ok: tuple[tuple[int, bytes | str], ...] = ()
    truncate: bool = False
    no_answer_ok: bool = False
    any_4xx: bool = False
    """The HTTP server itself may refuse it (not the app): any 4xx, JSON or not."""


@dataclass(frozen=True)
class Lib:
    """One library call; ``call(store, env)`` must raise one of ``raises``."""

    id: str
    kind: str
    call: Callable[[Any, dict[str, str]], Any]
    raises: tuple[type[BaseException], ...]
    backends: tuple[str, ...] = ("minio", "local")
    extra: dict[str, Any] = field(default_factory=dict)


def js(value: Any) -> str:
    return json.dumps(value)


JSON = (("Content-Type", "application/json"),)
OCTETS = (("Content-Type", "application/octet-stream"),)


def form(*parts: bytes, boundary: bytes = b"hcb0und") -> bytes:
    return b"".join(parts) + b"--" + boundary + b"--\r\n"


def field_part(name: bytes, value: bytes, boundary: bytes = b"hcb0und") -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"\r\n\r\n'
        + value + b"\r\n"
    )  # fmt: skip


def file_part(filename: bytes, data: bytes = b"hostile", boundary: bytes = b"hcb0und") -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b"\r\n"
    )  # fmt: skip


FORM = (("Content-Type", "multipart/form-data; boundary=hcb0und"),)


def chunked(data: bytes, size: int = 256 * 1024) -> bytes:
    pieces = [
        b"%x\r\n" % len(data[i : i + size]) + data[i : i + size] + b"\r\n"
        for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


CHUNKED = (("Transfer-Encoding", "chunked"),)
LONG_KEY = "/".join(["k" * 200] * 6)  # 1205 bytes, segments of 200
LONG_SEGMENT = "s" * 256

# -- gateway rows ---------------------------------------------------------------------------

HTTP_ROWS: list[Http] = []


def add(*rows: Http) -> None:
    HTTP_ROWS.extend(rows)


# Invalid URIs, in uri= of /download and /info (reads) and /presigned-url.
for name, uri in [
    ("scheme-http", "http://<main>/tenant-a/seed.txt"),
    ("scheme-s3-one-slash", "s3:/<main>/tenant-a/seed.txt"),
    ("scheme-upper", "S3://<main>/tenant-a/seed.txt"),
    ("empty-bucket", "s3:///tenant-a/seed.txt"),
    ("empty-key", "s3://<main>/"),
    ("no-key", "s3://<main>"),
    ("empty", ""),
    ("leading-space", "%20s3://<main>/tenant-a/seed.txt"),
    ("space-in-bucket", "s3://ma%20in/tenant-a/seed.txt"),
    ("control-tab-in-key", "s3://<main>/tenant-a/se%09ed.txt"),
    ("control-newline-in-key", "s3://<main>/tenant-a/se%0Aed.txt"),
    ("control-del-in-key", "s3://<main>/tenant-a/se%7Fed.txt"),
    ("very-long-key", "s3://<main>/" + LONG_KEY),
    ("very-long-bucket", "s3://" + "b" * 64 + "/x"),
    ("very-long-uri-16k", "s3://<main>/" + "a/" * 8000 + "x"),
]:
    add(Http(f"uri-download-{name}", "uri", "GET", f"/download?uri={uri}", errors=BAD_URI))
add(
    Http("uri-info-scheme-file", "uri", "GET", "/info?uri=file:///etc/passwd", errors=BAD_URI),
    Http("uri-info-dotdot", "uri", "GET", "/info?uri=s3://<main>/tenant-a/../x", errors=BAD_URI),
    Http("uri-presign-no-key", "uri", "GET", "/presigned-url?uri=s3://<main>", errors=BAD_URI),
    Http(
        "uri-delete-invalid-reported-not-deleted",
        "uri",
        "DELETE",
        "/delete",
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/../tenant-a/seed.txt"]}),
        ok=((200, js({"deleted": [], "failed": ["s3://<main>/tenant-a/../tenant-a/seed.txt"]})),),
        errors=BAD_URI,
    ),
)

# Keys in the path of PUT /files/{bucket}/{key} (a refusal stores nothing) and GET.
for name, key, allowed in [
    ("escape-ff", "tenant-a/x%ff", ((400, "invalid_key"),)),
    ("escape-overlong-dot", "tenant-a/%c0%ae", ((400, "invalid_key"),)),
    ("escape-overlong-dotdot-segment", "tenant-a/%c0%ae%c0%ae/seed.txt", ((400, "invalid_key"),)),
    ("escape-surrogate", "tenant-a/x%ed%a0%80", ((400, "invalid_key"),)),
    ("raw-byte-ff", "tenant-a/x\udcff", ((400, "invalid_key"),)),
    ("nul-escaped", "tenant-a/a%00b", BAD_KEY),
    ("dotdot", "tenant-a/../tenant-b/seed.txt", BAD_KEY),
    ("dotdot-escaped", "tenant-a/%2e%2e/tenant-b/seed.txt", BAD_KEY),
    ("dot-segment", "tenant-a/./seed.txt", BAD_KEY),
    ("leading-slash", "/tenant-a/seed.txt", BAD_KEY),
    ("double-slash", "tenant-a//seed.txt", BAD_KEY),
    ("trailing-slash", "tenant-a/seed.txt/", BAD_KEY),
    ("backslash", "tenant-a\\seed.txt", BAD_KEY),
    ("backslash-escaped", "tenant-a%5C..%5Cseed.txt", BAD_KEY),
    ("overlong-key-1205-bytes", "tenant-a/" + LONG_KEY, BAD_KEY),
    ("segment-256-bytes", "tenant-a/" + LONG_SEGMENT, BAD_KEY),
    ("control-escaped", "tenant-a/a%01b", BAD_KEY),
]:
    add(
        Http(
            f"key-put-{name}",
            "key",
            "PUT",
            f"/files/<main>/{key}",
            headers=OCTETS,
            body=b"hostile",
            errors=allowed,
            # A raw byte that is not ASCII is not HTTP/1.1: the HTTP server may refuse it.
            any_4xx=not key.isascii(),
        )
    )
add(
    Http(
        "key-get-escape-ff",
        "key",
        "GET",
        "/files/<main>/tenant-a/seed%ff",
        errors=((400, "invalid_key"),),
    ),
    Http(
        "key-get-uri-raw-byte-ff",
        "key",
        "GET",
        "/download?uri=s3://<main>/tenant-a/seed\udcff",
        errors=((400, "invalid_key"),),
        any_4xx=True,
    ),
    # NFD and NFC are one key: reading the NFD spelling gives the NFC object, unchanged.
    Http(
        "key-get-nfd-reads-the-nfc-object",
        "key",
        "GET",
        f"/files/<main>/tenant-a/{quote(NFD_NAME)}",
        ok=((200, WHOLE),),
    ),
    Http(
        "key-form-filename-dotdot",
        "key",
        "POST",
        "/upload",
        headers=FORM,
        body=form(
            field_part(b"logic_bucket", b"<main>"),
            field_part(b"path", b"tenant-a"),
            file_part(b"../../seed.txt"),
        ),
        errors=BAD_KEY,
    ),
    Http(
        "key-form-path-dotdot",
        "key",
        "POST",
        "/upload",
        headers=FORM,
        body=form(
            field_part(b"logic_bucket", b"<main>"),
            field_part(b"path", b"tenant-a/../tenant-b"),
            file_part(b"seed.txt"),
        ),
        errors=BAD_KEY,
    ),
    Http(
        "key-form-filename-nul",
        "key",
        "POST",
        "/upload",
        headers=FORM,
        body=form(field_part(b"path", b"tenant-a"), file_part(b"a\x00b.txt")),
        errors=BAD_KEY + CLIENT_ERROR_JSON,
    ),
)

# Bucket names.
for name, bucket in [
    ("uppercase", "Main-Bucket"),
    ("too-short", "ab"),
    ("too-long", "b" * 64),
    ("ip-like", "192.168.1.1"),
    ("underscore", "my_bucket"),
    ("double-dot", "a..b"),
    ("reserved-prefix", "xn--abc"),
]:
    add(
        Http(
            f"bucket-list-{name}",
            "bucket",
            "GET",
            f"/list?logic_bucket={bucket}",
            errors=BAD_BUCKET,
        ),
        Http(
            f"bucket-put-{name}",
            "bucket",
            "PUT",
            f"/files/{bucket}/tenant-a/x.txt",
            headers=OCTETS,
            body=b"hostile",
            errors=BAD_BUCKET,
        ),
    )
add(
    Http(
        "bucket-create-underscore",
        "bucket",
        "POST",
        "/gateway/buckets",
        headers=JSON,
        body=js({"name": "bad_bucket"}),
        errors=(*BAD_BUCKET, (422, "validation_error")),
    ),
    Http(
        "bucket-create-ip-like",
        "bucket",
        "POST",
        "/gateway/buckets",
        headers=JSON,
        body=js({"name": "10.0.0.1"}),
        errors=(*BAD_BUCKET, (422, "validation_error")),
    ),
    Http(
        "bucket-form-logic-bucket-uppercase",
        "bucket",
        "POST",
        "/upload",
        headers=FORM,
        body=form(
            field_part(b"logic_bucket", b"UPPER"),
            field_part(b"path", b"tenant-a"),
            file_part(b"x.txt"),
        ),
        errors=BAD_BUCKET,
    ),
)

# Presigned URL expiries: 1 s to 7 days.
PRESIGN = "/presigned-url?uri=s3://<main>/tenant-a/seed.txt&expiry_seconds="
for name, value, allowed in [
    ("zero", "0", ((400, "invalid_input"),)),
    ("negative", "-1", ((400, "invalid_input"),)),
    ("over-7-days", "604801", ((400, "invalid_input"),)),
    ("huge", "99999999999999999999999", CLIENT_ERROR_JSON),
    ("not-a-number", "soon", CLIENT_ERROR_JSON),
    ("float", "1.5", CLIENT_ERROR_JSON),
    ("empty", "", CLIENT_ERROR_JSON),
]:
    add(Http(f"presign-expiry-{name}", "presign", "GET", PRESIGN + value, errors=allowed))
add(
    Http(
        "presign-method-delete",
        "presign",
        "GET",
        "/presigned-url?uri=s3://<main>/tenant-a/seed.txt&method=DELETE",
        errors=((400, "invalid_input"),),
    )
)

# Range forms on a 26-byte object.
SEED_PATH = "/files/<main>/tenant-a/seed.txt"
RangeRow = tuple[str, str, tuple[tuple[int, bytes | str], ...], tuple[tuple[int, str], ...]]
UNSATISFIABLE = ((416, "invalid_range"),)
RANGES: list[RangeRow] = [
    ("reversed-5-2", "bytes=5-2", ((200, WHOLE),), UNSATISFIABLE),
    ("suffix-zero", "bytes=-0", (), UNSATISFIABLE),
    ("start-beyond-end", "bytes=100-200", (), UNSATISFIABLE),
    ("start-at-size", "bytes=26-", (), UNSATISFIABLE),
    ("multiple-ranges", "bytes=0-1,3-4", ((200, WHOLE),), ()),
    ("other-unit", "items=0-5", ((200, WHOLE),), ()),
    ("garbage", "bytes=abc", ((200, WHOLE),), ()),
    ("only-dash", "bytes=-", ((200, WHOLE),), ()),
    ("negative-start", "bytes=-5-2", ((200, WHOLE),), ()),
    ("huge-end", "bytes=0-99999999999999999999999999", ((206, SEED),), ()),
    ("huge-suffix", "bytes=-99999999999999999999999999", ((206, SEED),), ()),
]
for name, value, allowed_ok, allowed_errors in RANGES:
    add(
        Http(
            f"range-{name}",
            "range",
            "GET",
            SEED_PATH,
            headers=(("Range", value),),
            ok=allowed_ok,
            errors=allowed_errors,
        )
    )

# Oversized bodies (server.max_upload_bytes = 8 MiB).
OVER = MAX_UPLOAD + 1
add(
    Http(
        "oversized-put-declared",
        "oversized",
        "PUT",
        "/files/<main>/tenant-a/big.bin",
        headers=OCTETS,
        length=str(OVER),
        errors=TOO_LARGE,
    ),
    Http(
        "oversized-put-declared-huge",
        "oversized",
        "PUT",
        "/files/<main>/tenant-a/big.bin",
        headers=OCTETS,
        length=str(10**15),
        errors=TOO_LARGE,
    ),
    Http(
        "oversized-put-chunked",
        "oversized",
        "PUT",
        "/files/<main>/tenant-a/big.bin",
        headers=OCTETS + CHUNKED,
        body=chunked(b"o" * (MAX_UPLOAD + 64 * 1024)),
        length="",
        errors=TOO_LARGE,
    ),
    Http(
        "oversized-form-declared",
        "oversized",
        "POST",
        "/upload",
        headers=FORM,
        length=str(OVER),
        errors=TOO_LARGE,
    ),
    Http(
        "oversized-form-chunked",
        "oversized",
        "POST",
        "/upload",
        headers=FORM + CHUNKED,
        body=chunked(form(field_part(b"path", b"tenant-a"), file_part(b"big.bin", b"o" * OVER))),
        length="",
        errors=TOO_LARGE,
    ),
    Http(
        "oversized-overwrite-keeps-the-old-object",
        "oversized",
        "PUT",
        SEED_PATH,
        headers=OCTETS + CHUNKED,
        body=chunked(b"o" * (MAX_UPLOAD + 64 * 1024)),
        length="",
        errors=TOO_LARGE,
    ),
)

# Truncated bodies: more declared than sent, then the sending side closed.
for name, target, headers, sent, declared in [
    ("put-small", "/files/<main>/tenant-a/cut.bin", OCTETS, b"x" * 10, "1000"),
    (
        "put-over-one-part",
        "/files/<main>/tenant-a/cut.bin",
        OCTETS,
        b"x" * (6 * MiB),
        str(MAX_UPLOAD),
    ),
    ("put-overwrite-seed", SEED_PATH, OCTETS, b"x" * 10, "1000"),
    (
        "form-in-file-part",
        "/upload",
        FORM,
        field_part(b"path", b"tenant-a") + file_part(b"cut.bin", b"x" * (6 * MiB))[:-2],
        str(MAX_UPLOAD),
    ),
    ("delete-json", "/delete", JSON, b'{"uris": ["s3://<main>/tenant-a/seed.txt"', "200"),
]:
    method = "POST" if target == "/upload" else "DELETE" if target == "/delete" else "PUT"
    add(
        Http(
            f"truncated-{name}",
            "truncated",
            method,
            target,
            headers=headers,
            body=sent,
            length=declared,
            truncate=True,
            no_answer_ok=True,
            errors=((400, "invalid_input"), (408, "request_timeout")),
        )
    )

# Malformed multipart (a few; test_malformed_bodies.py has more).
add(
    Http(
        "multipart-no-boundary",
        "multipart",
        "POST",
        "/upload",
        headers=(("Content-Type", "multipart/form-data"),),
        body=form(file_part(b"x.txt")),
        errors=((400, "invalid_input"),),
    ),
    Http(
        "multipart-not-multipart",
        "multipart",
        "POST",
        "/upload",
        headers=JSON,
        body=js({"file": "x"}),
        errors=((400, "invalid_input"),),
    ),
    Http(
        "multipart-no-file-part",
        "multipart",
        "POST",
        "/upload",
        headers=FORM,
        body=form(field_part(b"path", b"tenant-a")),
        errors=((400, "invalid_input"),),
    ),
    Http(
        "multipart-boundary-mismatch",
        "multipart",
        "POST",
        "/upload",
        headers=(("Content-Type", "multipart/form-data; boundary=other"),),
        body=form(file_part(b"x.txt")),
        errors=((400, "invalid_input"),),
    ),
    Http(
        "multipart-empty-body",
        "multipart",
        "POST",
        "/upload",
        headers=FORM,
        errors=((400, "invalid_input"),),
    ),
)

# Malformed JSON bodies.
for route, method, nan in [
    ("/delete", "DELETE", b'{"uris": NaN}'),
    ("/gateway/bucket-mapping", "PUT", b'{"enable_bucket_mapping": NaN, "bucket_map": {}}'),
    ("/upload-from-url", "POST", b'{"url": NaN, "path": "tenant-a"}'),
]:
    slug = route.strip("/").replace("/", "-")
    add(
        Http(
            f"json-{slug}-invalid",
            "json",
            method,
            route,
            headers=JSON,
            body=b"{'uris': [}",
            errors=CLIENT_ERROR_JSON,
        ),
        Http(
            f"json-{slug}-utf16le-no-bom",
            "json",
            method,
            route,
            headers=JSON,
            body='{"uris": [], "url": "http://x/"}'.encode("utf-16-le"),
            errors=((400, "invalid_input"),),
        ),
        Http(
            f"json-{slug}-array",
            "json",
            method,
            route,
            headers=JSON,
            body=b"[]",
            errors=CLIENT_ERROR_JSON,
        ),
        Http(
            f"json-{slug}-nan",
            "json",
            method,
            route,
            headers=JSON,
            body=nan,
            errors=CLIENT_ERROR_JSON,
        ),
    )
add(
    Http(
        "json-delete-uris-string",
        "json",
        "DELETE",
        "/delete",
        headers=JSON,
        body=js({"uris": "s3://<main>/tenant-a/seed.txt"}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-delete-uris-numbers",
        "json",
        "DELETE",
        "/delete",
        headers=JSON,
        body=js({"uris": [1, 2]}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-delete-unknown-field",
        "json",
        "DELETE",
        "/delete",
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/seed.txt"], "recursive": True}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-delete-duplicate-key",
        "json",
        "DELETE",
        "/delete",
        headers=JSON,
        body=b'{"uris": [], "uris": ["s3://<main>/tenant-a/seed.txt"]}',
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-mapping-map-not-object",
        "json",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js({"enable_bucket_mapping": True, "bucket_map": ["user", "<other>"]}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-mapping-enable-not-bool",
        "json",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js({"enable_bucket_mapping": "sometimes", "bucket_map": {}}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-mapping-unknown-field",
        "json",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js({"bucket_mapping": {"user": "<other>"}}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-url-url-not-string",
        "json",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": ["<src>/f"], "path": "tenant-a"}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "json-url-unknown-field",
        "json",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": "<src>/f", "path": "tenant-a", "block_private": False}),
        errors=CLIENT_ERROR_JSON + UNSAFE,
    ),
)

# Scope escapes: the project key holds <main>, prefix tenant-a/.
add(
    Http(
        "scope-read-other-bucket",
        "scope",
        "GET",
        "/files/<other>/tenant-a/seed.txt",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-write-other-bucket",
        "scope",
        "PUT",
        "/files/<other>/tenant-a/new.txt",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-write-other-prefix",
        "scope",
        "PUT",
        "/files/<main>/tenant-b/new.txt",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-overwrite-other-prefix",
        "scope",
        "PUT",
        "/files/<main>/tenant-b/seed.txt",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-prefix-lookalike",
        "scope",
        "PUT",
        "/files/<main>/tenant-ab/new.txt",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-prefix-without-slash",
        "scope",
        "PUT",
        "/files/<main>/tenant-a",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-dotdot-out",
        "scope",
        "PUT",
        "/files/<main>/tenant-a/../tenant-b/seed.txt",
        token=PROJECT,
        headers=OCTETS,
        body=b"x",
        errors=BAD_KEY,
    ),
    Http(
        "scope-dotdot-out-escaped",
        "scope",
        "GET",
        "/files/<main>/tenant-a/%2E%2E/tenant-b/seed.txt",
        token=PROJECT,
        errors=BAD_KEY,
    ),
    Http(
        "scope-download-uri-dotdot",
        "scope",
        "GET",
        "/download?uri=s3://<main>/tenant-a/../tenant-b/seed.txt",
        token=PROJECT,
        errors=BAD_URI,
    ),
    Http(
        "scope-info-other-prefix",
        "scope",
        "GET",
        "/info?uri=s3://<main>/tenant-b/seed.txt",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-list-other-bucket",
        "scope",
        "GET",
        "/list?logic_bucket=<other>",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-list-other-prefix",
        "scope",
        "GET",
        "/list?logic_bucket=<main>&prefix=tenant-b/",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-list-lookalike-prefix",
        "scope",
        "GET",
        "/list?logic_bucket=<main>&prefix=tenant-ab",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-list-dotdot-prefix",
        "scope",
        "GET",
        "/list?logic_bucket=<main>&prefix=tenant-a/../",
        token=PROJECT,
        errors=BAD_KEY + DENIED,
    ),
    Http(
        "scope-presign-other-bucket",
        "scope",
        "GET",
        "/presigned-url?uri=s3://<other>/tenant-a/seed.txt",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-presign-put-other-prefix",
        "scope",
        "GET",
        "/presigned-url?uri=s3://<main>/tenant-b/seed.txt&method=PUT",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "scope-delete-other-prefix",
        "scope",
        "DELETE",
        "/delete",
        token=PROJECT,
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/seed.txt", "s3://<main>/tenant-b/seed.txt"]}),
        errors=DENIED,
    ),
    Http(
        "scope-delete-other-bucket",
        "scope",
        "DELETE",
        "/delete",
        token=PROJECT,
        headers=JSON,
        body=js({"uris": ["s3://<other>/tenant-a/seed.txt"]}),
        errors=DENIED,
    ),
    Http(
        "scope-form-other-bucket",
        "scope",
        "POST",
        "/upload",
        token=PROJECT,
        headers=FORM,
        body=form(
            field_part(b"logic_bucket", b"<other>"),
            field_part(b"path", b"tenant-a"),
            file_part(b"x.txt"),
        ),
        errors=DENIED,
    ),
    Http(
        "scope-form-bucket-after-file",
        "scope",
        "POST",
        "/upload",
        token=PROJECT,
        headers=FORM,
        body=form(
            field_part(b"path", b"tenant-a"),
            file_part(b"x.txt"),
            field_part(b"logic_bucket", b"<other>"),
        ),
        errors=DENIED,
    ),
    Http(
        "scope-url-other-prefix",
        "scope",
        "POST",
        "/upload-from-url",
        token=PROJECT,
        headers=JSON,
        body=js({"url": "https://example.com/a.txt", "path": "tenant-b"}),
        errors=DENIED,
    ),
    Http(
        "scope-readonly-write",
        "scope",
        "PUT",
        "/files/<main>/tenant-a/new.txt",
        token=READONLY,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "scope-readonly-delete",
        "scope",
        "DELETE",
        "/delete",
        token=READONLY,
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/seed.txt"]}),
        errors=DENIED,
    ),
    Http(
        "scope-readonly-presign",
        "scope",
        "GET",
        "/presigned-url?uri=s3://<main>/tenant-a/seed.txt",
        token=READONLY,
        errors=DENIED,
    ),
    Http(
        "scope-project-create-bucket",
        "scope",
        "POST",
        "/gateway/buckets",
        token=PROJECT,
        headers=JSON,
        body=js({"name": "hc-made-by-project"}),
        errors=DENIED,
    ),
    Http(
        "scope-project-delete-bucket",
        "scope",
        "DELETE",
        "/gateway/buckets/<other>?force=true",
        token=PROJECT,
        errors=DENIED,
    ),
)

# Tokens.
for name, header in [
    ("missing", None),
    ("wrong", "Bearer not-a-key"),
    ("bearer-without-token", "Bearer"),
    ("bearer-blank-token", "Bearer    "),
    ("basic-scheme", "Basic YWRtaW46YWRtaW4="),
    ("token-scheme", "Token admin-test-token"),
    ("admin-token-as-basic", "Basic admin-test-token"),
    ("prefix-of-admin-token", "Bearer admin-test"),
    ("admin-token-with-suffix", "Bearer admin-test-token2"),
]:
    auth: tuple[tuple[str, str], ...] = (("Authorization", header),) if header else ()
    add(
        Http(
            f"token-{name}-put",
            "token",
            "PUT",
            "/files/<main>/tenant-a/new.txt",
            token=None,
            headers=auth + OCTETS,
            body=b"x",
            errors=UNAUTHENTICATED,
        ),
    )
add(
    Http(
        "token-missing-delete",
        "token",
        "DELETE",
        "/delete",
        token=None,
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/seed.txt"]}),
        errors=UNAUTHENTICATED,
    ),
    Http(
        "token-missing-mapping",
        "token",
        "PUT",
        "/gateway/bucket-mapping",
        token=None,
        headers=JSON,
        body=js({"enable_bucket_mapping": False, "bucket_map": {}}),
        errors=UNAUTHENTICATED,
    ),
    Http("token-mapping-only-read", "token", "GET", SEED_PATH, token=MAPPING, errors=DENIED),
    Http(
        "token-mapping-only-put",
        "token",
        "PUT",
        "/files/<main>/tenant-a/new.txt",
        token=MAPPING,
        headers=OCTETS,
        body=b"x",
        errors=DENIED,
    ),
    Http(
        "token-mapping-only-delete",
        "token",
        "DELETE",
        "/delete",
        token=MAPPING,
        headers=JSON,
        body=js({"uris": ["s3://<main>/tenant-a/seed.txt"]}),
        errors=DENIED,
    ),
    Http(
        "token-mapping-only-list",
        "token",
        "GET",
        "/list?logic_bucket=<main>",
        token=MAPPING,
        errors=DENIED,
    ),
    Http(
        "token-mapping-only-create-bucket",
        "token",
        "POST",
        "/gateway/buckets",
        token=MAPPING,
        headers=JSON,
        body=js({"name": "hc-made-by-mapping"}),
        errors=DENIED,
    ),
    Http(
        "token-mapping-only-config", "token", "GET", "/gateway/config", token=MAPPING, errors=DENIED
    ),
)

# Mapping updates (the gateway holds version generation 5 of uid 5a1d).
STALE = {**MAPPING_VERSION, "generation": 4}
add(
    Http(
        "mapping-stale-version-admin",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js(
            {"enable_bucket_mapping": True, "bucket_map": {"user": "<other>"}, "version": STALE}
        ),
        errors=((409, "conflict"),),
    ),
    Http(
        "mapping-stale-version-mapping-token",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        token=MAPPING,
        headers=JSON,
        body=js(
            {"enable_bucket_mapping": True, "bucket_map": {"user": "<other>"}, "version": STALE}
        ),
        errors=((409, "conflict"),),
    ),
    Http(
        "mapping-invalid-physical-bucket",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        token=MAPPING,
        headers=JSON,
        body=js({"enable_bucket_mapping": True, "bucket_map": {"user": "Bad_Bucket"}}),
        errors=BAD_BUCKET + CLIENT_ERROR_JSON,
    ),
    Http(
        "mapping-invalid-logical-bucket",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js({"enable_bucket_mapping": True, "bucket_map": {"../user": "<other>"}}),
        errors=BAD_BUCKET + CLIENT_ERROR_JSON,
    ),
    Http(
        "mapping-enabled-empty-map",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js({"enable_bucket_mapping": True, "bucket_map": {}}),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "mapping-two-logical-one-physical",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js(
            {"enable_bucket_mapping": True, "bucket_map": {"user": "<other>", "team": "<other>"}}
        ),
        errors=(*CLIENT_ERROR_JSON, (409, "conflict")),
    ),
    Http(
        "mapping-version-generation-not-int",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        headers=JSON,
        body=js(
            {
                "enable_bucket_mapping": False,
                "bucket_map": {},
                "version": {**MAPPING_VERSION, "generation": "six"},
            }
        ),
        errors=CLIENT_ERROR_JSON,
    ),
    Http(
        "mapping-project-key-get",
        "mapping",
        "GET",
        "/gateway/bucket-mapping",
        token=PROJECT,
        errors=DENIED,
    ),
    Http(
        "mapping-project-key-put",
        "mapping",
        "PUT",
        "/gateway/bucket-mapping",
        token=PROJECT,
        headers=JSON,
        body=js({"enable_bucket_mapping": True, "bucket_map": {"user": "<other>"}}),
        errors=DENIED,
    ),
)

# upload-from-url to every non-public address form (the source on 127.0.0.1 records hits).
for name, host in [
    ("loopback", "127.0.0.1:<port>"),
    ("localhost", "localhost:<port>"),
    ("zero-address", "0.0.0.0:<port>"),
    ("zero-short", "0:<port>"),
    ("ipv6-loopback", "[::1]:<port>"),
    ("ten-slash-8", "10.0.0.1:<port>"),
    ("172-16-slash-12", "172.16.0.1:<port>"),
    ("172-31-top", "172.31.255.254:<port>"),
    ("192-168-slash-16", "192.168.1.1:<port>"),
    ("metadata-169-254", "169.254.169.254"),
    ("cgnat-100-64", "100.64.0.1:<port>"),
    ("decimal-2130706433", "2130706433:<port>"),
    ("hex-0x7f-1", "0x7f.1:<port>"),
    ("hex-whole", "0x7f000001:<port>"),
    ("octal-0177", "0177.0.0.1:<port>"),
    ("short-127-1", "127.1:<port>"),
    ("trailing-dot", "127.0.0.1.:<port>"),
    ("ipv4-mapped-ipv6", "[::ffff:127.0.0.1]:<port>"),
    ("ipv4-mapped-ipv6-hex", "[::ffff:7f00:1]:<port>"),
    ("nat64-loopback", "[64:ff9b::7f00:1]:<port>"),
    ("ipv6-link-local", "[fe80::1]:<port>"),
    ("ipv6-unique-local", "[fc00::1]:<port>"),
    ("userinfo-trick", "example.com@127.0.0.1:<port>"),
]:
    add(
        Http(
            f"url-{name}",
            "url",
            "POST",
            "/upload-from-url",
            headers=JSON,
            body=js({"url": f"http://{host}/f", "path": "tenant-a"}),
            errors=UNSAFE,
        )
    )
add(
    Http(
        "url-redirect-to-metadata",
        "url",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": "<src>/redirect-metadata", "path": "tenant-a"}),
        errors=UNSAFE,
    ),
    Http(
        "url-scheme-file",
        "url",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": "file:///etc/passwd", "path": "tenant-a"}),
        errors=UNSAFE,
    ),
    Http(
        "url-scheme-gopher",
        "url",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": "gopher://127.0.0.1:<port>/_x", "path": "tenant-a"}),
        errors=UNSAFE,
    ),
    Http(
        "url-scheme-ftp",
        "url",
        "POST",
        "/upload-from-url",
        headers=JSON,
        body=js({"url": "ftp://example.com/x", "path": "tenant-a"}),
        errors=UNSAFE,
    ),
)

# Query strings that are not UTF-8 (others are in test_malformed_bodies.py).
add(
    Http(
        "query-delete-bucket-force-ff",
        "query",
        "DELETE",
        "/gateway/buckets/<other>?force=%ff",
        errors=((400, "invalid_input"),),
    ),
    Http(
        "query-upload-form-unknown-ff",
        "query",
        "POST",
        "/upload?x=%ff",
        headers=FORM,
        body=form(field_part(b"path", b"tenant-a"), file_part(b"q.txt")),
        errors=((400, "invalid_input"),),
    ),
    Http(
        "query-put-unknown-param-ff",
        "query",
        "PUT",
        "/files/<main>/tenant-a/q.txt?x%c0=1",
        headers=OCTETS,
        body=b"x",
        errors=((400, "invalid_input"),),
    ),
    Http(
        "query-presign-uri-overlong",
        "query",
        "GET",
        "/presigned-url?uri=s3://<main>/tenant-a/%c0%ae%c0%ae/x",
        errors=((400, "invalid_key"),),
    ),
    Http(
        "query-raw-byte-in-prefix",
        "query",
        "GET",
        "/list?logic_bucket=<main>&prefix=tenant-a/\udcfe",
        errors=((400, "invalid_key"),),
        any_4xx=True,
    ),
    Http(
        "query-delete-bucket-raw-byte",
        "query",
        "DELETE",
        "/gateway/buckets/<other>?force=true&x=\udcff",
        errors=((400, "invalid_input"),),
        any_4xx=True,
    ),
)

# Malformed headers (the HTTP server may refuse some before the app sees them).
add(
    Http(
        "header-content-length-not-a-number",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=OCTETS,
        body=b"hostile",
        length="seven",
        any_4xx=True,
    ),
    Http(
        "header-content-length-negative",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=OCTETS,
        body=b"hostile",
        length="-7",
        any_4xx=True,
    ),
    Http(
        "header-content-length-plus",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=OCTETS,
        body=b"hostile",
        length="+7",
        any_4xx=True,
    ),
    Http(
        "header-two-different-content-lengths",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=(*OCTETS, ("Content-Length", "3")),
        body=b"hostile",
        any_4xx=True,
    ),
    Http(
        "header-content-length-and-chunked",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=OCTETS + CHUNKED,
        body=chunked(b"hostile"),
        length="3",
        any_4xx=True,
    ),
    Http(
        "header-content-length-list",
        "header",
        "PUT",
        "/files/<main>/tenant-a/h.txt",
        headers=OCTETS,
        body=b"hostile",
        length="7, 7",
        any_4xx=True,
    ),
    Http(
        "header-form-content-length-not-a-number",
        "header",
        "POST",
        "/upload",
        headers=FORM,
        body=form(field_part(b"path", b"tenant-a"), file_part(b"h.txt")),
        length="many",
        any_4xx=True,
    ),
)


# -- library rows ---------------------------------------------------------------------------


def _download(uri: str, **kwargs: Any) -> Callable[[Any, dict[str, str]], Any]:
    return lambda store, env: store.download_file(sub(uri, env), **kwargs)


def _upload_to(uri: str) -> Callable[[Any, dict[str, str]], Any]:
    return lambda store, env: store.upload_to(sub(uri, env), b"hostile")


def _upload_file(filename: str, path: str | None, bucket: str | None = None) -> Callable[..., Any]:
    return lambda store, env: store.upload_file(
        b"hostile", filename, path=path, logic_bucket=sub(bucket, env) if bucket else None
    )


def _presign(expiry: Any, method: str = "GET") -> Callable[[Any, dict[str, str]], Any]:
    return lambda store, env: store.get_presigned_url(
        sub("s3://<main>/tenant-a/seed.txt", env), expiry, method
    )


def _from_url(url: str) -> Callable[[Any, dict[str, str]], Any]:
    return lambda store, env: store.upload_from_url(
        sub(url, env), path="tenant-a", block_private=True, timeout=3, deadline=5
    )


def sub(text: str, env: dict[str, str]) -> str:
    for name, value in env.items():
        text = text.replace(f"<{name}>", value)
    return text


URIError = (errors.URIParseError,)
KeyErrors = (errors.InvalidKeyError, errors.URIParseError)
BucketErrors = (errors.InvalidBucketNameError, errors.URIParseError)
Invalid = (errors.InvalidInputError,)

LIB_ROWS: list[Lib] = [
    Lib("lib-uri-scheme-http", "uri", _download("http://<main>/tenant-a/seed.txt"), URIError),
    Lib("lib-uri-empty-bucket", "uri", _download("s3:///tenant-a/seed.txt"), URIError),
    Lib("lib-uri-empty-key", "uri", _download("s3://<main>/"), URIError),
    Lib("lib-uri-space-in-bucket", "uri", _download("s3://ma in/x"), URIError),
    Lib("lib-uri-control-in-key", "uri", _upload_to("s3://<main>/tenant-a/a\x07b"), URIError),
    Lib("lib-uri-very-long", "uri", _upload_to("s3://<main>/" + LONG_KEY), URIError),
    Lib(
        "lib-uri-not-a-string", "uri", lambda store, env: store.download_file(b"s3://x/y"), URIError
    ),
    Lib("lib-key-nul", "key", _upload_to("s3://<main>/tenant-a/a\x00b"), KeyErrors),
    Lib(
        "lib-key-dotdot", "key", _upload_to("s3://<main>/tenant-a/../tenant-b/seed.txt"), KeyErrors
    ),
    Lib("lib-key-dot-segment", "key", _upload_to("s3://<main>/tenant-a/./seed.txt"), KeyErrors),
    Lib("lib-key-backslash", "key", _upload_to("s3://<main>/tenant-a\\..\\seed.txt"), KeyErrors),
    Lib("lib-key-lone-surrogate", "key", _upload_to("s3://<main>/tenant-a/x\udcff"), KeyErrors),
    Lib(
        "lib-key-segment-256", "key", _upload_to("s3://<main>/tenant-a/" + LONG_SEGMENT), KeyErrors
    ),
    Lib("lib-key-path-dotdot", "key", _upload_file("seed.txt", "tenant-a/../tenant-b"), KeyErrors),
    Lib("lib-key-filename-dotdot", "key", _upload_file("../seed.txt", "tenant-a"), KeyErrors),
    Lib("lib-key-filename-backslash", "key", _upload_file("..\\seed.txt", "tenant-a"), KeyErrors),
    Lib("lib-key-filename-control", "key", _upload_file("a\rb.txt", "tenant-a"), KeyErrors),
    Lib("lib-key-path-too-long", "key", _upload_file("x.txt", LONG_KEY), KeyErrors),
    Lib(
        "lib-key-list-prefix-dotdot",
        "key",
        lambda store, env: store.list_files(sub("<main>", env), prefix="tenant-a/../"),
        KeyErrors,
    ),
    Lib("lib-bucket-uppercase", "bucket", _upload_file("x.txt", "tenant-a", "Main"), BucketErrors),
    Lib("lib-bucket-too-short", "bucket", _upload_file("x.txt", "tenant-a", "ab"), BucketErrors),
    Lib(
        "lib-bucket-ip-like", "bucket", _upload_file("x.txt", "tenant-a", "10.1.2.3"), BucketErrors
    ),
    Lib(
        "lib-bucket-underscore",
        "bucket",
        _upload_file("x.txt", "tenant-a", "my_bucket"),
        BucketErrors,
    ),
    Lib(
        "lib-bucket-create-too-long",
        "bucket",
        lambda store, env: store.bucket_manager.create_bucket("b" * 64),
        BucketErrors,
    ),
    Lib("lib-presign-zero", "presign", _presign(0), Invalid),
    Lib("lib-presign-negative", "presign", _presign(-60), Invalid),
    Lib("lib-presign-over-7-days", "presign", _presign(7 * 86400 + 1), Invalid),
    Lib("lib-presign-string", "presign", _presign("3600"), Invalid),
    Lib("lib-presign-float", "presign", _presign(1.5), Invalid),
    Lib("lib-presign-bool", "presign", _presign(True), Invalid),
    Lib("lib-presign-method-delete", "presign", _presign(60, "DELETE"), Invalid),
    Lib(
        "lib-range-beyond-end",
        "range",
        _download("s3://<main>/tenant-a/seed.txt", offset=100),
        (errors.InvalidRangeError,),
    ),
    Lib(
        "lib-range-at-size",
        "range",
        _download("s3://<main>/tenant-a/seed.txt", offset=26),
        (errors.InvalidRangeError,),
    ),
    Lib(
        "lib-range-negative-offset",
        "range",
        _download("s3://<main>/tenant-a/seed.txt", offset=-1),
        Invalid,
    ),
    Lib(
        "lib-range-negative-length",
        "range",
        _download("s3://<main>/tenant-a/seed.txt", length=-5),
        Invalid,
    ),
    Lib(
        "lib-mapping-stale-version",
        "mapping",
        lambda store, env: store.update_bucket_mapping(
            True, {"user": sub("<other>", env)}, {**MAPPING_VERSION, "generation": 4}
        ),
        (errors.ConflictError,),
    ),
    Lib(
        "lib-mapping-invalid-physical",
        "mapping",
        lambda store, env: store.update_bucket_mapping(True, {"user": "Bad_Bucket"}),
        (errors.InvalidInputError,),
    ),
    Lib("lib-url-loopback", "url", _from_url("<src>/f"), (errors.UnsafeURLError,)),
    Lib(
        "lib-url-decimal", "url", _from_url("http://2130706433:<port>/f"), (errors.UnsafeURLError,)
    ),
    Lib("lib-url-hex-short", "url", _from_url("http://0x7f.1:<port>/f"), (errors.UnsafeURLError,)),
    Lib(
        "lib-url-mapped-ipv6",
        "url",
        _from_url("http://[::ffff:127.0.0.1]:<port>/f"),
        (errors.UnsafeURLError,),
    ),
    Lib(
        "lib-url-metadata",
        "url",
        _from_url("http://169.254.169.254/latest/meta-data/"),
        (errors.UnsafeURLError,),
    ),
    Lib(
        "lib-url-private-10", "url", _from_url("http://10.0.0.1:<port>/f"), (errors.UnsafeURLError,)
    ),
    Lib("lib-url-scheme-file", "url", _from_url("file:///etc/passwd"), (errors.UnsafeURLError,)),
]
