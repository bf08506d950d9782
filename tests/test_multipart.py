"""Multipart uploads through the library, on MinIO and on the local backend alike: parts in
any order, resent, listed to resume; the object appears whole on completion or not at all."""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, urlsplit

import pytest

from refstore import (
    InvalidInputError,
    InvalidPartError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PermissionDeniedError,
    RefStore,
    UploadNotFoundError,
)
from refstore.backends.base import MAX_PARTS, MIN_PART_SIZE, UploadedPart
from refstore.checksums import crc32c_of
from refstore.uploads import DEFAULT_PART_SIZE, MiB, MultipartUpload, choose_part_size

PART = MIN_PART_SIZE


def uri_of(store: RefStore, key: str) -> str:
    return f"s3://{store.default_bucket}/{key}"


def test_parts_sent_out_of_order_and_one_resent_make_the_object_in_part_order(
    store: RefStore,
) -> None:
    parts = [os.urandom(PART), os.urandom(PART), os.urandom(1234)]
    upload = store.start_upload(uri_of(store, "big/file.bin"), size=2 * PART + 1234, part_size=PART)
    assert upload.part_count == 3
    store.upload_part(upload, 3, parts[2])
    store.upload_part(upload, 1, os.urandom(PART))  # replaced below
    store.upload_part(upload, 2, parts[1])
    store.upload_part(upload, 1, parts[0])
    listed = store.list_parts(upload)
    assert [(p.number, p.size) for p in listed] == [(1, PART), (2, PART), (3, 1234)]
    info = store.complete_upload(upload)
    assert info.size == 2 * PART + 1234
    assert store.download_file(upload.uri) == b"".join(parts)
    assert info.etag.endswith("-3")  # S3's composite ETag: MD5 of the parts' MD5s, "-3"
    with pytest.raises(UploadNotFoundError):
        store.list_parts(upload)


def test_nothing_is_visible_until_completion_and_an_abort_leaves_nothing(
    store: RefStore,
) -> None:
    upload = store.start_upload(uri_of(store, "aborted.bin"), part_size=PART)
    store.upload_part(upload, 1, os.urandom(PART))
    assert not store.file_exists(upload.uri)
    assert [u.upload_id for u in store.list_uploads(prefix="aborted")] == [upload.upload_id]
    store.abort_upload(upload)
    assert not store.file_exists(upload.uri)
    assert store.list_uploads(prefix="aborted") == []
    with pytest.raises(UploadNotFoundError):
        store.upload_part(upload, 2, b"late")
    store.abort_upload(upload)  # again: nothing to do, not an error


def test_completing_with_a_missing_corrupt_or_small_part_fails_and_creates_nothing(
    store: RefStore,
) -> None:
    upload = store.start_upload(uri_of(store, "broken.bin"), part_size=PART)
    first = store.upload_part(upload, 1, os.urandom(PART))
    small = store.upload_part(upload, 2, b"x" * 10)
    last = store.upload_part(upload, 3, b"tail")
    missing = UploadedPart(4, first.etag, PART)
    with pytest.raises(InvalidPartError):
        store.complete_upload(upload, [first, missing])
    with pytest.raises(InvalidPartError):
        store.complete_upload(upload, [UploadedPart(1, "0" * 32, PART), last])
    with pytest.raises(InvalidPartError):
        store.complete_upload(upload, [first, small, last])  # part 2 is under 5 MiB
    with pytest.raises(InvalidPartError):
        store.complete_upload(upload, [last, first])  # not ascending
    with pytest.raises(ObjectNotFoundError):
        store.get_file_info(upload.uri)
    # The upload is still open: completing with valid parts works.
    assert store.complete_upload(upload, [first, last]).size == PART + 4


def test_the_announced_size_is_checked_on_completion(store: RefStore) -> None:
    upload = store.start_upload(uri_of(store, "sized.bin"), size=PART + 10, part_size=PART)
    store.upload_part(upload, 1, os.urandom(PART))
    with pytest.raises(InvalidPartError, match="announced"):
        store.complete_upload(upload)
    assert not store.file_exists(upload.uri)


def test_a_part_larger_than_the_part_size_or_numbered_out_of_range_is_refused(
    store: RefStore,
) -> None:
    upload = store.start_upload(uri_of(store, "limits.bin"), part_size=PART)
    with pytest.raises(InvalidPartError):
        store.upload_part(upload, 1, b"x" * (PART + 1))
    for number in (0, MAX_PARTS + 1):
        with pytest.raises(InvalidPartError):
            store.upload_part(upload, number, b"x")
    assert store.list_parts(upload) == []
    store.abort_upload(upload)


def test_a_presigned_part_url_stores_that_part_only(store: RefStore) -> None:
    data = os.urandom(PART)
    upload = store.start_upload(uri_of(store, "presigned.bin"), part_size=PART)
    url = store.presign_part(upload, 1, expiry_seconds=60)
    if store.backend.name == "local":
        # The gateway serves local links (tests/test_upload_sessions.py sends through
        # one): here, the signature names this upload and part, and nothing else.
        link = urlsplit(url)
        query = dict(parse_qsl(link.query))
        bucket, _, key = link.path.removeprefix("/presigned/").partition("/")
        check = functools.partial(
            store.verify_presigned_link, "PUT", bucket, key, query["expires"], query["signature"]
        )
        check((upload.upload_id, 1))
        for wrong in ((upload.upload_id, 2), ("another-upload-id-0000", 1), None):
            with pytest.raises(PermissionDeniedError):
                check(wrong)
        store.upload_part(upload, 1, data)
    else:
        # The upload is checksummed: MinIO wants each part's CRC32C with it.
        headers = {"x-amz-checksum-crc32c": crc32c_of(data)}
        request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        other = url.replace("partNumber=1", "partNumber=2")
        # A small body: MinIO answers 403 before reading one and resets a large one.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(other, data=b"x", method="PUT"))
        assert refused.value.code == 403
        refused.value.close()
    assert [p.number for p in store.list_parts(upload)] == [1]
    assert store.complete_upload(upload).size == PART
    assert store.download_file(upload.uri) == data


def test_an_upload_of_a_missing_bucket_or_invalid_key_is_refused_before_any_io(
    store: RefStore,
) -> None:
    with pytest.raises(InvalidInputError):
        store.start_upload(uri_of(store, "../escape"))
    with pytest.raises(InvalidInputError):
        store.start_upload(uri_of(store, "x"), part_size=MiB)


def test_part_size_choice_keeps_s3_limits() -> None:
    assert choose_part_size(None) == DEFAULT_PART_SIZE
    assert choose_part_size(10 * MiB) == DEFAULT_PART_SIZE
    # 1 TiB needs parts of at least 1 TiB / 10,000, rounded up to whole MiB.
    tib = 1024 * 1024 * MiB
    assert choose_part_size(tib) == 105 * MiB
    assert choose_part_size(tib) * MAX_PARTS >= tib
    with pytest.raises(ObjectTooLargeError):
        choose_part_size(tib, largest=64 * MiB)
    with pytest.raises(InvalidInputError):
        choose_part_size(None, 6 * 1024**3)


def test_part_ranges_cover_the_announced_size() -> None:
    upload = MultipartUpload("b", "k", "id", PART, 2 * PART + 7)
    assert [upload.part_range(n) for n in (1, 2, 3)] == [(0, PART), (PART, PART), (2 * PART, 7)]
    with pytest.raises(InvalidPartError):
        upload.part_range(4)
