"""Direct downloads from presigned URLs into a file, with urllib3.

urllib3 is the HTTP stack minio-py uses; reading a large body through it costs
about half the CPU per byte that httpx's h11-based reads do, and with client,
gateway and storage often sharing a few cores that is the transfer rate. So the
bytes of ``download_to_local`` in direct mode go through this small synchronous
fetcher: called as is by :class:`GatewayClient` and from a worker thread by
:class:`AsyncGatewayClient` (see ``_async_io.fetch_to_file``). Everything else,
direct uploads included, goes through httpx.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import BinaryIO

import certifi
import httpx
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from .. import errors
from ..checksums import CHECKSUM_MODE
from ._core import (
    RETRY_STATUSES,
    Call,
    ClientSettings,
    Verifier,
    error_from_response,
    retry_after,
)

logger = logging.getLogger("refstore.gateway")


class DirectFetcher:
    """Fetches presigned URLs into files, resuming broken transfers with ``Range``
    (up to the client's retries) while the ETag stays the same."""

    def __init__(self, settings: ClientSettings, max_connections: int) -> None:
        timeout = settings.timeout
        self._settings = settings
        self._pool = urllib3.PoolManager(
            maxsize=max_connections,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout.connect, read=timeout.read),
            ca_certs=certifi.where(),
        )

    def close(self) -> None:
        self._pool.clear()

    def fetch_to_file(
        self,
        url: str,
        out: BinaryIO,
        progress: Callable[[int], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> int:
        """Write the body of ``GET url`` to ``out``; return the byte count.

        ``checkpoint`` is called before every chunk (the async client uses it to stop
        when its task is cancelled).

        Raises:
            ConnectionError: unreachable (``context["phase"] == "connect"`` when no
                byte was received), or broken beyond the retries. Every error has the
                bytes written so far in ``context["received"]``.
            RefStoreError: the class an error answer maps to (e.g. PermissionDeniedError
                for an expired link); ConflictError if the object changed midway.
        """
        state = [0]
        try:
            return self._fetch(url, out, progress, checkpoint, state)
        except errors.RefStoreError as exc:
            exc.context.setdefault("received", state[0])
            raise

    def _fetch(
        self,
        url: str,
        out: BinaryIO,
        progress: Callable[[int], None] | None,
        checkpoint: Callable[[], None] | None,
        state: list[int],
    ) -> int:
        call = Call("GET", url, to_gateway=False, not_found=errors.ObjectNotFoundError)
        retry = self._settings.retry
        received = 0
        etag: str | None = None
        verifier: Verifier | None = None
        attempt = 0
        while True:
            headers = {"Accept-Encoding": "identity", **CHECKSUM_MODE}
            if received:
                headers["Range"] = f"bytes={received}-"
            try:
                response = self._pool.request(
                    "GET", url, headers=headers, preload_content=False, redirect=False
                )
            except HTTPError as exc:
                if attempt >= retry.max_retries or (received == 0 and _unreachable(exc)):
                    raise _connection_error(exc, call, received) from exc
                reason: str = type(exc).__name__
                wait: float | None = None
            else:
                drained = False
                try:
                    status = response.status
                    if status not in (200, 206) or (received and status != 206):
                        answer = httpx.Response(
                            status, headers=dict(response.headers), content=response.read()
                        )
                        drained = True
                        if status not in RETRY_STATUSES or attempt >= retry.max_retries:
                            raise error_from_response(answer, call)
                        reason, wait = f"HTTP {status}", retry_after(answer.headers)
                    else:
                        tag = response.headers.get("ETag")
                        if etag is not None and tag is not None and tag != etag:
                            raise errors.ConflictError(
                                "the object changed during the download", url=call.safe_url
                            )
                        etag = etag or tag
                        if received == 0 and status == 200:
                            verifier = Verifier.of(dict(response.headers))
                        for chunk in response.stream(self._settings.chunk_size):
                            if checkpoint is not None:
                                checkpoint()
                            out.write(chunk)
                            if verifier is not None:
                                verifier.update(chunk)
                            received += len(chunk)
                            state[0] = received
                            if progress is not None:
                                progress(len(chunk))
                        drained = True
                        if verifier is not None:
                            verifier.check(call.safe_url)
                        return received
                except (ProtocolError, Urllib3Timeout) as exc:
                    if attempt >= retry.max_retries:
                        raise _connection_error(exc, call, received) from exc
                    reason, wait = type(exc).__name__, None
                finally:
                    if not drained:  # a half-read connection must not go back to the pool
                        response.close()
                    response.release_conn()
            delay = retry.delay(attempt, wait)
            attempt += 1
            logger.warning(
                "direct download from %s broke after %d bytes (%s); retry %d/%d in %.2fs",
                call.safe_url,
                received,
                reason,
                attempt,
                retry.max_retries,
                delay,
            )
            time.sleep(delay)  # in the caller's thread, or the async client's worker thread


def _unreachable(exc: HTTPError) -> bool:
    reason = getattr(exc, "reason", None)
    kinds = (NewConnectionError, ConnectTimeoutError)
    return isinstance(exc, kinds) or isinstance(reason, kinds)


def _connection_error(exc: HTTPError, call: Call, received: int) -> errors.ConnectionError:
    phase = "connect" if received == 0 and _unreachable(exc) else "transfer"
    return errors.ConnectionError(
        f"GET {call.safe_url} failed after {received} bytes ({type(exc).__name__}: {exc})",
        method="GET",
        url=call.safe_url,
        phase=phase,
    )
