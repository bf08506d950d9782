"""Round trips of generated names: every valid key (Unicode, in NFC) and bucket name makes
a URI that decodes back to them, and an object stored under such a key, through the
library (local backend and MinIO) or the gateway, reads back byte-identical under the same
key and lists under it. Invalid names (escapes that are not UTF-8, NUL and other control
characters, ``.``/``..`` segments, overlong keys) are a 400 JSON error with a code.

Example counts are bounded (derandomized) so that the file runs in seconds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from gateway_helpers import BACKENDS, Gateway, backend_settings, running_gateway, unique
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from refstore import RefStore
from refstore.errors import InvalidKeyError, URIParseError
from refstore.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, validate_bucket_name, validate_key
from refstore.uri import decode_uri, encode_uri, normalize_uri

PURE = settings(max_examples=300, derandomize=True, database=None, deadline=None)
STORED = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any character a key may hold: no surrogates (not UTF-8), no C0 controls or DEL, and
# neither '/' (the separator) nor '\\'.
KEY_CHARACTERS = st.characters(
    exclude_categories=("Cs",), exclude_characters="/\\\x7f" + "".join(map(chr, range(32)))
)


def _fits(segment: str) -> bool:
    return segment not in (".", "..") and len(segment.encode()) <= MAX_SEGMENT_BYTES


segments = (
    st.text(KEY_CHARACTERS, min_size=1, max_size=24)
    .map(lambda text: unicodedata.normalize("NFC", text))
    .filter(_fits)
)
keys = (
    st.lists(segments, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda key: len(key.encode()) <= MAX_KEY_BYTES - 10)
)
"""Valid object keys, in NFC (with room for a directory of their own, see :func:`fresh`)."""


def _valid_bucket(name: str) -> bool:
    try:
        validate_bucket_name(name)
    except Exception:
        return False
    return True


buckets = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]\Z").filter(_valid_bucket)


# -- URIs ------------------------------------------------------------------------------------


@PURE
@given(bucket=buckets, key=keys)
@example(bucket="abc", key="caf\u00e9/\u00e9t\u00e9.txt")
def test_a_valid_key_and_bucket_make_a_uri_that_decodes_back_to_them(bucket: str, key: str) -> None:
    assert validate_key(key) == key
    uri = encode_uri(bucket, key)
    assert uri == f"s3://{bucket}/{key}"
    assert decode_uri(uri) == (bucket, key)


@PURE
@given(bucket=buckets, key=keys)
def test_a_key_spelled_nfd_names_the_same_uri_as_its_nfc_form(bucket: str, key: str) -> None:
    nfd = unicodedata.normalize("NFD", key)
    assume(len(nfd.encode()) <= MAX_KEY_BYTES)
    assert encode_uri(bucket, nfd) == encode_uri(bucket, key)
    assert decode_uri(f"s3://{bucket}/{nfd}") == (bucket, key)


@PURE
@given(bucket=buckets, key=keys, data=st.data())
def test_normalize_uri_is_idempotent_and_keeps_a_normal_uri(
    bucket: str, key: str, data: st.DataObject
) -> None:
    uri = encode_uri(bucket, key)
    assert normalize_uri(uri) == uri
    # The same key with doubled, leading and trailing slashes collapses to it.
    slashes = st.text("/", min_size=1, max_size=3)
    spaced = "".join(part + data.draw(slashes) for part in key.split("/"))
    messy = f"s3://{bucket}/{data.draw(slashes)}{spaced}"
    once = normalize_uri(messy)
    assert once == uri
    assert normalize_uri(once) == once


# Invalid keys: a valid key with one flaw put in.
FLAWS = {
    "NUL": lambda key: f"{key}\x00",
    "control character": lambda key: f"a\x1b{key}",
    "newline": lambda key: f"{key}\nx",
    "DEL": lambda key: f"{key}\x7f",
    "traversal": lambda key: f"../{key}",
    "inner traversal": lambda key: f"{key}/../x",
    "dot segment": lambda key: f"./{key}",
    "empty segment": lambda key: f"{key}//x",
    "backslash": lambda key: f"{key}\\x",
    "overlong key": lambda key: "/".join(["k" * 200] * 6),
    "overlong segment": lambda key: f"{key}/{'s' * (MAX_SEGMENT_BYTES + 1)}",
    "surrogate": lambda key: f"{key}\ud800",
}
flawed_keys = st.builds(
    lambda flaw, key: (flaw, FLAWS[flaw](key)), st.sampled_from(sorted(FLAWS)), keys
)


@PURE
@given(bucket=buckets, flawed=flawed_keys)
def test_an_invalid_key_makes_no_uri(bucket: str, flawed: tuple[str, str]) -> None:
    _, key = flawed
    with pytest.raises(URIParseError):
        decode_uri(f"s3://{bucket}/{key}")
    with pytest.raises(URIParseError):
        encode_uri(bucket, key)
    with pytest.raises(InvalidKeyError):
        validate_key(key)


# -- Through the library ---------------------------------------------------------------------


_examples = iter(range(1_000_000))


def fresh() -> str:
    """A directory of its own for an example's key: the examples share one bucket, and on
    the local backend an object and a prefix of the same name clash (409)."""
    return f"ex{next(_examples)}/"


def payload(key: str) -> bytes:
    """Bytes that tell the objects apart (and hold every byte value)."""
    return key.encode() + bytes(range(256))


@STORED
@given(key=keys)
@example(key="caf\u00e9 \u2603/\U0001f600 %2F?#&=+.txt")
def test_the_library_reads_a_stored_key_back_and_lists_it(store: RefStore, key: str) -> None:
    key = fresh() + key
    uri = encode_uri(store.default_bucket, key)
    data = payload(key)
    store.upload_to(uri, data)
    assert store.download_file(uri) == data
    info = store.get_file_info(uri)
    assert (info["object_name"], info["size"]) == (key, len(data))
    listed = [item["object_name"] for item in store.list_files(store.default_bucket, prefix=key)]
    assert key in listed


@STORED
@given(key=keys)
def test_the_library_takes_an_nfd_key_as_its_nfc_form(store: RefStore, key: str) -> None:
    nfd = unicodedata.normalize("NFD", key)
    assume(nfd != key and len(nfd.encode()) <= MAX_KEY_BYTES - 10)
    directory = fresh()
    key, nfd = directory + key, directory + nfd
    bucket = store.default_bucket
    store.upload_to(f"s3://{bucket}/{nfd}", payload(key))
    assert store.download_file(encode_uri(bucket, key)) == payload(key)
    assert key in [item["object_name"] for item in store.list_files(bucket, prefix=key)]


# -- Through the gateway ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    settings_ = dict(backend_settings(request.param, request, tmp_path_factory))
    settings_["default_bucket"] = unique("props")
    with running_gateway(request.param, settings_) as gateway:
        gateway.create_bucket(settings_["default_bucket"])
        yield gateway


def files_path(bucket: str, key: str) -> str:
    return f"/files/{bucket}/{quote(key, safe='/')}"


def assert_client_error(response: httpx.Response) -> Any:
    """A 400 with the JSON error body and a code."""
    request = f"{response.request.method} {response.request.url.raw_path.decode()}"
    assert response.status_code == 400, f"{request}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"} and body["detail"], body
    assert body["code"] in ("invalid_key", "invalid_uri", "invalid_input"), body
    return body


@STORED
@given(key=keys)
@example(key="caf\u00e9 \u2603/\U0001f600 %2F?#&=+.txt")
def test_the_gateway_reads_a_stored_key_back_and_lists_it(gateway: Gateway, key: str) -> None:
    key = fresh() + key
    bucket = gateway.process.settings["default_bucket"]
    uri = encode_uri(bucket, key)
    data = payload(key)
    admin = gateway.admin
    stored = admin.put(files_path(bucket, key), content=data)
    assert stored.status_code == 200, stored.text
    assert stored.json()["uri"] == uri
    read = admin.get(files_path(bucket, key))
    assert read.status_code == 200, read.text
    assert read.content == data
    info = admin.get("/info", params={"uri": uri})
    assert info.status_code == 200, info.text
    assert info.json()["exists"] is True
    assert (info.json()["info"]["object_name"], info.json()["info"]["size"]) == (key, len(data))
    listing = admin.get("/list", params={"logic_bucket": bucket, "prefix": key})
    assert listing.status_code == 200, listing.text
    assert key in [item["object_name"] for item in listing.json()["files"]]
    downloaded = admin.get("/download", params={"uri": uri})
    assert downloaded.status_code == 200 and downloaded.content == data


INVALID_ESCAPES = ["%ff", "%c0%af", "%ed%a0%80", "%e2%82", "%80", "a%fe/b"]
"""Percent-escapes that are not UTF-8: lone bytes, an overlong '/', a surrogate, a
truncated character."""


@STORED
@given(key=keys, escape=st.sampled_from(INVALID_ESCAPES))
def test_the_gateway_refuses_escapes_that_are_not_utf8(
    gateway: Gateway, key: str, escape: str
) -> None:
    bucket = gateway.process.settings["default_bucket"]
    path = f"{files_path(bucket, key)}{escape}"
    for method in ("PUT", "GET"):
        response = gateway.admin.request(method, path, content=b"x" if method == "PUT" else None)
        assert assert_client_error(response)["code"] == "invalid_key"
    query = f"uri=s3%3A%2F%2F{bucket}%2F{quote(key, safe='')}{escape}"
    for route in ("/info", "/download"):
        response = gateway.admin.get(f"{route}?{query}")
        assert assert_client_error(response)["code"] == "invalid_key"
    listing = gateway.admin.get(f"/list?logic_bucket={bucket}&prefix={escape}")
    assert assert_client_error(listing)["code"] == "invalid_key"


@STORED
@given(flawed=flawed_keys.filter(lambda flawed: flawed[0] != "surrogate"))
def test_the_gateway_refuses_an_invalid_key_with_a_400(
    gateway: Gateway, flawed: tuple[str, str]
) -> None:
    bucket = gateway.process.settings["default_bucket"]
    _, key = flawed
    # Escaped whole, so that no client or server resolves the dot segments first.
    path = f"/files/{bucket}/{quote(key, safe='')}"
    # A query the fast routes do not take (an unknown parameter) goes to the declared routes.
    for method in ("PUT", "GET"):
        for query in ("", "?unknown=1"):
            body = b"x" if method == "PUT" else None
            assert_client_error(gateway.admin.request(method, path + query, content=body))
    for route in ("/info", "/download", "/presigned-url"):
        assert_client_error(gateway.admin.get(route, params={"uri": f"s3://{bucket}/{key}"}))
