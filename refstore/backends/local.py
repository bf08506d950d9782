"""The embedded local-disk backend: buckets are directories under a root.

Objects are written to a temporary file and renamed into place, so readers
never see a partial object. Metadata lives in a parallel tree under
``<root>/.refstore/meta``. A multipart upload stages its parts as files under
``<root>/.refstore/uploads/<upload id>/`` until it is completed (the parts joined
into a temporary file that is renamed into place) or aborted. Presigned links are
HMAC-signed and expiring; the gateway serves them (see
:meth:`LocalBackend.verify_presigned`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlencode

from .. import errors
from ..checksums import CRC32C, DEFAULT_POLICY, ChecksumPolicy, Checksums, Hasher
from ..keys import validate_bucket_name, validate_key, validate_prefix
from ..progress import ProgressCallback
from .base import (
    CHUNK_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    BucketInfo,
    DeleteFailure,
    ListedObject,
    ObjectInfo,
    ObjectStream,
    PendingUpload,
    UploadedPart,
)

SYSTEM_DIR = ".refstore"
PRESIGN_PATH = "/presigned"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _mtime(path: Path | os.DirEntry[str]) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


class LocalBackend:
    """Backend storing objects as files under ``root``.

    Args:
        root: Directory holding one sub-directory per bucket (created if missing).
        secret: HMAC key for presigned links; default: a random key kept in the root.
        link_base: Base URL of the gateway that serves presigned links.
        clock: The time in seconds since the epoch, for presigned links' expiry (a test can
            give one that it moves).
    """

    name = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        secret: str | None = None,
        link_base: str | None = None,
        clock: Callable[[], float] = time.time,
        checksums: ChecksumPolicy = DEFAULT_POLICY,
    ) -> None:
        self.root = Path(root).resolve()
        self.clock = clock
        self.checksums = checksums
        self._system = self.root / SYSTEM_DIR
        self._tmp = self._system / "tmp"
        self._meta = self._system / "meta"
        self._uploads = self._system / "uploads"
        try:
            for directory in (self._tmp, self._meta, self._uploads):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.ConfigError(f"cannot use {self.root} as local storage: {exc}") from exc
        self._secret = (secret or self._stored_secret()).encode()
        self.link_base = (link_base or "http://127.0.0.1:8000").rstrip("/")

    @property
    def signing_secret(self) -> bytes:
        """The key of this storage's signatures (shared by every gateway on this root)."""
        return self._secret

    def _stored_secret(self) -> str:
        path = self._system / "secret"
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
        return path.read_text().strip()

    # paths

    def _bucket_dir(self, bucket: str, *, must_exist: bool = True) -> Path:
        validate_bucket_name(bucket)
        path = self.root / bucket
        if must_exist and not path.is_dir():
            raise errors.BucketNotFoundError(f"bucket not found: {bucket}", bucket=bucket)
        return path

    def _object_path(self, bucket: str, key: str) -> Path:
        validate_key(key)
        return self._bucket_dir(bucket) / key

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._meta / bucket / f"{key}.json"

    def _read_meta(self, bucket: str, key: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._meta_path(bucket, key).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def _info(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise errors.ObjectNotFoundError(
                f"object not found: {bucket}/{key}", bucket=bucket, key=key
            ) from exc
        if not path.is_file():
            raise errors.ObjectNotFoundError(
                f"object not found: {bucket}/{key}", bucket=bucket, key=key
            )
        meta = self._read_meta(bucket, key)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=stat.st_size,
            etag=meta.get("etag", ""),
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
            content_type=meta.get("content_type", "application/octet-stream"),
            metadata=meta.get("metadata", {}),
            checksums=Checksums(meta.get("checksums", {})),
        )

    def _place(self, temp: Path, target: Path, bucket: str, key: str) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError(str(target))
            os.replace(temp, target)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
            raise errors.ConflictError(
                f"{bucket}/{key} clashes with an existing object or prefix on local storage",
                bucket=bucket,
                key=key,
            ) from exc

    # objects

    def put_object(
        self,
        bucket: str,
        key: str,
        data: BinaryIO,
        length: int,
        *,
        content_type: str,
        metadata: dict[str, str],
        progress: ProgressCallback | None = None,
        expected: Checksums | None = None,
    ) -> ObjectInfo:
        target = self._object_path(bucket, key)
        temp = self._temp_path()
        try:
            hasher = self.checksums.hasher(expected)
            etag, checksums = self._write(temp, data, length, progress, bucket, key, hasher)
            if expected is not None:
                expected.check(checksums, f"{bucket}/{key}")
            meta = {
                "etag": etag,
                "content_type": content_type,
                "metadata": metadata,
                "checksums": checksums.as_dict(),
            }
            self._commit(temp, meta, bucket, key)
        finally:
            temp.unlink(missing_ok=True)
            temp.with_suffix(".json").unlink(missing_ok=True)
        return self._info(bucket, key, target)

    def _temp_path(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        os.close(fd)
        return Path(name)

    def _write(
        self,
        path: Path,
        data: BinaryIO,
        length: int,
        progress: ProgressCallback | None,
        bucket: str,
        key: str,
        hasher: Hasher,
    ) -> tuple[str, Checksums]:
        """Copy ``data`` (``length`` bytes, or to its end when negative) into ``path``;
        return the MD5 hex digest of what was written, and the checksums ``hasher``
        computes of it.

        Raises:
            InvalidInputError: ``data`` ended before ``length`` bytes.
        """
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with path.open("wb") as out:
            while True:
                want = CHUNK_SIZE if length < 0 else min(CHUNK_SIZE, length - size)
                if want == 0:
                    break
                chunk = data.read(want)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                hasher.update(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk))
        if 0 <= length != size:
            raise errors.InvalidInputError(
                f"stream ended after {size} of {length} announced bytes", bucket=bucket, key=key
            )
        return digest.hexdigest(), hasher.result()

    def _commit(self, temp: Path, meta: dict[str, Any], bucket: str, key: str) -> None:
        """Rename the written ``temp`` into place as ``bucket/key``, with ``meta``."""
        meta_temp = temp.with_suffix(".json")
        meta_temp.write_text(json.dumps(meta))
        self._place(temp, self._object_path(bucket, key), bucket, key)
        meta_target = self._meta_path(bucket, key)
        meta_target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(meta_temp, meta_target)

    def open_object(
        self, bucket: str, key: str, *, offset: int = 0, length: int | None = None
    ) -> ObjectStream:
        path = self._object_path(bucket, key)
        info = self._info(bucket, key, path)
        if offset < 0 or (length is not None and length < 0):
            raise errors.InvalidRangeError("offset and length must not be negative")
        if offset >= info.size and not (offset == 0 and info.size == 0):
            raise errors.InvalidRangeError(
                f"offset {offset} is beyond the object's {info.size} bytes", bucket=bucket, key=key
            )
        available = info.size - offset
        count = available if length is None else min(length, available)
        file = path.open("rb")
        file.seek(offset)
        return ObjectStream(
            file,
            info=info,
            offset=offset,
            length=count,
            translate=lambda exc: exc,
            release=file.close,
        )

    def stat_object(self, bucket: str, key: str) -> ObjectInfo:
        return self._info(bucket, key, self._object_path(bucket, key))

    def delete_object(self, bucket: str, key: str) -> None:
        path = self._object_path(bucket, key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._meta_path(bucket, key).unlink()
        self._prune(path.parent, self.root / bucket)
        self._prune(self._meta_path(bucket, key).parent, self._meta / bucket)

    @staticmethod
    def _prune(directory: Path, stop: Path) -> None:
        while directory != stop and stop in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def delete_objects(self, bucket: str, keys: Iterable[str]) -> list[DeleteFailure]:
        failures = []
        for key in keys:
            try:
                self.delete_object(bucket, key)
            except errors.RefStoreError as exc:
                failures.append(DeleteFailure(key, exc))
        return failures

    def list_objects(
        self, bucket: str, prefix: str = "", recursive: bool = True
    ) -> Iterator[ListedObject]:
        bucket_dir = self._bucket_dir(bucket)
        base = validate_prefix(prefix).rpartition("/")[0]
        start = bucket_dir / base if base else bucket_dir
        if base and not start.is_dir():
            return
        yield from self._walk(start, f"{base}/" if base else "", prefix, recursive)

    def _walk(
        self, directory: Path, key_prefix: str, prefix: str, recursive: bool
    ) -> Iterator[ListedObject]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        # S3 lists in key order; a directory "a" sorts as "a/", after "a-b".
        entries.sort(key=lambda e: e.name + ("/" if e.is_dir(follow_symlinks=False) else ""))
        for entry in entries:
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if not (key + "/").startswith(prefix) and not prefix.startswith(key + "/"):
                    continue
                if recursive:
                    yield from self._walk(Path(entry.path), key + "/", prefix, recursive)
                else:
                    yield ListedObject(key + "/", 0, None, None, is_dir=True)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                stat = entry.stat()
                yield ListedObject(
                    key,
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
                    None,
                )

    def copy_object(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        with self.open_object(src_bucket, src_key) as source:
            return self.put_object(
                dst_bucket,
                dst_key,
                cast(BinaryIO, source),
                source.length,
                content_type=source.info.content_type,
                metadata=source.info.metadata,
            )

    # multipart uploads

    def _upload_dir(self, bucket: str, key: str, upload_id: str) -> Path:
        """The staging directory of ``upload_id``, which must be an upload of bucket/key.

        Raises:
            UploadNotFoundError: no such upload (or one of another object).
        """
        missing = errors.UploadNotFoundError(
            f"no upload {upload_id!r} of {bucket}/{key}", bucket=bucket, key=key
        )
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise missing
        directory = self._uploads / upload_id
        try:
            session = json.loads((directory / "session.json").read_text())
        except (OSError, ValueError):
            raise missing from None
        if session.get("bucket") != bucket or session.get("key") != key:
            raise missing
        return directory

    def create_multipart(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        self._object_path(bucket, key)  # checks the key, and that the bucket exists
        upload_id = secrets.token_urlsafe(24)
        staging = self._uploads / f".{upload_id}"
        staging.mkdir()
        session = {
            "bucket": bucket,
            "key": key,
            "content_type": content_type,
            "metadata": metadata,
            "started": self.clock(),
        }
        (staging / "session.json").write_text(json.dumps(session))
        staging.rename(self._uploads / upload_id)
        return upload_id

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        data: BinaryIO,
        length: int,
        expected: Checksums | None = None,
    ) -> UploadedPart:
        _check_part_number(number)
        directory = self._upload_dir(bucket, key, upload_id)
        temp = self._temp_path()
        try:
            hasher = self.checksums.part_hasher(expected)
            etag, checksums = self._write(temp, data, length, None, bucket, key, hasher)
            if expected is not None:
                expected.check(checksums, f"part {number} of {bucket}/{key}")
            size = temp.stat().st_size
            # The part's size and digest go in its name: a part renamed into place is
            # whole and described, and a part sent again replaces the old one at once.
            for old in directory.glob(f"{number:05d}-*"):
                old.unlink(missing_ok=True)
            os.replace(temp, directory / f"{number:05d}-{size}-{etag}")
        except FileNotFoundError:
            raise errors.UploadNotFoundError(
                f"upload {upload_id!r} of {bucket}/{key} ended while a part was sent",
                bucket=bucket,
                key=key,
            ) from None
        finally:
            temp.unlink(missing_ok=True)
        return UploadedPart(number, etag, size, checksums.get(CRC32C))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]:
        directory = self._upload_dir(bucket, key, upload_id)
        parts = []
        for path in directory.iterdir():
            number, _, rest = path.name.partition("-")
            size, _, etag = rest.partition("-")
            if number.isdigit() and size.isdigit() and etag:
                parts.append(UploadedPart(int(number), etag, int(size)))
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> ObjectInfo:
        directory = self._upload_dir(bucket, key, upload_id)
        stored = {part.number: part for part in self.list_parts(bucket, key, upload_id)}
        chosen = check_completion(parts, stored)
        session = json.loads((directory / "session.json").read_text())
        temp = self._temp_path()
        digest = hashlib.md5(usedforsecurity=False)
        hasher = self.checksums.hasher()
        named = {part.number: part.checksum for part in parts if part.checksum}
        try:
            with temp.open("wb") as out:
                for part in chosen:
                    name = directory / f"{part.number:05d}-{part.size}-{part.etag}"
                    part_crc = Hasher(sha256=False) if part.number in named else None
                    with name.open("rb") as source:
                        while chunk := source.read(CHUNK_SIZE):
                            out.write(chunk)
                            hasher.update(chunk)
                            if part_crc is not None:
                                part_crc.update(chunk)
                    if part_crc is not None and part_crc.result().get(CRC32C) != named[part.number]:
                        raise errors.InvalidPartError(
                            f"part {part.number} is not the part that was stored (CRC32C)"
                        )
                    digest.update(bytes.fromhex(part.etag))
            meta = {
                "etag": f"{digest.hexdigest()}-{len(chosen)}",
                "content_type": session["content_type"],
                "metadata": session["metadata"],
                "checksums": hasher.result().as_dict(),
            }
            self._commit(temp, meta, bucket, key)
        finally:
            temp.unlink(missing_ok=True)
            temp.with_suffix(".json").unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        return self._info(bucket, key, self._object_path(bucket, key))

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            directory = self._upload_dir(bucket, key, upload_id)
        except errors.UploadNotFoundError:
            return  # as on MinIO: aborting twice is not an error
        shutil.rmtree(directory, ignore_errors=True)

    def list_multipart(self, bucket: str, prefix: str = "") -> list[PendingUpload]:
        self._bucket_dir(bucket)
        validate_prefix(prefix)
        pending = []
        for directory in self._uploads.iterdir():
            try:
                session = json.loads((directory / "session.json").read_text())
            except (OSError, ValueError):
                continue  # being created, completed or aborted right now
            if session["bucket"] == bucket and session["key"].startswith(prefix):
                started = datetime.fromtimestamp(session["started"], tz=timezone.utc)
                pending.append(PendingUpload(bucket, session["key"], directory.name, started))
        return sorted(pending, key=lambda upload: (upload.key, upload.upload_id))

    def sweep_multipart(self, older_than: float) -> int:
        """Remove the uploads started more than ``older_than`` seconds ago; return how many."""
        cutoff = self.clock() - older_than
        removed = 0
        for directory in self._uploads.iterdir():
            try:
                started = json.loads((directory / "session.json").read_text())["started"]
            except (OSError, ValueError, KeyError):
                continue
            if started < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
        return removed

    def presign_part(
        self, bucket: str, key: str, upload_id: str, number: int, expiry_seconds: int
    ) -> str:
        _check_part_number(number)
        self._upload_dir(bucket, key, upload_id)
        return self._link("PUT", bucket, key, expiry_seconds, upload_id=upload_id, part=number)

    # presigned links

    def _signature(
        self, method: str, bucket: str, key: str, expires: int, part: tuple[str, int] | None
    ) -> str:
        message = f"{method}\n{bucket}\n{key}\n{expires}"
        if part is not None:
            message += f"\n{part[0]}\n{part[1]}"
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def presign(self, method: str, bucket: str, key: str, expiry_seconds: int) -> str:
        validate_key(key)
        validate_bucket_name(bucket)
        return self._link(method, bucket, key, expiry_seconds)

    def _link(
        self,
        method: str,
        bucket: str,
        key: str,
        expiry_seconds: int,
        *,
        upload_id: str | None = None,
        part: int = 0,
    ) -> str:
        expires = int(self.clock()) + expiry_seconds
        of_part = None if upload_id is None else (upload_id, part)
        query: dict[str, str | int] = {"method": method, "expires": expires}
        if upload_id is not None:
            query.update(upload_id=upload_id, part=part)
        query["signature"] = self._signature(method, bucket, key, expires, of_part)
        return f"{self.link_base}{PRESIGN_PATH}/{bucket}/{quote(key)}?{urlencode(query)}"

    def verify_presigned(
        self,
        method: str,
        bucket: str,
        key: str,
        expires: str,
        signature: str,
        part: tuple[str, int] | None = None,
    ) -> None:
        """Check a presigned link's signature and expiry; ``part`` is the (upload id,
        part number) of a link for one part of a multipart upload.

        Raises:
            PermissionDeniedError: tampered, expired, or for another method.
        """
        try:
            expires_at = int(expires)
        except (TypeError, ValueError) as exc:
            raise errors.PermissionDeniedError("malformed presigned link") from exc
        expected = self._signature(method, bucket, key, expires_at, part)
        # As bytes: compare_digest refuses str with non-ASCII characters.
        if not hmac.compare_digest(expected.encode(), (signature or "").encode()):
            raise errors.PermissionDeniedError("presigned link signature does not match")
        if self.clock() > expires_at:
            raise errors.PermissionDeniedError("presigned link has expired")

    # buckets

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(bucket, must_exist=False).is_dir()

    def make_bucket(self, bucket: str, location: str | None = None) -> None:
        self._bucket_dir(bucket, must_exist=False).mkdir(exist_ok=True)

    def remove_bucket(self, bucket: str) -> None:
        path = self._bucket_dir(bucket)
        if any(path.iterdir()):
            raise errors.ConflictError(f"bucket {bucket} is not empty", bucket=bucket)
        path.rmdir()
        shutil.rmtree(self._meta / bucket, ignore_errors=True)

    def list_buckets(self) -> list[BucketInfo]:
        return [
            BucketInfo(entry.name, _mtime(entry))
            for entry in sorted(os.scandir(self.root), key=lambda e: e.name)
            if entry.is_dir() and not entry.name.startswith(".")
        ]

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise errors.ConnectionError(f"local storage root {self.root} is not writable")

    def close(self) -> None:
        pass


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise errors.InvalidPartError(f"part numbers are 1 to {MAX_PARTS}, got {number}")


def check_completion(
    parts: list[UploadedPart], stored: dict[int, UploadedPart]
) -> list[UploadedPart]:
    """The stored parts that completing with ``parts`` (number and etag each) joins, as
    S3 checks them: at least one, ascending numbers, each stored with that etag, each
    but the last at least MIN_PART_SIZE bytes.

    Raises:
        InvalidPartError: a part breaks one of those rules.
    """
    if not parts:
        raise errors.InvalidPartError("an upload is completed with at least one part")
    chosen = []
    for index, part in enumerate(parts):
        if index and part.number <= parts[index - 1].number:
            raise errors.InvalidPartError("parts must be listed in ascending order")
        have = stored.get(part.number)
        if have is None:
            raise errors.InvalidPartError(f"part {part.number} was never stored")
        if part.etag.strip('"') != have.etag:
            raise errors.InvalidPartError(f"part {part.number} is not the part that was stored")
        if index < len(parts) - 1 and have.size < MIN_PART_SIZE:
            raise errors.InvalidPartError(
                f"part {part.number} has {have.size} bytes: every part but the last needs "
                f"at least {MIN_PART_SIZE}"
            )
        chosen.append(have)
    return chosen
