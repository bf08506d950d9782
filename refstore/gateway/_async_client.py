"""AsyncGatewayClient: the RefStore gateway SDK on ``httpx.AsyncClient``.

``_async_client.py`` is the source of truth of both clients: ``_sync_client.py`` is
generated from it by ``scripts/unasync.py`` (run it after editing; CI runs it with
``--check``).
Request building, error mapping and retry decisions live in ``_core.py``; this
module only sends requests and moves bytes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

import httpx

from .. import errors
from ..mapping import MappingVersion
from ..uri import decode_uri
from . import _async_io as _io
from . import _resume
from ._core import (
    CHUNK_SIZE,
    DEFAULT_DIRECT_THRESHOLD,
    DEFAULT_PARALLEL,
    DEFAULT_SESSION_THRESHOLD,
    DEFAULT_TIMEOUT,
    BaseGatewayClient,
    Body,
    Call,
    PartRoute,
    PartSource,
    Replay,
    RetryPolicy,
    SessionOptions,
    StoredPart,
    Transferred,
    Verifier,
    body_from_data,
    body_from_path,
    connection_error,
    delete_failure,
    error_from_response,
    guess_type,
    lacks_sessions,
    missing_object,
    new_request_id,
    parse_json,
    part_etag,
    part_ranges,
    resolve_settings,
    retry_after,
    too_large,
    total_size,
)
from ._direct import DirectFetcher
from ._resume import SourceFile, UploadState
from ._types import (
    DeleteResult,
    FileInfoResult,
    ListResult,
    PresignedURL,
    ProgressCallback,
    ResumeCallback,
    UploadData,
    UploadResult,
)

logger = logging.getLogger("refstore.gateway")

Opener = Callable[[int, int | None], Call]
"""Builds the download call for (offset, length): to the gateway, or a presigned URL."""


class AsyncGatewayClient(BaseGatewayClient):
    """Asynchronous client of a RefStore gateway, with pooled connections.

    Use it as ``async with AsyncGatewayClient(...) as client:`` or call
    :meth:`aclose`. Every failure raises a :mod:`refstore.errors` class carrying
    the gateway's ``detail``, ``code``, HTTP ``status`` and ``request_id``.

    Args:
        gateway_url: Base URL, e.g. ``"http://127.0.0.1:8000"``
            (default: ``$REFSTORE_GATEWAY_URL``).
        timeout: Seconds for each connect, read and write, or an ``httpx.Timeout``.
        headers: Extra headers sent to the gateway with every request.
        api_key: Sent as ``Authorization: Bearer <key>`` (default: ``$REFSTORE_API_KEY``).
        retry: A :class:`RetryPolicy`, or the number of retries (0 or None: never).
        direct_threshold: ``upload_from_local`` and ``download_to_local`` move files
            of at least this many bytes through a presigned URL instead of through
            the gateway (None: never).
        session_threshold: ``upload_from_local`` sends files of at least this many
            bytes as :meth:`upload_large` does: parallel parts, resumable (None: never).
        chunk_size: Bytes per read of an upload's file, and per write of a direct
            download (proxied downloads come in the pieces the network gives).
        http_client: An ``httpx.AsyncClient`` to send through, e.g. one on an
            in-process app; it is not closed by :meth:`aclose`. (Direct downloads
            use urllib3, as minio-py does, for its lower CPU cost per byte.)
        max_connections: Requests in flight at once (more wait for a slot), and the
            size of the connection pools this client creates. Each request costs
            client CPU in proportion to the pool's size (httpx polls every idle
            connection), so a few per gateway core is plenty.

    Raises:
        ConfigError: no or malformed gateway URL, or invalid settings.
    """

    def __init__(
        self,
        gateway_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | int | None = 3,
        direct_threshold: int | None = DEFAULT_DIRECT_THRESHOLD,
        chunk_size: int = CHUNK_SIZE,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int = 16,
        session_threshold: int | None = DEFAULT_SESSION_THRESHOLD,
    ) -> None:
        super().__init__(
            resolve_settings(
                gateway_url,
                timeout,
                headers,
                api_key,
                retry,
                direct_threshold,
                chunk_size,
                session_threshold,
            )
        )
        self._owns_http = http_client is None
        if http_client is None:
            limits = httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
            http_client = httpx.AsyncClient(timeout=self._settings.timeout, limits=limits)
        self._http = http_client
        self._slots = _io.Semaphore(max_connections)
        self._fetcher = DirectFetcher(self._settings, max_connections)

    async def aclose(self) -> None:
        """Close the connection pools (an injected ``http_client`` stays open)."""
        self._fetcher.close()
        if self._owns_http:
            await self._http.aclose()

    # unasync: async-only-start
    async def close(self) -> None:
        """Same as :meth:`aclose` (the refstore 0.3.0 name)."""
        await self.aclose()

    # unasync: async-only-end
    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- gateway administration (admin token) -----------------------------------------

    async def get_status(self) -> dict[str, Any]:
        """Backend connection status and service information (any valid key).

        Raises:
            AuthenticationError: no or unknown key.
            ConnectionError: the gateway or its storage is unreachable.
        """
        return await self._dict(self._status_call())

    async def get_config(self) -> dict[str, Any]:
        """The gateway's configuration, without credentials.

        Raises:
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._config_call())

    async def list_buckets(self) -> dict[str, Any]:
        """``{"buckets": [...], "total": n}``.

        Raises:
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._list_buckets_call())

    async def create_bucket(self, name: str, location: str | None = None) -> dict[str, Any]:
        """Create a bucket (succeeds when it exists).

        Raises:
            InvalidBucketNameError: the name breaks the S3 naming rules.
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._create_bucket_call(name, location))

    async def get_bucket_info(self, name: str) -> dict[str, Any]:
        """Object count and total size; ``{"name", "exists": False}`` for a missing bucket
        (as in refstore 0.3.0).

        Raises:
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._bucket_info_call(name))

    async def delete_bucket(self, name: str, force: bool = False) -> dict[str, Any]:
        """Delete a bucket; ``force`` deletes its objects first.

        Raises:
            BucketNotFoundError: no such bucket.
            ConflictError: the bucket is not empty and ``force`` is False.
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._delete_bucket_call(name, force))

    async def get_bucket_mapping(self) -> dict[str, Any]:
        """The bucket mapping in use, with its generation and version.

        Raises:
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(self._get_mapping_call())

    async def update_bucket_mapping(
        self,
        enable_bucket_mapping: bool | None = None,
        bucket_map: Mapping[str, str] | None = None,
        *,
        version: MappingVersion | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Replace the bucket mapping. With a ``version`` the update applies only if
        newer (``"changed": False`` when equal) and is retried like any idempotent call.

        Raises:
            ConflictError: ``version`` is older than the current one
                (``error.context["current"]`` holds the current mapping).
            PermissionDeniedError: not an admin token.
        """
        return await self._dict(
            self._update_mapping_call(enable_bucket_mapping, bucket_map, version)
        )

    # -- files ----------------------------------------------------------------------

    async def upload_file(
        self,
        file_data: UploadData,
        filename: str = "file",
        logic_bucket: str | None = None,
        path: str | None = None,
        *,
        content_type: str | None = None,
        use_logical_uri: bool = False,
        progress: ProgressCallback | None = None,
    ) -> UploadResult:
        """Upload bytes or a binary file object, streamed (never read whole).

        With ``path`` the key is ``path/filename`` and the body goes raw to
        ``PUT /files/{bucket}/{key}`` (the default bucket is asked for once when
        ``logic_bucket`` is not given); without, the gateway makes a key up
        (``YYYY/MM/DD/<uuid><ext>``) from a multipart upload. Seekable files are sent
        from their current position and, like bytes, sent again when a retry is
        needed; other files are sent once.

        Args:
            content_type: Stored with the object (default: guessed from the filename).
            use_logical_uri: Return the logical bucket's URI when mapping is on.
            progress: Called with each number of bytes sent (negative if a failed
                attempt is taken back before a retry).

        Returns:
            ``{"uri", "success", "message", "size"}``.

        Raises:
            InvalidKeyError: unsafe path or filename.
            PermissionDeniedError: out of the key's scope (AuthenticationError: no key).
            ObjectTooLargeError: larger than the gateway accepts.
            ConnectionError: the gateway or its storage is unreachable.
        """
        body = body_from_data(file_data)
        return await self._upload(
            body, filename, logic_bucket, path, use_logical_uri, content_type, progress
        )

    async def upload_to(
        self,
        uri: str,
        file_data: UploadData,
        *,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> UploadResult:
        """Upload bytes or a binary file object to exactly ``s3://bucket/key``
        (raw ``PUT /files/{bucket}/{key}``, streamed), replacing what is there.

        Like :meth:`upload_file`, seekable files and bytes are sent again when a
        retry is needed.

        Args:
            content_type: Stored with the object (default: guessed from the key).
            progress: Called with each number of bytes sent.

        Returns:
            ``{"uri", "success", "message", "size"}``.

        Raises:
            URIParseError: not an ``s3://bucket/key`` URI, or an unsafe key.
            Others as for :meth:`upload_file`.
        """
        call = self._upload_to_call(uri, body_from_data(file_data), content_type)
        return cast(UploadResult, await self._json(call, progress))

    async def upload_from_local(
        self,
        local_path: str | os.PathLike[str],
        logic_bucket: str | None = None,
        path: str | None = None,
        *,
        content_type: str | None = None,
        use_logical_uri: bool = False,
        progress: ProgressCallback | None = None,
        direct: bool | None = None,
    ) -> UploadResult:
        """Upload a local file, streamed from disk, keeping its filename.

        Files of at least ``direct_threshold`` bytes go straight to storage through
        a presigned PUT URL; when the gateway refuses to presign (the key lacks
        ``presign``) or the URL's host is unreachable, they go through the gateway.
        The result is the same either way.

        Args:
            direct: True: presign whatever the size; False: never; None: by size.
            Others: as for :meth:`upload_file`.

        Raises:
            FileNotFoundError: (builtin) no such local file. Others as for
                :meth:`upload_file`.
        """
        size = await _io.file_size(os.fspath(local_path))
        filename = os.path.basename(os.fspath(local_path))
        body = body_from_path(local_path, size)
        if self._use_session(size):
            result = await self._upload_local_in_session(
                local_path,
                filename,
                logic_bucket,
                path,
                content_type,
                use_logical_uri,
                progress,
                direct,
            )
            if result is not None:
                return result
        if self._use_direct(size, direct):
            result = await self._upload_direct(
                body, filename, logic_bucket, path, content_type, use_logical_uri, progress
            )
            if result is not None:
                return result
        return await self._upload(
            body, filename, logic_bucket, path, use_logical_uri, content_type, progress
        )

    async def upload_large(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        uri: str,
        *,
        parallel: int = DEFAULT_PARALLEL,
        resume: bool = True,
        part_size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
        direct: bool | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        on_resume: ResumeCallback | None = None,
    ) -> UploadResult:
        """Upload a large file to ``s3://bucket/key`` in an upload session: parts sent in
        parallel, each retried on its own, straight to storage through presigned part
        URLs when the key may presign (else through the gateway), joined into the object
        at the end; it appears whole or not at all.

        For a local file a small state file (in ``state_dir``) names the session, so
        that running the same upload again after an interruption (Ctrl-C, a kill, a lost
        network) sends only the parts the storage does not hold yet. A source file whose
        size or modification time changed since is not resumed: the old session is
        aborted and the upload starts again. A seekable file object is sent one part at
        a time from its current position, and not resumed.

        Args:
            source: A local file's path, or a seekable binary file object.
            parallel: Parts in flight at once.
            resume: Continue an interrupted upload of the same file to the same URI
                (False: start afresh, aborting that session).
            part_size: Bytes per part (default: the gateway's choice, 16 MiB unless
                the file needs larger parts to fit in 10,000).
            content_type: Stored with the object (default: guessed from the key).
            progress: Called with each number of bytes sent; the parts a resumed upload
                skips are reported first, in one call, so the increments add up to the
                file's size.
            direct: False: parts always go through the gateway; True: they must go
                straight to storage (a refusal to presign raises); None: straight
                when allowed.
            state_dir: Where state files live (default: ``$REFSTORE_STATE_DIR``, else
                ``~/.cache/refstore/uploads``).
            on_resume: Called as ``on_resume(parts, bytes)`` when a resumed upload finds
                parts already stored.

        Returns:
            ``{"uri", "success", "message", "size", "checksums"}``.

        Raises:
            URIParseError: not an ``s3://bucket/key`` URI, or an unsafe key.
            InvalidInputError: a file object that cannot seek, or that changed size.
            FileNotFoundError: (builtin) no such local file.
            PermissionDeniedError: out of the key's scope.
            RefStoreError: the gateway has no upload sessions (it predates them).
            ConnectionError: the gateway or storage is unreachable, after retries.
        """
        decode_uri(uri)
        options = SessionOptions(
            parallel,
            resume,
            part_size,
            guess_type(uri.rsplit("/", 1)[-1], content_type),
            direct,
            state_dir,
            on_resume,
        )
        if isinstance(source, (str, os.PathLike)):
            file = await _io.run_blocking(SourceFile.of, source)
            parts = PartSource(file.size, path=file.path)
            return await self._upload_in_session(parts, uri, uri, file, options, progress)
        body = body_from_data(source)
        if not body.replayable or body.size is None or body.file is None:
            raise errors.InvalidInputError("upload_large needs a path or a seekable file object")
        parts = PartSource(body.size, file=body.file, start=body.start)
        # One file position: one part at a time; nothing names the source for a rerun.
        options = replace(options, parallel=1, resume=False)
        return await self._upload_in_session(parts, uri, uri, None, options, progress)

    async def list_uploads(
        self, logic_bucket: str | None = None, prefix: str = ""
    ) -> list[dict[str, Any]]:
        """Multipart uploads in progress in a bucket (a scoped key sees its own prefix).

        Returns:
            ``[{"uri", "backend_upload_id", "started"}, ...]``.
        """
        answer = await self._dict(self._pending_uploads_call(logic_bucket, prefix))
        return list(answer["uploads"])

    async def get_upload(self, upload_id: str) -> dict[str, Any]:
        """An upload session and the parts it holds so far.

        Raises:
            UploadNotFoundError: no such session (completed, aborted, or never started);
                UploadExpiredError: it expired.
            PermissionDeniedError: another key started it.
        """
        return await self._dict(self._session_call(upload_id))

    async def abort_upload(
        self, upload_id: str, *, state_dir: str | os.PathLike[str] | None = None
    ) -> dict[str, Any]:
        """Abort an upload session: its parts are freed and no object appears; a state
        file naming it (see :meth:`upload_large`) is removed, so no rerun resumes it.

        Returns:
            ``{"upload_id", "uri", "aborted"}``.

        Raises:
            As :meth:`get_upload` (the state file is removed for a session already gone).
        """
        directory = _resume.state_dir(state_dir)
        try:
            answer = await self._dict(self._abort_session_call(upload_id))
        except errors.UploadNotFoundError:
            await _io.run_blocking(_resume.forget, directory, upload_id)
            raise
        await _io.run_blocking(_resume.forget, directory, upload_id)
        return answer

    async def resumable_uploads(
        self, *, state_dir: str | os.PathLike[str] | None = None
    ) -> list[dict[str, Any]]:
        """Interrupted :meth:`upload_large` calls of this gateway and key that running
        the same upload again would resume, from their state files.

        Returns:
            ``[{"upload_id", "uri", "source", "size", "part_size"}, ...]``, oldest first.
        """
        found = await _io.run_blocking(_resume.list_states, _resume.state_dir(state_dir))
        return [state.describe() for _, state in found if state.owner == self.upload_owner]

    async def download_file(
        self,
        uri: str,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> bytes:
        """An object's bytes (or ``length`` bytes from ``offset``) in memory.

        Prefer :meth:`stream` or :meth:`download_to_local` for large objects.

        Raises:
            ObjectNotFoundError: no such object.
            InvalidRangeError: ``offset`` is beyond the end, or negative values.
            URIParseError: not an ``s3://bucket/key`` URI.
            PermissionDeniedError: out of the key's scope.
            ConnectionError: the gateway or its storage is unreachable.
        """
        async with self.stream(uri, offset=offset, length=length, progress=progress) as download:
            return await download.aread()

    @asynccontextmanager
    async def stream(
        self,
        uri: str,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncIterator[AsyncDownloadStream]:
        """Open a download, whole or a byte range::

            async with client.stream(uri, offset=0, length=1024) as download:
                async for chunk in download.aiter_bytes():
                    ...

        Raises:
            Same as :meth:`download_file` (when opening).
        """
        opener = functools.partial(self._download_call, uri)
        download = await self._open(opener, uri, offset, length, progress)
        try:
            yield download
        finally:
            await download.aclose()

    async def aiter_bytes(
        self,
        uri: str,
        *,
        offset: int = 0,
        length: int | None = None,
        chunk_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield an object's bytes in chunks; iterate to the end (or use :meth:`stream`)
        so the connection is released at once.

        Raises:
            Same as :meth:`download_file`.
        """
        async with self.stream(uri, offset=offset, length=length, progress=progress) as download:
            async for chunk in download.aiter_bytes(chunk_size):
                yield chunk

    async def download_to_local(
        self,
        uri: str,
        local_path: str | os.PathLike[str],
        *,
        raise_errors: bool = False,
        progress: ProgressCallback | None = None,
        direct: bool | None = None,
    ) -> bool:
        """Stream an object into a local file (parent directories are created).

        Bytes go to a temporary file beside ``local_path`` that is renamed into
        place, so ``local_path`` never holds a partial file. Objects of at least
        ``direct_threshold`` bytes are fetched through a presigned GET URL when the
        gateway allows it (an extra ``/info`` call decides; ``direct=True`` skips it).

        **Compatibility:** as in refstore 0.3.0, failure returns False (and logs a
        warning) instead of raising; pass ``raise_errors=True`` to get the error.

        Args:
            raise_errors: Raise instead of returning False.
            progress: Called with each number of bytes received.
            direct: True: presign whatever the size; False: never; None: by size.

        Returns:
            True when the file is in place; False on failure unless ``raise_errors``.

        Raises:
            Only with ``raise_errors``: ObjectNotFoundError, PermissionDeniedError,
            ConnectionError... as for :meth:`download_file`, or OSError writing.
        """
        try:
            await self._download_to(uri, os.fspath(local_path), progress, direct)
        except (errors.RefStoreError, OSError) as exc:
            if raise_errors:
                raise
            logger.warning("download_to_local(%r) failed: %s", uri, exc)
            return False
        return True

    async def get_presigned_url(
        self, uri: str, expiry_seconds: int | None = None, method: str = "GET"
    ) -> PresignedURL:
        """A URL allowing ``method`` (GET or PUT) on the object without credentials.

        Returns:
            ``{"url", "uri", "expiry", "method"}``.

        Raises:
            InvalidInputError: method not GET/PUT, or expiry outside 1 s..7 days.
            PermissionDeniedError: the key may not presign (or not read/write) here.
        """
        return cast(PresignedURL, await self._json(self._presign_call(uri, expiry_seconds, method)))

    async def get_file_info(self, uri: str) -> FileInfoResult:
        """Metadata of an object: ``{"uri", "info", "exists"}``, where a missing object
        gives ``exists: False`` and ``info: None`` (as in refstore 0.3.0).

        Raises:
            URIParseError: not an ``s3://bucket/key`` URI.
            PermissionDeniedError: out of the key's scope.
        """
        return cast(FileInfoResult, await self._json(self._info_call(uri)))

    async def delete_file(self, uri: str) -> DeleteResult:
        """Delete one object (a missing one counts as deleted).

        **Differs from 0.3.0**, which returned the failure in the result: a failed
        delete raises.

        Returns:
            ``{"deleted": [uri], "failed": [], "errors": {}}``.

        Raises:
            URIParseError: not an ``s3://bucket/key`` URI.
            PermissionDeniedError: out of the key's scope.
            RefStoreError: storage refused to delete it.
        """
        result = await self.delete_files([uri])
        if uri in result["failed"]:
            raise delete_failure(uri, result)
        return result

    async def delete_files(self, uris: Iterable[str]) -> DeleteResult:
        """Delete objects in one batch; missing ones count as deleted, invalid URIs
        are listed in ``failed`` with a reason in ``errors``.

        Returns:
            ``{"deleted", "failed", "errors"}``.

        Raises:
            PermissionDeniedError: any URI is out of the key's scope (nothing is deleted).
        """
        return cast(DeleteResult, await self._json(self._delete_call(uris)))

    async def list_files(
        self,
        logic_bucket: str | None = None,
        prefix: str = "",
        recursive: bool = True,
        *,
        use_logical_uri: bool = False,
    ) -> ListResult:
        """Objects under ``prefix`` (a scoped key is narrowed to its own prefix).

        Returns:
            ``{"logic_bucket", "files": [{"object_name", "size", "s3_uri", ...}]}``.

        Raises:
            BucketNotFoundError: no such bucket.
            InvalidKeyError: unsafe prefix.
            PermissionDeniedError: out of the key's scope.
        """
        call = self._list_call(logic_bucket, prefix, recursive, use_logical_uri)
        return cast(ListResult, await self._json(call))

    async def health(self) -> dict[str, Any]:
        """Liveness of the gateway (no key needed, no storage call).

        Raises:
            ConnectionError: the gateway is unreachable.
        """
        return await self._dict(self._health_call())

    # -- sending ----------------------------------------------------------------------

    async def _dict(self, call: Call) -> dict[str, Any]:
        return cast(dict[str, Any], await self._json(call))

    async def _json(self, call: Call, progress: ProgressCallback | None = None) -> Any:
        response = await self._send(call, progress=progress)
        return parse_json(response, call)

    async def _send(
        self, call: Call, *, stream: bool = False, progress: ProgressCallback | None = None
    ) -> httpx.Response:
        """Send ``call``, retrying as the policy allows, and return its successful
        answer (unread when ``stream``: the caller closes it).

        Raises:
            RefStoreError: the class the error answer maps to.
            ConnectionError: no answer, after retries.
        """
        request_id = new_request_id()
        attempt = 0
        while True:
            sent = Transferred(progress)
            try:
                async with self._slots:
                    response = await self._attempt(call, request_id, sent)
                    if not stream or not response.is_success:
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
            except httpx.TransportError as exc:
                cut_off_after = sent.count if sent.started and not sent.finished else None
                sent.rollback()
                if cut_off_after is not None:
                    await self._refuse_if_over_limit(call, request_id, cut_off_after)
                # A client closed meanwhile (Ctrl-C while parts are in flight) stops here.
                if self._http.is_closed or not self._should_retry(
                    call, attempt, error=exc, sent=sent
                ):
                    raise connection_error(exc, call, request_id) from exc
                reason, wait = type(exc).__name__, None
            except BaseException:
                sent.rollback()
                raise
            else:
                if response.is_success:
                    return response
                sent.rollback()
                if not self._should_retry(call, attempt, answer=response, sent=sent):
                    raise error_from_response(response, call)
                reason, wait = f"HTTP {response.status_code}", retry_after(response.headers)
            delay = self._settings.retry.delay(attempt, wait)
            attempt += 1
            self._log_retry(call, attempt, reason, delay)
            await _io.sleep(delay)

    async def _refuse_if_over_limit(self, call: Call, request_id: str, sent: int) -> None:
        """Raise ObjectTooLargeError for a body cut off in transit (``sent`` bytes out)
        that is larger than the gateway takes: when the gateway refuses a big body and
        closes, a client still sending (httpx reads only after sending) can lose the 413
        to the reset. A gateway that does not say its cap leaves the error to the retries.
        """
        size = max(call.body.length or 0, sent) if call.body is not None else 0
        if not size or not call.to_gateway:
            return
        limit = await self._gateway_upload_limit()
        if limit and size > limit:
            raise too_large(call, size, limit, request_id)

    async def _gateway_upload_limit(self) -> int | None:
        """``max_upload_bytes`` of ``/gateway/status`` (None: not known; 0: not said).

        Unless the status is already known, it is asked in one attempt: this runs on the
        way to an error, which retries of its own would only delay.
        """
        if self._status is None:
            try:
                async with self._slots:
                    response = await self._attempt(
                        self._status_call(), new_request_id(), Transferred(None)
                    )
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                status = response.json() if response.is_success else None
            except (httpx.HTTPError, ValueError):
                return None
            if not isinstance(status, dict):
                return None
            self._status = status
        try:
            return int(self._status.get("max_upload_bytes") or 0)
        except (TypeError, ValueError):
            return None

    async def _attempt(self, call: Call, request_id: str, sent: Transferred) -> httpx.Response:
        headers = self._headers(call, request_id)
        body = call.body
        if body is None:
            return await self._request(call, headers, None)
        if body.length is not None:
            headers["Content-Length"] = str(body.length)
        # Whole small bodies only where a repeat is harmless: with no stream to watch,
        # a failed attempt cannot tell whether the gateway got all of it.
        whole = body.inline(self._settings.chunk_size) if call.replay is Replay.IDEMPOTENT else None
        if whole is not None:
            sent.started = True
            response = await self._request(call, headers, whole)
            sent.add(body.size or 0)
            sent.finished = True
            return response
        source: _io.File | None = None
        if body.path is not None:
            source = await _io.open_file(body.path)
            if body.start:
                await source.seek(body.start)
        elif body.file is not None:
            source = _io.wrap_file(body.file)
            if body.replayable:
                await source.seek(body.start)
        chunks = self._body_chunks(body, source, sent)
        try:
            return await self._request(call, headers, chunks)
        finally:
            await chunks.aclose()
            if source is not None:
                await source.aclose()

    async def _request(
        self, call: Call, headers: dict[str, str], content: AsyncIterator[bytes] | bytes | None
    ) -> httpx.Response:
        timeout = self._settings.timeout
        if call.to_gateway:
            request = self._http.build_request(
                call.method,
                call.url,
                params=call.params,
                json=call.json,
                headers=headers,
                content=content,
                timeout=timeout,
            )
            return await self._http.send(request, stream=True)
        # A presigned URL: none of the client's default headers or auth go there.
        request = httpx.Request(
            call.method,
            call.url,
            headers=headers,
            content=content,
            extensions={"timeout": timeout.as_dict()},
        )
        return await self._http.send(request, stream=True, auth=None)

    async def _body_chunks(
        self, body: Body, source: _io.File | None, sent: Transferred
    ) -> AsyncGenerator[bytes]:
        sent.started = True
        size = self._settings.chunk_size
        if body.head:
            yield body.head
        if body.data is not None:
            view = memoryview(body.data).cast("B")
            for start in range(0, len(view), size):
                chunk = bytes(view[start : start + size])
                yield chunk
                sent.add(len(chunk))
        elif source is not None:
            remaining = body.size
            while remaining is None or remaining > 0:
                chunk = await source.read(size if remaining is None else min(size, remaining))
                if not chunk:
                    break
                if isinstance(chunk, str):
                    raise errors.InvalidInputError("open the file in binary mode ('rb')")
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
                sent.add(len(chunk))
            if remaining:
                raise errors.InvalidInputError(
                    f"the file ended {remaining} bytes early (did it shrink during the upload?)"
                )
        if body.tail:
            yield body.tail
        sent.finished = True

    async def _upload(
        self,
        body: Body,
        filename: str,
        logic_bucket: str | None,
        path: str | None,
        use_logical_uri: bool,
        content_type: str | None,
        progress: ProgressCallback | None,
    ) -> UploadResult:
        bucket = logic_bucket
        if path and not bucket:
            bucket = await self._default_bucket_name()
        call = self._upload_call(body, filename, bucket, path, use_logical_uri, content_type)
        return cast(UploadResult, await self._json(call, progress))

    # -- upload sessions -------------------------------------------------------------

    async def _upload_local_in_session(
        self,
        local_path: str | os.PathLike[str],
        filename: str,
        logic_bucket: str | None,
        path: str | None,
        content_type: str | None,
        use_logical_uri: bool,
        progress: ProgressCallback | None,
        direct: bool | None,
    ) -> UploadResult | None:
        """``upload_from_local`` of a large file, resumable; None when the gateway has no
        upload sessions (the caller then uploads in one stream)."""
        bucket = logic_bucket or await self._default_bucket_name()
        _, uri = self._direct_target(filename, bucket, path)
        # Without a path the key is made up anew each time: a rerun finds the state by
        # bucket and filename instead, and keeps the key the first run chose.
        target = uri if path else f"{bucket}:{filename}"
        file = await _io.run_blocking(SourceFile.of, local_path)
        options = SessionOptions(
            content_type=guess_type(filename, content_type),
            direct=False if direct is False else None,
        )
        parts = PartSource(file.size, path=file.path)
        try:
            result = await self._upload_in_session(parts, uri, target, file, options, progress)
        except errors.RefStoreError as exc:
            if not lacks_sessions(exc):
                raise
            logger.info("the gateway has no upload sessions; sending %s in one stream", filename)
            return None
        _, key = decode_uri(result["uri"])
        answer = await self._json(self._info_call(result["uri"]))
        return self._direct_upload_result(bucket, key, answer, file.size, use_logical_uri)

    async def _upload_in_session(
        self,
        source: PartSource,
        uri: str,
        target: str,
        file: SourceFile | None,
        options: SessionOptions,
        progress: ProgressCallback | None,
    ) -> UploadResult:
        """Send ``source`` to ``uri`` in a session: the one a state file for ``file`` and
        ``target`` names, if it may be resumed, else a new one."""
        state_file = None
        session: dict[str, Any] | None = None
        if file is not None:
            state_file = _resume.state_path(
                _resume.state_dir(options.state_dir), self.upload_owner, file.path, target
            )
            session = await self._resumable_session(state_file, file, options.resume)
        if session is None:
            session = await self._dict(
                self._start_session_call(uri, source.size, options.part_size, options.content_type)
            )
            if state_file is not None and file is not None:
                state = UploadState(
                    self.upload_owner,
                    target,
                    session["uri"],
                    session["upload_id"],
                    int(session["part_size"]),
                    file,
                )
                await _io.run_blocking(_resume.save, state_file, state)
        upload_id = str(session["upload_id"])
        ranges = part_ranges(source.size, int(session["part_size"]))
        expected = {(number, length) for number, _, length in ranges}
        stored = {
            part.number: part
            for part in map(StoredPart.from_json, session.get("parts") or [])
            if (part.number, part.size) in expected
        }
        report = _io.serialized(progress)
        skipped = sum(part.size for part in stored.values())
        if stored:
            if report is not None:
                report(skipped)
            if options.on_resume is not None:
                options.on_resume(len(stored), skipped)
        route = PartRoute(direct=options.direct is not False)
        jobs = [
            functools.partial(
                self._send_part,
                upload_id,
                number,
                source.body(offset, length),
                route,
                options.direct is True,
                session.get("checksum_algorithm") == "CRC32C",
                report,
            )
            for number, offset, length in ranges
            if number not in stored
        ]
        sent = await _io.gather(jobs, options.parallel)
        parts = [*stored.values(), *sent]
        result = await self._json(self._complete_session_call(upload_id, parts))
        if state_file is not None:
            await _io.run_blocking(_resume.remove, state_file)
        return cast(UploadResult, result)

    async def _resumable_session(
        self, state_file: Path, file: SourceFile, resume: bool
    ) -> dict[str, Any] | None:
        """The session (with its stored parts) an earlier run left for ``file``, or None:
        none left, or not to be resumed (a changed file, ``resume`` False: it is
        aborted), or gone from the gateway (expired, completed, aborted)."""
        state = await _io.run_blocking(_resume.load, state_file)
        if state is None:
            return None
        if resume and state.matches(file):
            try:
                return await self._dict(self._session_call(state.upload_id))
            except errors.UploadNotFoundError as exc:
                logger.info(
                    "the interrupted upload of %s is gone (%s); starting again", file.path, exc
                )
        else:
            if resume:
                logger.warning(
                    "%s changed since its upload was interrupted; starting again", file.path
                )
            with contextlib.suppress(errors.UploadNotFoundError):
                await self._dict(self._abort_session_call(state.upload_id))
        await _io.run_blocking(_resume.remove, state_file)
        return None

    async def _send_part(
        self,
        upload_id: str,
        number: int,
        body: Body,
        route: PartRoute,
        direct_required: bool,
        checksummed: bool,
        progress: ProgressCallback | None,
    ) -> StoredPart:
        """Store one part, straight through its presigned URL while ``route.direct``
        holds, else through the gateway; with its CRC32C when the session is checksummed."""
        crc = None
        if checksummed:
            crc = await _io.run_blocking(_resume.body_crc32c, body, self._settings.chunk_size)
        if route.direct:
            try:
                link = await self._dict(self._part_url_call(upload_id, number))
                response = await self._send(
                    self._direct_part_call(str(link["url"]), body, crc), progress=progress
                )
                return StoredPart(number, part_etag(response), body.size or 0, crc)
            except (errors.ConnectionError, errors.PermissionDeniedError) as exc:
                if (
                    direct_required
                    or _broke_midway(exc)
                    or isinstance(exc, errors.AuthenticationError)
                ):
                    raise
                if route.direct:
                    logger.warning(
                        "parts of upload %s go through the gateway: %s", upload_id[:12], exc
                    )
                route.direct = False
        answer = await self._json(self._part_call(upload_id, number, body, crc), progress)
        return StoredPart.from_json(answer)

    # -- direct transfers and downloads -------------------------------------------

    async def _default_bucket_name(self) -> str:
        if self._status is None:
            self._status = await self.get_status()
        return str(self._status["default_bucket"])

    async def _upload_direct(
        self,
        body: Body,
        filename: str,
        logic_bucket: str | None,
        path: str | None,
        content_type: str | None,
        use_logical_uri: bool,
        progress: ProgressCallback | None,
    ) -> UploadResult | None:
        """Upload through a presigned PUT URL; None when the gateway refuses to
        presign or the URL cannot be used (the caller then goes through the gateway)."""
        bucket = logic_bucket or await self._default_bucket_name()
        key, uri = self._direct_target(filename, bucket, path)
        body = replace(body, content_type=guess_type(filename, content_type))
        link = await self._presign_or_none(uri, "PUT")
        if link is None:
            return None
        try:
            crc = await _io.run_blocking(_resume.body_crc32c, body, self._settings.chunk_size)
            await self._send(self._direct_put_call(link["url"], body, crc), progress=progress)
        except (errors.ConnectionError, errors.PermissionDeniedError) as exc:
            if _broke_midway(exc):
                raise
            logger.warning("direct upload to %s failed (%s); using the gateway", uri, exc)
            return None
        answer = await self._json(self._info_call(uri))
        return self._direct_upload_result(bucket, key, answer, body.size, use_logical_uri)

    async def _presign_or_none(self, uri: str, method: str) -> PresignedURL | None:
        try:
            return await self.get_presigned_url(uri, method=method)
        except errors.PermissionDeniedError as exc:
            if isinstance(exc, errors.AuthenticationError):
                raise
            logger.info("presigning %s %s refused (%s); using the gateway", method, uri, exc)
            return None

    async def _open(
        self,
        opener: Opener,
        uri: str,
        offset: int,
        length: int | None,
        progress: ProgressCallback | None,
    ) -> AsyncDownloadStream:
        if length == 0:  # nothing to fetch, but the object must exist
            if offset < 0:
                raise errors.InvalidRangeError("offset and length must not be negative")
            if not (await self.get_file_info(uri))["exists"]:
                raise missing_object(uri)
            return AsyncDownloadStream(self, opener, None, uri, offset, 0, progress)
        response = await self._send(opener(offset, length), stream=True)
        if offset and response.status_code != 206:
            await response.aclose()
            raise errors.RefStoreError(f"{uri}: the server ignored the requested range", uri=uri)
        return AsyncDownloadStream(self, opener, response, uri, offset, length, progress)

    async def _direct_link(self, uri: str, direct: bool | None) -> str | None:
        """A presigned GET URL for direct mode, or None: when ``direct`` is None, only
        if the object is large enough (an ``/info`` call tells), and only if the
        gateway allows presigning."""
        if direct is False or (direct is None and self._settings.direct_threshold is None):
            return None
        if direct is None:
            info = await self.get_file_info(uri)
            if not info["exists"] or info["info"] is None:
                raise missing_object(uri)
            if not self._use_direct(int(info["info"]["size"]), direct):
                return None
        link = await self._presign_or_none(uri, "GET")
        return None if link is None else link["url"]

    async def _download_to(
        self, uri: str, target: str, progress: ProgressCallback | None, direct: bool | None
    ) -> None:
        directory = os.path.dirname(os.path.abspath(target))
        await _io.makedirs(directory)
        url = await self._direct_link(uri, direct)
        temp, temp_path = await _io.create_temp(directory, f".{os.path.basename(target)}.")
        try:
            try:
                if url is not None and not await self._fetch_direct(url, temp, progress):
                    url = None
                if url is None:
                    async with self.stream(uri, progress=progress) as download:
                        async for chunk in download.aiter_bytes():
                            await temp.write(chunk)
            finally:
                await temp.aclose()
            await _io.replace(temp_path, target)
        except BaseException:
            await _io.remove(temp_path)
            raise

    async def _fetch_direct(
        self, url: str, temp: _io.File, progress: ProgressCallback | None
    ) -> bool:
        """Fetch a presigned URL into ``temp``; False (nothing written) when its host is
        unreachable or refuses the link, so the caller goes through the gateway."""
        try:
            await _io.fetch_to_file(self._fetcher, url, temp, progress)
        except (errors.ConnectionError, errors.PermissionDeniedError) as exc:
            if _broke_midway(exc) or exc.context.get("received"):
                raise
            logger.warning("direct download failed (%s); using the gateway", exc)
            return False
        return True


def _broke_midway(exc: errors.RefStoreError) -> bool:
    """Whether a failed direct transfer must be reported rather than redone through
    the gateway: only refusals and unreachable hosts fall back."""
    return isinstance(exc, errors.ConnectionError) and exc.context.get("phase") != "connect"


class AsyncDownloadStream:
    """An open download: its headers now, its bytes as you iterate.

    Get one from :meth:`AsyncGatewayClient.stream`, which closes it. When the
    connection breaks mid-body, iteration resumes with a ``Range`` request from the
    first missing byte (up to the client's retries) if the object's ETag is unchanged.

    Attributes:
        uri: The object's URI.
        length: Bytes this download yields (the range's length).
        size: Size of the whole object, when the answer tells it.
        etag: The object's ETag (without quotes), if any.
        content_type: The object's content type.
        headers: Headers of the first answer.
    """

    def __init__(
        self,
        client: AsyncGatewayClient,
        opener: Opener,
        response: httpx.Response | None,
        uri: str,
        offset: int,
        length: int | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._client = client
        self._opener = opener
        self._response = response
        self._offset = offset
        self._progress = progress
        self._received = 0
        self.uri = uri
        self.headers = response.headers if response is not None else httpx.Headers()
        declared = self.headers.get("content-length")
        self.length: int | None = 0 if response is None else None
        if declared is not None and declared.isdigit():
            self.length = int(declared)
        self.size = total_size(response) if response is not None else None
        self.etag = self.headers.get("etag", "").strip('"') or None
        self.content_type = self.headers.get("content-type", "application/octet-stream")
        whole = response is not None and response.status_code == 200 and not offset
        self._verifier = Verifier.of(self.headers) if whole and length is None else None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.aiter_bytes()

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """Yield the body in chunks of ``chunk_size`` bytes (default: as received).

        The bytes of a whole object are checked against the checksums its answer
        declares once the last chunk is out.

        Raises:
            IntegrityError: the bytes differ from the object's recorded checksums.
            ConnectionError: the connection broke and could not be resumed.
            ConflictError: the object changed before a broken download could resume.
        """
        resumes = 0
        while self._response is not None:
            if self.length is not None and self._received >= self.length:
                break
            try:
                async for chunk in self._response.aiter_bytes(chunk_size):
                    self._received += len(chunk)
                    if self._verifier is not None:
                        self._verifier.update(chunk)
                    if self._progress is not None:
                        self._progress(len(chunk))
                    yield chunk
                break
            except httpx.TransportError as exc:
                call = self._opener(self._offset, None)
                if resumes >= self._client._settings.retry.max_retries or self.length is None:
                    raise connection_error(exc, call, self.headers.get("x-request-id", "")) from exc
                resumes += 1
                logger.warning(
                    "download of %s broke after %d bytes (%s); resuming",
                    self.uri,
                    self._received,
                    type(exc).__name__,
                )
                await self._resume()
        if self._verifier is not None:
            verifier, self._verifier = self._verifier, None
            verifier.check(self.uri)

    async def _resume(self) -> None:
        assert self._response is not None and self.length is not None
        await self._response.aclose()
        self._response = None
        start = self._offset + self._received
        response = await self._client._send(
            self._opener(start, self.length - self._received), stream=True
        )
        etag = response.headers.get("etag", "").strip('"') or None
        if self.etag and etag and etag != self.etag:
            await response.aclose()
            raise errors.ConflictError(f"{self.uri} changed during the download", uri=self.uri)
        self._response = response

    async def aread(self) -> bytes:
        """The whole (remaining) body in memory."""
        parts = []
        async for chunk in self.aiter_bytes():
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        """Release the connection."""
        if self._response is not None:
            await self._response.aclose()
