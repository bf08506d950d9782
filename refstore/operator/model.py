"""What the operator wants and what it sees, as plain data: the mapping a BucketMapping asks
for, the gateway endpoints its EndpointSlices list, which of several BucketMappings owns a
gateway, and the status that describes it all. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..mapping import content_hash

GROUP = "refstore.io"
VERSION = "v1alpha1"
PLURAL = "bucketmappings"
SERVICE_LABEL = "kubernetes.io/service-name"
DEFAULT_PORT_NAME = "http"
MAX_STATUS_ENDPOINTS = 100


@dataclass(frozen=True)
class DesiredMapping:
    """The mapping one BucketMapping generation asks every gateway replica to hold."""

    source: str
    uid: str
    created: str
    generation: int
    enabled: bool
    bucket_map: Mapping[str, str]

    @property
    def version(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "uid": self.uid,
            "created": self.created,
            "generation": self.generation,
        }

    @property
    def sort_key(self) -> tuple[str, int]:
        """How gateways order versions: creation time, then generation."""
        return (self.created, self.generation)

    @property
    def hash(self) -> str:
        """The content hash the gateway reports once it holds this mapping."""
        return content_hash(self.enabled, self.bucket_map)

    def request_body(self) -> dict[str, Any]:
        """The body of ``PUT /gateway/bucket-mapping``."""
        return {
            "enable_bucket_mapping": self.enabled,
            "bucket_map": dict(self.bucket_map),
            "version": self.version,
        }

    def cleared(self) -> DesiredMapping:
        """An empty mapping that gateways take as newer than this one (``onDelete: Clear``)."""
        return DesiredMapping(self.source, self.uid, self.created, self.generation + 1, False, {})


def desired_mapping(body: Mapping[str, Any]) -> DesiredMapping:
    """The mapping a BucketMapping object asks for.

    ``spec.enabled`` with no mappings is pushed as "mapping off": the gateway treats both
    the same, and refuses "on" with an empty map.
    """
    meta = body.get("metadata", {})
    spec = body.get("spec", {})
    bucket_map = {m["logical"]: m["physical"] for m in spec.get("mappings") or ()}
    return DesiredMapping(
        source=f"bucketmapping/{meta.get('namespace', '')}/{meta.get('name', '')}",
        uid=str(meta.get("uid", "")),
        created=str(meta.get("creationTimestamp", "")),
        generation=int(meta.get("generation", 0)),
        enabled=bool(spec.get("enabled", True)) and bool(bucket_map),
        bucket_map=bucket_map,
    )


def gateway_service(body: Mapping[str, Any]) -> str:
    return str(body.get("spec", {}).get("gatewayRef", {}).get("service", ""))


def gateway_port(body: Mapping[str, Any]) -> str | int | None:
    port: str | int | None = body.get("spec", {}).get("gatewayRef", {}).get("port")
    return port


# -- endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One gateway replica as an EndpointSlice lists it."""

    address: str
    port: int
    pod: str = ""
    ready: bool = True

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class SliceEndpoints:
    """What one EndpointSlice says: its ports (name -> number) and its live endpoints."""

    name: str
    ports: tuple[tuple[str, int], ...]
    endpoints: tuple[tuple[str, str, bool], ...]  # (address, pod, ready)


def slice_endpoints(body: Mapping[str, Any]) -> SliceEndpoints | None:
    """The index entry of an EndpointSlice; None for slices without IP addresses.

    Terminating endpoints are left out (they are going away); not-ready ones stay in, since
    a replica waiting for its mapping is not ready until it has been pushed.
    """
    if body.get("addressType") not in ("IPv4", "IPv6"):
        return None
    ports = tuple(
        (str(p.get("name") or ""), int(p["port"]))
        for p in body.get("ports") or ()
        if p.get("port") is not None and p.get("protocol", "TCP") == "TCP"
    )
    endpoints = []
    for endpoint in body.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        if conditions.get("terminating") is True:
            continue
        target = endpoint.get("targetRef") or {}
        pod = str(target.get("name", "")) if target.get("kind", "Pod") == "Pod" else ""
        ready = conditions.get("ready") is not False  # unset means ready
        for address in endpoint.get("addresses") or ():
            endpoints.append((str(address), pod, ready))
    return SliceEndpoints(str(body.get("metadata", {}).get("name", "")), ports, tuple(endpoints))


def _pick_port(ports: Iterable[tuple[str, int]], wanted: str | int | None) -> int | None:
    ports = list(ports)
    if wanted is None:
        named = [number for name, number in ports if name == DEFAULT_PORT_NAME]
        return named[0] if named else (ports[0][1] if ports else None)
    if isinstance(wanted, int) or str(wanted).isdigit():
        return int(wanted) if any(number == int(wanted) for _, number in ports) else None
    return next((number for name, number in ports if name == wanted), None)


def merge_endpoints(slices: Iterable[SliceEndpoints], port: str | int | None) -> list[Endpoint]:
    """Every endpoint of every slice of one Service, once per address, sorted.

    An address listed by two slices (a replica moving between them) counts once, as ready if
    either says so.
    """
    found: dict[tuple[str, int], Endpoint] = {}
    for each in slices:
        number = _pick_port(each.ports, port)
        if number is None:
            continue
        for address, pod, ready in each.endpoints:
            seen = found.get((address, number))
            if seen is None or (ready and not seen.ready):
                found[(address, number)] = Endpoint(
                    address, number, pod or (seen.pod if seen else ""), ready
                )
    return sorted(found.values(), key=lambda e: (e.address, e.port))


# -- ownership ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Claim:
    """A BucketMapping's claim on a gateway Service; the oldest claim wins."""

    created: str
    name: str
    uid: str


def owner(claims: Iterable[Claim]) -> Claim | None:
    """The claim that owns the gateway: the oldest, as gateways order versions by creation
    time (a younger object's push would win there, so it must not push at all)."""
    return min(claims, default=None)


# -- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointState:
    """What the operator knows of one replica."""

    endpoint: Endpoint
    applied_generation: int = 0  # generation of this BucketMapping the replica holds; 0: none
    synced: bool = False
    error: str = ""


def condition(
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
    previous: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A status condition; ``lastTransitionTime`` moves only when the status changes."""
    value = "True" if status else "False"
    since = now
    for old in previous:
        if old.get("type") == type_ and old.get("status") == value:
            since = str(old.get("lastTransitionTime") or now)
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _describe(state: EndpointState) -> str:
    name = f"{state.endpoint.address}:{state.endpoint.port}"
    return f"{name} (pod {state.endpoint.pod})" if state.endpoint.pod else name


def sync_status(
    desired: DesiredMapping,
    service: str,
    states: Iterable[EndpointState],
    previous: Mapping[str, Any],
    now: str,
    conflict_with: Claim | None = None,
) -> dict[str, Any]:
    """The ``status`` of a BucketMapping.

    Ready: every endpoint holds this generation (and there is at least one). Progressing: some
    endpoint is still being pushed to. Conflict: an older BucketMapping owns the gateway.
    """
    states = list(states)
    synced = sum(1 for s in states if s.synced)
    failing = [s for s in states if s.error]
    old_conditions = previous.get("conditions") or ()
    generation = desired.generation

    if conflict_with is not None:
        message = (
            f"BucketMapping {conflict_with.name} (older) already maps gateway Service "
            f"{service}; this one is not pushed"
        )
        ready = (False, "Conflict", message)
        progressing = (False, "Conflict", message)
    elif not states:
        message = f"Service {service} has no endpoints (no EndpointSlice lists a gateway)"
        ready = (False, "NoEndpoints", message)
        progressing = (False, "NoEndpoints", message)
    elif failing:
        names = ", ".join(f"{_describe(s)}: {s.error}" for s in failing[:5])
        more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        message = f"{synced} of {len(states)} gateways synced; failing: {names}{more}"
        ready = (False, "EndpointsFailing", message)
        progressing = (True, "Retrying", message)
    elif synced < len(states):
        message = f"{synced} of {len(states)} gateways synced"
        ready = (False, "Syncing", message)
        progressing = (True, "Pushing", message)
    else:
        message = f"all {len(states)} gateways serve generation {generation}"
        ready = (True, "Synced", message)
        progressing = (False, "Synced", message)
    conflict = (
        (True, "OlderMappingOwnsGateway", ready[2])
        if conflict_with is not None
        else (False, "NoConflict", f"the only BucketMapping for Service {service}")
    )
    conditions = [
        condition(kind, value[0], value[1], value[2], generation, now, old_conditions)
        for kind, value in (("Ready", ready), ("Progressing", progressing), ("Conflict", conflict))
    ]
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "replicas": len(states),
        "syncedReplicas": synced,
        "synced": f"{synced}/{len(states)}",
        "lastSyncTime": now if synced and synced == len(states) else previous.get("lastSyncTime"),
        "endpoints": [
            {
                "address": f"{s.endpoint.address}:{s.endpoint.port}",
                "pod": s.endpoint.pod,
                "ready": s.endpoint.ready,
                "appliedGeneration": s.applied_generation,
                "error": s.error,
            }
            for s in states[:MAX_STATUS_ENDPOINTS]
        ],
    }
