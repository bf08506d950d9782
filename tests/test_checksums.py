"""End-to-end integrity: every upload path records CRC32C (and SHA-256 where known),
a declared checksum that does not match is refused and leaves nothing, downloads carry
``Repr-Digest``, and a stored object corrupted behind RefStore's back fails the SDK's
and the CLI's checks, leaving no file. Real gateways on MinIO and the local backend."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import BACKENDS, Gateway, backend_settings, running_gateway
from gateway_helpers import unique as unique_name
from httpsource import HttpSource
from minio import Minio
from sdk_helpers import ADMIN_TOKEN, Unseekable, open_client

from refstore import RefStore, errors
from refstore.checksums import Checksums, as_checksums, crc32c_of, from_headers, sha256_of

MiB = 1024 * 1024
BUCKET = unique_name("integrity")


def computed(data: bytes) -> dict[str, str]:
    """What an upload computes by default (and records where it is sent in one request)."""
    return {"crc32c": crc32c_of(data), "sha256": sha256_of(data)}


def content_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


# -- the checksum module (no server) -------------------------------------------------


def test_declared_checksums_are_read_from_content_digest_and_s3_headers() -> None:
    data = b"hello"
    declared = from_headers(
        {"Content-Digest": content_digest(data), "x-amz-checksum-crc32c": crc32c_of(data)}
    )
    assert declared.as_dict() == computed(data)
    # Algorithms RefStore does not compute are ignored; the dictionary round-trips.
    assert from_headers({"content-digest": "md5=:AAAA:"}).as_dict() == {}
    again = from_headers({"Repr-Digest": declared.digest_header()}, digest_field="repr-digest")
    assert again == declared


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Digest": "sha-256=not-a-byte-sequence"},
        {"Content-Digest": "sha-256=:AAAA:"},  # not 32 bytes
        {"x-amz-checksum-crc32c": "%%%"},
        # Two declarations of one algorithm that disagree.
        {"Content-Digest": content_digest(b"a"), "x-amz-checksum-sha256": sha256_of(b"b")},
    ],
)
def test_a_malformed_declaration_is_invalid_input(headers: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidInputError):
        from_headers(headers)


def test_expected_checksums_given_as_a_mapping_are_validated() -> None:
    assert as_checksums({"crc32c": crc32c_of(b"x")}) == Checksums({"crc32c": crc32c_of(b"x")})
    with pytest.raises(errors.InvalidInputError, match="unknown checksum algorithm"):
        as_checksums({"md5": "AAAA"})
    with pytest.raises(errors.InvalidInputError):
        as_checksums({"sha256": crc32c_of(b"x")})
    with pytest.raises(errors.IntegrityError) as mismatch:
        Checksums(computed(b"a")).check(Checksums(computed(b"b")), "thing")
    assert isinstance(mismatch.value, errors.InvalidInputError)
    assert mismatch.value.context["expected"] == computed(b"a")


# -- the library, on each backend -----------------------------------------------------


@pytest.mark.parametrize("size", [1000, 12 * MiB])  # one request; multipart on MinIO
def test_the_library_records_checksums_and_refuses_a_mismatch_keeping_the_old_object(
    store: RefStore, size: int
) -> None:
    uri = f"s3://{store.default_bucket}/lib/{secrets.token_hex(4)}.bin"
    old, new = os.urandom(size), os.urandom(size)
    # A declared SHA-256 is computed and checked (and so answered) on top of the CRC32C.
    info = store.upload_to(uri, old, checksums={"sha256": sha256_of(old)})
    assert info.checksums.as_dict() == computed(old)
    assert store.get_file_info(uri)["checksums"]["crc32c"] == crc32c_of(old)
    for stream in (io.BytesIO(new), Unseekable(new)):  # known and unknown length
        with pytest.raises(errors.IntegrityError):
            store.upload_to(uri, stream, checksums={"crc32c": crc32c_of(old)})
    assert store.download_file(uri) == old  # the object there before is untouched
    assert store.list_uploads() == []  # no multipart upload left behind


@pytest.mark.parametrize("setting", [{}, {"sha256": False}, {"checksums": False}])
def test_sha256_and_all_checksums_can_be_turned_off(
    backend_config: dict[str, Any], setting: dict[str, bool]
) -> None:
    data = os.urandom(2000)
    with RefStore({**backend_config, **setting}) as store:
        store.init_buckets()
        uri = f"s3://{store.default_bucket}/policy.bin"
        answered = store.upload_to(uri, data).checksums.as_dict()
        kept = store.get_file_info(uri)["checksums"]
        # Even with checksums off, a declared one is checked.
        with pytest.raises(errors.IntegrityError):
            store.upload_to(uri, b"other", checksums={"crc32c": crc32c_of(data)})
    if not setting:
        expected = computed(data)
    elif "sha256" in setting:
        expected = {"crc32c": crc32c_of(data)}
    else:
        expected = {}
    assert answered == kept == expected


def test_upload_from_url_records_the_checksums_and_checks_declared_ones(
    store: RefStore, http_source: HttpSource
) -> None:
    body = os.urandom(70_000)
    http_source.files["/data.bin"] = (body, "application/octet-stream")
    url = f"{http_source.url}/data.bin"
    uri = store.upload_from_url(url, path="fetched")
    assert store.get_file_info(uri)["checksums"]["crc32c"] == crc32c_of(body)
    with pytest.raises(errors.IntegrityError):
        store.upload_from_url(url, path="declared", checksums={"sha256": sha256_of(b"other")})
    assert list(store.iter_files(prefix="declared/")) == []


def test_the_library_download_refuses_a_corrupted_object(store: RefStore, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    uri = f"s3://{store.default_bucket}/lib/corrupt.bin"
    store.upload_to(uri, data)
    settings = store.settings
    minio = settings.minio
    corrupt(
        {"minio": minio.model_dump()} if minio else {"local": {"root": settings.local.root}},
        store.default_bucket,
        "lib/corrupt.bin",
        data,
    )
    downloads = tmp_path / "downloads"
    with pytest.raises(errors.IntegrityError):
        store.download_to_local(uri, downloads / "out.bin")
    assert list(downloads.iterdir()) == []


def corrupt(settings: dict[str, Any], bucket: str, name: str, data: bytes) -> None:
    """Change the stored bytes without RefStore: on the local disk, or by overwriting
    the object on MinIO directly, without a checksum but keeping RefStore's metadata."""
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    if "local" in settings:
        Path(settings["local"]["root"], bucket, name).write_bytes(bytes(bad))
        return
    minio = settings["minio"]
    secret = minio["secret_key"]
    secret = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    raw = Minio(minio["endpoint"], minio["access_key"], secret, secure=False)
    stat = raw.stat_object(bucket, name)
    kept = {
        k[len("x-amz-meta-") :]: v
        for k, v in (stat.metadata or {}).items()
        if k.lower().startswith("x-amz-meta-")
    }
    assert kept, "RefStore recorded the checksums in the object's metadata"
    raw.put_object(bucket, name, io.BytesIO(bytes(bad)), len(bad), metadata=kept)


# -- through a gateway ----------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings["default_bucket"] = BUCKET
    with running_gateway(request.param, settings, links_to_self=request.param == "local") as gw:
        gw.create_bucket(BUCKET)
        yield gw


def key() -> str:
    return f"sums/{secrets.token_hex(5)}.bin"


def test_every_upload_path_answers_and_records_the_checksums(
    gateway: Gateway, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    admin = gateway.admin
    answers = {
        "raw": admin.put(f"/files/{BUCKET}/{key()}", content=data).json(),
        "form": admin.post(
            "/upload", data={"path": "sums"}, files={"file": ("f.bin", data)}
        ).json(),
    }
    source = tmp_path / "big.bin"
    source.write_bytes(data * 40)  # 12 MB: parts of 5 MiB
    with open_client("sync", gateway.url) as client:
        answers["sdk"] = dict(client.upload_to(f"s3://{BUCKET}/{key()}", data))
        session = client.upload_large(source, f"s3://{BUCKET}/{key()}", part_size=5 * MiB)
        infos = {name: client.get_file_info(a["uri"])["info"] for name, a in answers.items()}
        session_info = client.get_file_info(session["uri"])["info"]
    for name, answer in answers.items():
        assert answer["checksums"] == computed(data), name
        assert infos[name]["checksums"]["crc32c"] == crc32c_of(data), name
    # A multipart object has the CRC32C of all its bytes (S3's FULL_OBJECT type).
    assert session["checksums"]["crc32c"] == session_info["checksums"]["crc32c"]
    assert session_info["checksums"]["crc32c"] == crc32c_of(data * 40)


@pytest.mark.parametrize("size", [100_000, 12 * MiB])
def test_a_declared_checksum_that_does_not_match_is_a_400_and_leaves_the_old_object(
    gateway: Gateway, size: int
) -> None:
    name = key()
    old, new = os.urandom(size), os.urandom(size)
    admin = gateway.admin
    assert admin.put(f"/files/{BUCKET}/{name}", content=old).status_code == 200
    declarations = [
        {"Content-Digest": content_digest(old)},
        {"x-amz-checksum-crc32c": crc32c_of(old)},
        {"x-amz-checksum-sha256": sha256_of(old)},
    ]
    for headers in declarations:
        refused = admin.put(f"/files/{BUCKET}/{name}", content=new, headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "checksum_mismatch"
    form = admin.post(
        "/upload",
        data={"path": "sums"},
        files={"file": ("declared.bin", new)},
        headers={"x-amz-checksum-crc32c": crc32c_of(old)},
    )
    assert form.status_code == 400 and form.json()["code"] == "checksum_mismatch"
    assert gateway.read(BUCKET, name) == old
    assert gateway.read(BUCKET, "sums/declared.bin") is None
    right = admin.put(
        f"/files/{BUCKET}/{name}", content=new, headers={"Content-Digest": content_digest(new)}
    )
    assert right.status_code == 200 and right.json()["checksums"] == computed(new)
    assert admin.get("/uploads", params={"prefix": "sums/"}).json()["uploads"] == []


def test_a_presigned_put_that_does_not_match_its_declared_crc_stores_nothing(
    gateway: Gateway,
) -> None:
    name = key()
    link = gateway.admin.get(
        "/presigned-url", params={"uri": f"s3://{BUCKET}/{name}", "method": "PUT"}
    ).json()["url"]
    data = os.urandom(10_000)
    with httpx.Client(trust_env=False, timeout=60) as anonymous:
        # Straight to MinIO (which checks the header), or the local backend's signed link.
        wrong = anonymous.put(
            link, content=data, headers={"x-amz-checksum-crc32c": crc32c_of(b"x")}
        )
        assert wrong.status_code == 400, wrong.text
        assert gateway.read(BUCKET, name) is None
        right = anonymous.put(
            link, content=data, headers={"x-amz-checksum-crc32c": crc32c_of(data)}
        )
        assert right.status_code == 200
    assert gateway.read(BUCKET, name) == data


def test_a_session_part_that_does_not_match_its_declared_crc_is_refused(
    gateway: Gateway,
) -> None:
    admin = gateway.admin
    session = admin.post("/uploads", json={"uri": f"s3://{BUCKET}/{key()}"}).json()
    part = os.urandom(5 * MiB)
    url = f"/uploads/{session['upload_id']}/parts/1"
    wrong = admin.put(url, content=part, headers={"x-amz-checksum-crc32c": crc32c_of(b"x")})
    assert wrong.status_code == 400 and wrong.json()["code"] == "checksum_mismatch"
    assert admin.get(f"/uploads/{session['upload_id']}").json()["parts"] == []
    right = admin.put(url, content=part, headers={"x-amz-checksum-crc32c": crc32c_of(part)})
    assert right.json()["checksum_crc32c"] == crc32c_of(part)
    assert admin.delete(f"/uploads/{session['upload_id']}").status_code == 200


def test_completing_with_a_part_checksum_that_is_not_the_stored_parts_fails(
    gateway: Gateway,
) -> None:
    admin = gateway.admin
    name = key()
    session = admin.post("/uploads", json={"uri": f"s3://{BUCKET}/{name}"}).json()
    assert session["checksum_algorithm"] == "CRC32C"
    upload = f"/uploads/{session['upload_id']}"
    data = [os.urandom(5 * MiB), os.urandom(1000)]
    parts = []
    for number, part in enumerate(data, start=1):
        answer = admin.put(f"{upload}/parts/{number}", content=part).json()
        assert answer["checksum_crc32c"] == crc32c_of(part)  # computed by the gateway
        parts.append(answer)
    wrong = [{**parts[0], "checksum_crc32c": crc32c_of(b"not part 1")}, parts[1]]
    refused = admin.post(f"{upload}/complete", json={"parts": wrong})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_part"
    assert gateway.read(BUCKET, name) is None
    done = admin.post(f"{upload}/complete", json={"parts": parts})
    assert done.status_code == 200
    assert done.json()["checksums"]["crc32c"] == crc32c_of(b"".join(data))


def test_whole_object_downloads_carry_repr_digest_and_ranges_do_not(gateway: Gateway) -> None:
    data = os.urandom(50_000)
    name = key()
    gateway.put(BUCKET, name, data)
    whole = gateway.admin.get(f"/files/{BUCKET}/{name}")
    declared = from_headers(whole.headers, digest_field="repr-digest")
    assert declared.as_dict() == computed(data)
    assert whole.headers["x-amz-checksum-crc32c"] == crc32c_of(data)
    ranged = gateway.admin.get(f"/files/{BUCKET}/{name}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and "repr-digest" not in ranged.headers


def corrupt_behind_the_gateway(gateway: Gateway, name: str, data: bytes) -> None:
    corrupt(gateway.process.settings, BUCKET, name, data)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_corrupted_object_fails_the_sdk_download_and_leaves_no_file(
    gateway: Gateway, face: str, tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    name = key()
    uri = gateway.put(BUCKET, name, data)
    with open_client(face, gateway.url) as client:
        assert client.download_file(uri) == data  # intact: verified and fine
        corrupt_behind_the_gateway(gateway, name, data)
        target = tmp_path / "out.bin"
        for direct in (False, True):  # through the gateway, and through a presigned URL
            with pytest.raises(errors.IntegrityError):
                client.download_to_local(uri, target, direct=direct, raise_errors=True)
            # (refstore 0.3.0's way: False, and still no file)
            assert client.download_to_local(uri, target, direct=direct) is False
        with pytest.raises(errors.IntegrityError):
            client.download_file(uri)
        with pytest.raises(errors.IntegrityError):
            for _ in client.iter_bytes(uri):
                pass
        # Part of an object cannot be checked: a range is served as stored.
        assert len(client.download_file(uri, offset=10, length=100)) == 100
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gateway_with_checksums_off_takes_sessions_without_them(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    settings = backend_settings(backend, request, tmp_path_factory)
    settings.update(default_bucket=BUCKET, checksums=False)
    source = tmp_path / "data.bin"
    data = os.urandom(2 * 5 * MiB + 3)
    source.write_bytes(data)
    with running_gateway(backend, settings, links_to_self=backend == "local") as gw:
        gw.create_bucket(BUCKET)
        session = gw.admin.post("/uploads", json={"uri": f"s3://{BUCKET}/{key()}"}).json()
        assert session["checksum_algorithm"] is None
        url = gw.admin.get(f"/uploads/{session['upload_id']}/parts/1/url").json()
        assert url["required_headers"] == []
        with open_client("sync", gw.url) as client:
            for direct in (None, False):  # presigned parts, then parts via the gateway
                uri = f"s3://{BUCKET}/{key()}"
                answer = client.upload_large(
                    source, uri, part_size=5 * MiB, direct=direct, state_dir=tmp_path / "s"
                )
                assert answer["checksums"] is None
                assert client.download_file(uri) == data


def test_refstore_verify_checks_an_object_and_a_local_file(
    gateway: Gateway, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    name = key()
    uri = gateway.put(BUCKET, name, data)
    same, other = tmp_path / "same.bin", tmp_path / "other.bin"
    same.write_bytes(data)
    other.write_bytes(data[:-1] + b"!")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")},
        "REFSTORE_GATEWAY_URL": gateway.url,
        "REFSTORE_API_KEY": ADMIN_TOKEN,
    }

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "refstore.cli", "verify", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert verify(uri).returncode == 0
    matched = verify(uri, str(same))
    assert matched.returncode == 0 and matched.stdout.startswith("ok: ")
    differs = verify(uri, str(other))
    assert differs.returncode == 6 and "do not match their checksum" in differs.stderr
    corrupt_behind_the_gateway(gateway, name, data)
    assert verify(uri).returncode == 6
