"""The kopf handlers: thin, async, and calling the plain code of the other modules.

Level-based: two indexes (the gateway Services' EndpointSlices, and which BucketMapping
claims which Service) and one daemon per BucketMapping that drives every endpoint to the
mapping the object asks for. Index and object events only wake the daemons; a daemon
always works from the current indexes and the live object, never from a single event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import kopf

from .kube import StatusWriteError, StatusWriter
from .model import (
    GROUP,
    PLURAL,
    SERVICE_LABEL,
    VERSION,
    Claim,
    desired_mapping,
    gateway_port,
    gateway_service,
    merge_endpoints,
    owner,
    slice_endpoints,
    sync_status,
)
from .pusher import GatewayPusher, PushError
from .sync import MappingSync, Timing

registry = kopf.OperatorRegistry()
FINALIZER = f"{GROUP}/operator"
CLEAR_RETRIES = 10
STATUS_DEBOUNCE = 0.05
STATUS_RETRY = 1.0


@dataclass
class OperatorState:
    """What the handlers share (kopf's ``memo``), made by :func:`refstore.operator.run`."""

    token: str | None
    timing: Timing = field(default_factory=Timing)
    push_timeout: float = 2.0
    pusher: GatewayPusher | None = None
    status: StatusWriter | None = None
    wakers: set[asyncio.Event] = field(default_factory=set)

    def wake_all(self) -> None:
        for waker in self.wakers:
            waker.set()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup(registry=registry)
async def configure(settings: kopf.OperatorSettings, memo: OperatorState, **_: Any) -> None:
    # kopf's bookkeeping lives in annotations: the CRD's status schema has no place for it.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Watching namespaces and CRDs to discover resources needs cluster-wide rights; the
    # operator has a Role in one namespace, and the chart installs the CRD before it starts.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # explicit events, and kopf's warnings
    settings.watching.server_timeout = 300
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = 30
    settings.background.cancellation_polling = 1
    logging.getLogger("kopf.objects").addFilter(_quiet_wake)
    memo.pusher = GatewayPusher(memo.token, timeout=memo.push_timeout)


def _quiet_wake(record: logging.LogRecord) -> bool:
    """Leave out kopf's "Handler 'wake' succeeded": one line per watched event says nothing."""
    return not record.getMessage().startswith("Handler 'wake' ")


@kopf.on.login(registry=registry)
async def login(memo: OperatorState, **kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is not None:  # (again after the credentials expired: a writer for the new ones)
        previous, memo.status = memo.status, StatusWriter(info)
        if previous is not None:
            await previous.aclose()
    return info


@kopf.on.cleanup(registry=registry)
async def close(memo: OperatorState, **_: Any) -> None:
    for each in (memo.pusher, memo.status):
        if each is not None:
            await each.aclose()


@kopf.index("discovery.k8s.io", "v1", "endpointslices", registry=registry)
async def gateway_endpoints(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, Any]:
    service = labels.get(SERVICE_LABEL)
    entry = slice_endpoints(body) if service else None
    return {service: entry} if service and entry is not None else {}


@kopf.index(GROUP, VERSION, PLURAL, registry=registry)
async def gateway_claims(meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[str, Claim]:
    if meta.deletion_timestamp:  # going away: the next oldest takes over at once
        return {}
    created = str(meta.creation_timestamp or "")
    return {gateway_service(body): Claim(created, str(meta.name), str(meta.uid))}


@kopf.on.event("discovery.k8s.io", "v1", "endpointslices", registry=registry)
@kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
async def wake(memo: OperatorState, **_: Any) -> None:
    memo.wake_all()


def _conflict(claims: kopf.Index[str, Claim], service: str, uid: str) -> Claim | None:
    winner = owner(claims.get(service, ()))
    return winner if winner is not None and winner.uid != uid else None


# kopf passes the indexes as keyword arguments named after them, which its handler protocols
# cannot declare: hence the type-ignores on the two handlers that read them.
@kopf.daemon(  # type: ignore[arg-type]
    GROUP, VERSION, PLURAL, registry=registry, cancellation_backoff=5, cancellation_timeout=5
)
async def sync_gateways(
    body: kopf.Body,
    meta: kopf.Meta,
    stopped: kopf.DaemonStopped,
    memo: OperatorState,
    gateway_endpoints: kopf.Index[str, Any],
    gateway_claims: kopf.Index[str, Claim],
    logger: kopf.Logger,
    **_: Any,
) -> None:
    assert memo.pusher is not None
    namespace, name, uid = str(meta.namespace), str(meta.name), str(meta.uid)
    sync = MappingSync(
        memo.pusher,
        memo.timing,
        lambda type_, reason, message: kopf.event(body, type=type_, reason=reason, message=message),
    )
    waker = asyncio.Event()
    memo.wakers.add(waker)
    written: dict[str, Any] | None = None
    previous: dict[str, Any] = dict(body.get("status") or {})
    try:
        while not stopped:
            waker.clear()
            sync.changed.clear()
            service = gateway_service(body)
            desired = desired_mapping(body)
            conflict = _conflict(gateway_claims, service, uid)
            slices = gateway_endpoints.get(service, ())
            sync.update(None if conflict else desired, merge_endpoints(slices, gateway_port(body)))
            status = sync_status(desired, service, sync.states(), previous, _now(), conflict)
            if _differs(status, written):
                if written is None or _ready(status) != _ready(written):
                    logger.info("%s: %s", _ready(status)[0], _ready(status)[1])
                try:
                    if not await _status_writer(memo).patch_status(namespace, name, status):
                        return  # the object is gone
                except StatusWriteError as exc:
                    logger.warning("%s; retrying", exc)
                    await asyncio.sleep(STATUS_RETRY)
                    continue
                written = previous = status
            await _wait_for_news(waker, sync.changed, stopped, memo.timing.resync)
    finally:
        memo.wakers.discard(waker)
        await sync.aclose()


def _status_writer(memo: OperatorState) -> StatusWriter:
    if memo.status is None:
        raise StatusWriteError("not logged in to the API server yet")
    return memo.status


async def _wait_for_news(
    waker: asyncio.Event, changed: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float
) -> None:
    """Until an index or the object changed, an endpoint's state changed, the daemon is
    stopped, or the resync is due. Endpoint news waits a moment for its siblings, so one
    status write says what a round of parallel pushes did."""
    waiters = [
        asyncio.ensure_future(waker.wait()),
        asyncio.ensure_future(changed.wait()),
        asyncio.ensure_future(stopped.wait()),
    ]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if changed.is_set() and not waker.is_set():
        await asyncio.sleep(STATUS_DEBOUNCE)


def _ready(status: dict[str, Any]) -> tuple[str, str]:
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    return ready["reason"], ready["message"]


def _differs(status: dict[str, Any], written: dict[str, Any] | None) -> bool:
    """Whether ``status`` says something new (a moved ``lastSyncTime`` alone is not news)."""
    if written is None:
        return True
    return {**status, "lastSyncTime": None} != {**written, "lastSyncTime": None}


@kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, retries=CLEAR_RETRIES)  # type: ignore[arg-type]
async def clear_on_delete(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: OperatorState,
    gateway_endpoints: kopf.Index[str, Any],
    gateway_claims: kopf.Index[str, Claim],
    retry: int,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """``onDelete: Clear``: push an empty mapping to every replica before the object goes.

    Only the owner of the gateway clears it: a younger BucketMapping's push would win on the
    gateways (versions order by creation time) and wipe the owner's mapping.
    """
    if spec.get("onDelete", "Retain") != "Clear":
        return
    assert memo.pusher is not None
    service = gateway_service(body)
    me = Claim(str(meta.creation_timestamp or ""), str(meta.name), str(meta.uid))
    if owner([*gateway_claims.get(service, ()), me]) != me:
        logger.info("not the owner of Service %s: leaving its mapping alone", service)
        return
    cleared = desired_mapping(body).cleared()
    endpoints = merge_endpoints(gateway_endpoints.get(service, ()), gateway_port(body))
    results = await asyncio.gather(
        *(memo.pusher.push(endpoint, cleared) for endpoint in endpoints), return_exceptions=True
    )
    failed = [
        f"{endpoint.address}:{endpoint.port}: {result}"
        for endpoint, result in zip(endpoints, results, strict=True)
        if isinstance(result, PushError)
    ]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, PushError):
            raise result
    if failed and retry < CLEAR_RETRIES - 1:
        raise kopf.TemporaryError(f"mapping not cleared on {', '.join(failed)}", delay=1)
    if failed:
        kopf.warn(body, reason="ClearIncomplete", message=f"gave up clearing: {'; '.join(failed)}")
    else:
        logger.info("cleared the mapping on %d gateways of Service %s", len(endpoints), service)
