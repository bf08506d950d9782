"""What the gateway shares between requests, created by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request

from .. import errors
from ..aio import AsyncRefStore
from ..backends.local import LocalBackend
from ..mapping import BucketMap
from .admission import BoundedExecutor, UploadSlots
from .auth import Authenticator, Principal
from .metrics import Metrics
from .sessions import SessionSigner
from .settings import GatewaySettings

logger = logging.getLogger("refstore.web")

HEALTH_INTERVAL = 5.0
PROBE_THREADS = 2
AWAITING_MAPPING = (
    "bucket mapping not configured yet: waiting for the operator's first push "
    "(bucket_mapping_source: operator)"
)


class Gateway:
    """The store, the authenticator and the metrics of one running gateway."""

    def __init__(self, settings: GatewaySettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        server = settings.server
        self.executor = BoundedExecutor(
            settings.storage_threads,
            server.max_queued_calls,
            server.retry_after,
            thread_name_prefix="refstore-storage",
        )
        # A backend connection for every thread of the three pools (max_concurrency sizes
        # the connection pool when a pool of threads is given).
        threads = settings.storage_threads + server.max_concurrent_uploads + PROBE_THREADS
        config = settings.store_config().model_copy(update={"max_concurrency": threads})
        self.store = AsyncRefStore(config, self.executor, max_concurrency=settings.storage_threads)
        # Uploads wait on their clients, so they get threads of their own (as many as may
        # be admitted), and so does the backend probe: neither can starve the other calls.
        self.upload_executor = ThreadPoolExecutor(
            server.max_concurrent_uploads, thread_name_prefix="refstore-upload"
        )
        self.uploads = self.store.with_executor(self.upload_executor)
        self.upload_slots = UploadSlots(
            server.max_concurrent_uploads,
            server.uploads_per_key,
            server.retry_after,
            metrics.uploads_in_progress,
        )
        # Probes that cannot even start while a hung backend holds the probe threads
        # count as "no answer" at once (BusyError) instead of piling up.
        self.probe_executor = BoundedExecutor(
            PROBE_THREADS, PROBE_THREADS, server.retry_after, thread_name_prefix="refstore-probe"
        )
        self.probe = self.store.with_executor(self.probe_executor)
        self.authenticator = Authenticator(settings.auth)
        self.sessions = SessionSigner(self._session_secret())
        self.backend_up = True
        self._monitor: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        metrics.mapping_generation.set(self.mapping.generation)

    def _session_secret(self) -> bytes:
        """The key of upload session ids: every replica of this gateway derives the same."""
        settings = self.settings
        if settings.uploads.session_secret is not None:
            return settings.uploads.session_secret.get_secret_value().encode()
        if settings.minio is not None:
            return settings.minio.secret_key.get_secret_value().encode()
        backend = self.store.sync.backend
        assert isinstance(backend, LocalBackend)  # one backend or the other
        return backend.signing_secret

    @property
    def mapping(self) -> BucketMap:
        return self.store.mapping.current

    @property
    def awaiting_mapping(self) -> bool:
        """True while the mapping comes from the operator and none has been pushed yet."""
        return self.settings.bucket_mapping_source == "operator" and self.mapping.version is None

    def require_mapping(self) -> None:
        """Refuse object requests until the operator's mapping has arrived: without it a
        logical bucket name would be taken for a physical one.

        Raises:
            ConnectionError: still waiting for the first push (503, retried by clients).
        """
        if self.awaiting_mapping:
            raise errors.ConnectionError(AWAITING_MAPPING)

    @property
    def endpoint(self) -> str:
        if self.settings.minio:
            return self.settings.minio.endpoint
        assert self.settings.local is not None  # one backend or the other
        return f"local:{Path(self.settings.local.root).resolve()}"

    async def check_backend(self, timeout: float | None = None) -> bool:
        """Ping the backend (on the probe's own threads, within ``timeout`` seconds) and
        record whether it answered."""
        try:
            await asyncio.wait_for(self.probe.ping(), timeout)
        except (errors.RefStoreError, asyncio.TimeoutError) as exc:
            if self.backend_up:
                reason = exc if isinstance(exc, errors.RefStoreError) else "no answer in time"
                logger.warning("backend unreachable: %s", reason)
            self.set_backend_up(False)
        else:
            self.set_backend_up(True)
        return self.backend_up

    def set_backend_up(self, up: bool) -> None:
        self.backend_up = up
        self.metrics.backend_up.set(1 if up else 0)

    async def start(self) -> None:
        await self.check_backend(self.settings.server.ready_timeout)
        if self.backend_up:
            with contextlib.suppress(errors.RefStoreError):
                await self.store.init_buckets()
        self._monitor = asyncio.create_task(self._watch_backend())
        self._sweeper = asyncio.create_task(self._sweep_uploads())

    async def _watch_backend(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            await self.check_backend(self.settings.server.ready_timeout)

    async def _sweep_uploads(self) -> None:
        """Abort, now and then, the uploads of sessions that have expired (in every bucket)."""
        uploads = self.settings.uploads
        while True:
            await asyncio.sleep(uploads.sweep_interval)
            await self.sweep_uploads()

    async def sweep_uploads(self) -> int:
        """Abort the uploads older than a session may live; return how many."""
        try:
            swept = await self.store.abort_stale_uploads(self.settings.uploads.session_expiry)
        except errors.RefStoreError as exc:
            logger.warning("could not sweep expired upload sessions: %s", exc)
            return 0
        if swept:
            logger.info("aborted %d uploads of expired sessions", swept)
        return swept

    async def stop(self) -> None:
        for task in (self._monitor, self._sweeper):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.store.close()
        for executor in (self.executor, self.upload_executor, self.probe_executor):
            executor.shutdown(wait=False)


# Dependencies are coroutines: FastAPI runs plain ``def`` dependencies in its thread
# pool, a hop per dependency per request that waits for the GIL under load.


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


AuthorizationHeader = Annotated[
    str | None, Header(description="Bearer token: `Authorization: Bearer <key>`")
]


def authenticate(request: Request, gateway: Gateway, authorization: str | None) -> Principal:
    principal = gateway.authenticator.authenticate(authorization)
    request.state.principal = principal.name
    return principal


async def get_principal(
    request: Request, gateway: GatewayDep, authorization: AuthorizationHeader = None
) -> Principal:
    principal = authenticate(request, gateway, authorization)
    principal.require_general_access()
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_object_principal(principal: PrincipalDep, gateway: GatewayDep) -> Principal:
    gateway.require_mapping()
    return principal


ObjectPrincipalDep = Annotated[Principal, Depends(get_object_principal)]
"""The caller of an object request, refused while the operator's mapping is awaited."""


async def get_mapping_principal(
    request: Request, gateway: GatewayDep, authorization: AuthorizationHeader = None
) -> Principal:
    principal = authenticate(request, gateway, authorization)
    principal.require_mapping_access()
    return principal


MappingPrincipalDep = Annotated[Principal, Depends(get_mapping_principal)]
"""An admin or a bucket-mapping token."""


async def get_admin(principal: PrincipalDep) -> Principal:
    principal.require_admin()
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
