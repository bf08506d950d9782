"""Keys are exact: a key is the text the client sent, or the request is refused.

Percent-escapes in the key of ``/files/{bucket}/{key}`` and in ``uri=`` query parameters
must decode to valid UTF-8, else the answer is 400 ``invalid_key`` and nothing is stored
(the server's own decoding would have put U+FFFD in their place, so that ``x%ff`` and
``x%fe`` named one object). And one Unicode policy, NFC, for every key: the NFC and NFD
spellings of a name are one object through a raw PUT, a form upload and the library.
In process on the local backend, through the fast routes and the declared routes alike.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from minio import Minio
from servers import MinioServer
from test_fast_routes import LOGICAL, PHYSICAL, InProcessGateway, in_process, settings_for

from refstore import RefStore, keys
from refstore.errors import InvalidKeyError
from refstore.web.fast_routes import FastRoute

NFC = unicodedata.normalize("NFC", "café ñandú.txt")
NFD = unicodedata.normalize("NFD", NFC)
# Percent-escapes that are not UTF-8: lone bytes, an overlong '.', a UTF-16 surrogate,
# a truncated sequence, a code point above U+10FFFF.
NOT_UTF8 = ["x%ff", "x%fe", "x%c0%ae", "%c0%ae%c0%ae/x", "x%ed%a0%80", "x%e2%82", "x%f4%90%80%80"]
ROUTES = ["fast", "declared"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(params=ROUTES)
def gateway(request: pytest.FixtureRequest, root: Path) -> Iterator[InProcessGateway]:
    """The gateway, with its fast routes or with the declared routes only."""
    with in_process(settings_for(root)) as running:
        if request.param == "fast":
            yield running
        else:
            with running.declared_routes_only():
                yield running


def stored_keys(gateway: InProcessGateway) -> list[str]:
    response, _ = gateway.request("GET", f"/list?logic_bucket={LOGICAL}")
    assert response.status_code == 200, response.text
    return sorted(entry["object_name"] for entry in response.json()["files"])


def assert_invalid_key(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_key", response.text


def answered_by_fast_route(gateway: InProcessGateway) -> bool:
    return isinstance(gateway.recorder.routes[-1], FastRoute)


@pytest.mark.parametrize("key", NOT_UTF8)
def test_a_put_key_that_is_not_utf8_is_refused_and_nothing_is_stored(
    gateway: InProcessGateway, key: str
) -> None:
    response, _ = gateway.request("PUT", f"/files/{LOGICAL}/{key}", content=b"one")
    assert_invalid_key(response)
    assert stored_keys(gateway) == []


def test_x_ff_and_x_fe_are_not_one_object(gateway: InProcessGateway) -> None:
    for key in ("x%ff", "x%fe"):
        response, _ = gateway.request("PUT", f"/files/{LOGICAL}/{key}", content=key.encode())
        assert_invalid_key(response)
    assert stored_keys(gateway) == []


@pytest.mark.parametrize("key", NOT_UTF8)
def test_a_get_key_that_is_not_utf8_is_refused(gateway: InProcessGateway, key: str) -> None:
    stored, _ = gateway.request("PUT", f"/files/{LOGICAL}/x\ufffd", content=b"replacement")
    assert stored.status_code == 200, stored.text
    response, _ = gateway.request("GET", f"/files/{LOGICAL}/{key}")
    assert_invalid_key(response)


@pytest.mark.parametrize("key", NOT_UTF8)
@pytest.mark.parametrize("endpoint", ["/download", "/info", "/presigned-url"])
def test_a_uri_parameter_that_is_not_utf8_is_refused(
    gateway: InProcessGateway, endpoint: str, key: str
) -> None:
    stored, _ = gateway.request("PUT", f"/files/{LOGICAL}/x\ufffd", content=b"replacement")
    assert stored.status_code == 200, stored.text
    response, _ = gateway.request("GET", f"{endpoint}?uri=s3://{LOGICAL}/{key}")
    assert_invalid_key(response)


def test_download_of_x_ff_is_refused_by_the_fast_route_itself(root: Path) -> None:
    with in_process(settings_for(root)) as gateway:
        response, _ = gateway.request("GET", f"/download?uri=s3://{PHYSICAL}/x%ff")
        assert_invalid_key(response)
        assert answered_by_fast_route(gateway)


def test_an_encoded_replacement_character_is_a_key_like_any_other(
    gateway: InProcessGateway,
) -> None:
    put, _ = gateway.request("PUT", f"/files/{LOGICAL}/x%EF%BF%BD", content=b"fffd")
    assert put.status_code == 200, put.text
    assert put.json()["uri"] == f"s3://{PHYSICAL}/x\ufffd"
    assert gateway.request("GET", f"/files/{LOGICAL}/x%ef%bf%bd")[0].content == b"fffd"
    download, _ = gateway.request("GET", f"/download?uri=s3://{LOGICAL}/x%EF%BF%BD")
    assert download.content == b"fffd"
    assert stored_keys(gateway) == ["x\ufffd"]


@pytest.mark.parametrize("written", [NFC, NFD])
def test_nfc_and_nfd_spellings_are_one_object_through_raw_put(
    gateway: InProcessGateway, written: str
) -> None:
    put, _ = gateway.request("PUT", f"/files/{LOGICAL}/dir/{written}", content=b"v1")
    assert put.status_code == 200, put.text
    assert put.json()["uri"] == f"s3://{PHYSICAL}/dir/{NFC}"
    for spelling in (NFC, NFD):
        read, _ = gateway.request("GET", f"/files/{LOGICAL}/dir/{spelling}")
        assert read.content == b"v1"
        read, _ = gateway.request("GET", f"/download?uri=s3://{LOGICAL}/dir/{spelling}")
        assert read.content == b"v1"
    other = NFD if written == NFC else NFC
    gateway.request("PUT", f"/files/{LOGICAL}/dir/{other}", content=b"v2")
    assert stored_keys(gateway) == [f"dir/{NFC}"]
    assert gateway.request("GET", f"/files/{LOGICAL}/dir/{written}")[0].content == b"v2"


def test_form_upload_and_raw_put_of_either_spelling_are_one_object(
    gateway: InProcessGateway,
) -> None:
    form, _ = gateway.request(
        "POST",
        "/upload",
        data={"logic_bucket": LOGICAL, "path": "dir"},
        files={"file": (NFD, b"form")},
    )
    assert form.status_code == 200, form.text
    assert form.json()["uri"] == f"s3://{PHYSICAL}/dir/{NFC}"
    gateway.request("PUT", f"/files/{LOGICAL}/dir/{NFD}", content=b"raw")
    assert stored_keys(gateway) == [f"dir/{NFC}"]
    assert gateway.request("GET", f"/files/{LOGICAL}/dir/{NFC}")[0].content == b"raw"


def test_the_library_and_the_gateway_agree_on_the_spelling(root: Path) -> None:
    with in_process(settings_for(root)) as gateway:
        gateway.request("PUT", f"/files/{LOGICAL}/dir/{NFD}", content=b"gateway")
        with RefStore({"local": {"root": str(root)}, "default_bucket": PHYSICAL}) as store:
            assert store.download_file(f"s3://{PHYSICAL}/dir/{NFD}") == b"gateway"
            assert store.download_file(f"s3://{PHYSICAL}/dir/{NFC}") == b"gateway"
            store.upload_to(f"s3://{PHYSICAL}/dir/{NFD}", b"library")
            uploaded = store.upload_file(io.BytesIO(b"file"), NFD, path=f"dir2/{NFD}")
            assert uploaded == f"s3://{PHYSICAL}/dir2/{NFC}/{NFC}"
        assert gateway.request("GET", f"/files/{LOGICAL}/dir/{NFD}")[0].content == b"library"
        assert stored_keys(gateway) == [f"dir/{NFC}", f"dir2/{NFC}/{NFC}"]


def test_strict_unquoting_refuses_what_is_not_utf8() -> None:
    assert keys.unquote_strict(b"caf%C3%A9%20x") == "café x"
    assert keys.unquote_strict(b"x%EF%BF%BD") == "x\ufffd"
    for raw in NOT_UTF8:
        with pytest.raises(InvalidKeyError):
            keys.unquote_strict(raw.encode())


def test_keys_are_normalised_to_nfc() -> None:
    assert keys.normalize_key(f"a/{NFD}") == f"a/{NFC}"
    with pytest.raises(InvalidKeyError):
        keys.normalize_key("a/../b")


@pytest.mark.parametrize("routes", ROUTES)
def test_on_minio_keys_are_exact_and_nfc(
    minio_server: MinioServer, tmp_path: Path, routes: str
) -> None:
    """The same, briefly, on real MinIO: what is stored is read back through MinIO itself."""
    bucket = f"exact-{uuid.uuid4().hex[:12]}"
    minio = minio_server.config()["minio"]
    settings = settings_for(
        tmp_path, local=None, minio=minio, default_bucket=bucket, bucket_map={LOGICAL: bucket}
    )
    with in_process(settings) as gateway, contextlib.ExitStack() as stack:
        if routes == "declared":
            stack.enter_context(gateway.declared_routes_only())
        for key in NOT_UTF8:
            assert_invalid_key(gateway.request("PUT", f"/files/{LOGICAL}/{key}", content=b"x")[0])
            assert_invalid_key(gateway.request("GET", f"/download?uri=s3://{bucket}/{key}")[0])
        put = gateway.request("PUT", f"/files/{LOGICAL}/x%EF%BF%BD", content=b"fffd")[0]
        assert put.status_code == 200, put.text
        put = gateway.request("PUT", f"/files/{LOGICAL}/dir/{NFD}", content=b"raw")[0]
        assert put.json()["uri"] == f"s3://{bucket}/dir/{NFC}"
        form, _ = gateway.request(
            "POST",
            "/upload",
            data={"logic_bucket": LOGICAL, "path": "dir"},
            files={"file": (NFD, b"form")},
        )
        assert form.json()["uri"] == f"s3://{bucket}/dir/{NFC}"
        with RefStore({**minio_server.config(), "default_bucket": bucket}) as store:
            assert store.download_file(f"s3://{bucket}/dir/{NFD}") == b"form"
        client = Minio(minio["endpoint"], minio["access_key"], minio["secret_key"], secure=False)
        stored = sorted(o.object_name for o in client.list_objects(bucket, recursive=True))
        assert stored == [f"dir/{NFC}", "x\ufffd"]


def test_the_cli_uploads_a_file_named_in_nfd_under_its_nfc_key(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "refstore.yaml"
    config.write_text(json.dumps({"local": {"root": str(root)}, "default_bucket": PHYSICAL}))
    source = tmp_path / "source" / NFD
    source.parent.mkdir()
    source.write_bytes(b"cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}
    command = [sys.executable, "-m", "refstore.cli", "--config", str(config), "upload"]
    for target in (f"s3://{PHYSICAL}/dir/", f"s3://{PHYSICAL}/other/{NFD}"):
        subprocess.run(
            [*command, str(source), target],
            env=env,
            capture_output=True,
            check=True,
            timeout=120,
        )
    with RefStore({"local": {"root": str(root)}, "default_bucket": PHYSICAL}) as store:
        listed = sorted(entry["object_name"] for entry in store.list_files())
        assert listed == [f"dir/{NFC}", f"other/{NFC}"]
        assert store.download_file(f"s3://{PHYSICAL}/dir/{NFD}") == b"cli"


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_a_listing_prefix_finds_the_name_it_spells_in_either_form(
    tmp_path: Path, form: str
) -> None:
    folder = unicodedata.normalize("NFC", "año")
    with RefStore({"local": {"root": str(tmp_path)}}) as store:
        store.upload_file(b"x", "a.txt", path=folder)
        listed = store.list_files(prefix=unicodedata.normalize(form, folder))
    assert [item["object_name"] for item in listed] == [f"{folder}/a.txt"]


def test_a_local_presigned_link_for_a_key_that_is_not_utf8_is_refused(root: Path) -> None:
    with in_process(settings_for(root)) as gateway:
        answer, _ = gateway.request(
            "GET", "/presigned-url", params={"uri": f"s3://{LOGICAL}/mine/a.txt", "method": "PUT"}
        )
        path, _, query = answer.json()["url"].partition("?")
        signed, _ = gateway.request("PUT", f"{path}?{query}", token=None, content=b"x")
        assert signed.status_code == 200, signed.text
        forged = path.rsplit("/", 1)[0] + "/a%ff.txt?" + query
        refused, _ = gateway.request("PUT", forged, token=None, content=b"y")
        assert_invalid_key(refused)
