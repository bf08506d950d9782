"""The operator's plain logic, without kopf or a cluster: which mapping a BucketMapping asks
for, which endpoints its Service's EndpointSlices list, who owns a gateway, and the status."""

from __future__ import annotations

from typing import Any

from refstore.mapping import content_hash
from refstore.operator.model import (
    Claim,
    Endpoint,
    EndpointState,
    desired_mapping,
    merge_endpoints,
    owner,
    slice_endpoints,
    sync_status,
)


def bucket_mapping(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "maps",
            "namespace": "team",
            "uid": "uid-1",
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "generation": 3,
        },
        "spec": {"gatewayRef": {"service": "gw"}, **spec},
    }


def endpoint_slice(
    name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "gw"}},
        "addressType": "IPv4",
        "ports": ports if ports is not None else [{"name": "http", "port": 8000}],
        "endpoints": endpoints,
    }


def ep(address: str, pod: str = "", **conditions: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"addresses": [address], "conditions": conditions}
    if pod:
        found["targetRef"] = {"kind": "Pod", "name": pod}
    return found


def test_the_desired_mapping_carries_the_objects_version_and_content() -> None:
    desired = desired_mapping(bucket_mapping(mappings=[{"logical": "a", "physical": "pa"}]))
    assert desired.version == {
        "source": "bucketmapping/team/maps",
        "uid": "uid-1",
        "created": "2026-12-01T10:00:00Z",
        "generation": 3,
    }
    assert desired.request_body()["bucket_map"] == {"a": "pa"}
    assert desired.request_body()["enable_bucket_mapping"] is True
    assert desired.hash == content_hash(True, {"a": "pa"})


def test_enabled_false_or_no_mappings_is_pushed_as_mapping_off() -> None:
    off = desired_mapping(
        bucket_mapping(enabled=False, mappings=[{"logical": "a", "physical": "b"}])
    )
    assert off.request_body()["enable_bucket_mapping"] is False
    assert off.request_body()["bucket_map"] == {"a": "b"}
    assert desired_mapping(bucket_mapping(mappings=[])).enabled is False


def test_a_cleared_mapping_is_empty_and_newer() -> None:
    desired = desired_mapping(bucket_mapping(mappings=[{"logical": "a", "physical": "pa"}]))
    cleared = desired.cleared()
    assert cleared.bucket_map == {} and cleared.enabled is False
    assert cleared.sort_key > desired.sort_key
    assert cleared.uid == desired.uid


def test_terminating_endpoints_are_left_out_and_not_ready_ones_kept() -> None:
    entry = slice_endpoints(
        endpoint_slice(
            "gw-a",
            [
                ep("198.18.0.2", "gw-1", ready=True),
                ep("198.18.0.3", "gw-2", ready=False),
                ep("198.18.0.4", "gw-3", ready=False, terminating=True),
                ep("198.18.0.5"),  # no conditions: ready
            ],
        )
    )
    assert entry is not None
    endpoints = merge_endpoints([entry], None)
    assert [(e.address, e.pod, e.ready) for e in endpoints] == [
        ("198.18.0.2", "gw-1", True),
        ("198.18.0.3", "gw-2", False),
        ("198.18.0.5", "", True),
    ]
    assert endpoints[0].url == "http://198.18.0.2:8000"


def test_every_slice_of_the_service_counts_and_an_address_in_two_counts_once() -> None:
    first = slice_endpoints(endpoint_slice("gw-a", [ep("198.18.0.2"), ep("198.18.0.3")]))
    second = slice_endpoints(
        endpoint_slice("gw-b", [ep("198.18.0.3", ready=True), ep("198.18.0.4", ready=False)])
    )
    assert first is not None and second is not None
    merged = merge_endpoints([first, second], None)
    assert [e.address for e in merged] == ["198.18.0.2", "198.18.0.3", "198.18.0.4"]


def test_the_port_is_chosen_by_name_or_number_defaulting_to_http() -> None:
    ports = [{"name": "metrics", "port": 9100}, {"name": "http", "port": 8000}]
    entry = slice_endpoints(endpoint_slice("gw-a", [ep("198.18.0.2")], ports))
    assert entry is not None
    assert [e.port for e in merge_endpoints([entry], None)] == [8000]
    assert [e.port for e in merge_endpoints([entry], "metrics")] == [9100]
    assert [e.port for e in merge_endpoints([entry], 9100)] == [9100]
    assert merge_endpoints([entry], "grpc") == []


def test_fqdn_slices_are_ignored() -> None:
    body = endpoint_slice("gw-a", [ep("gw.example")])
    body["addressType"] = "FQDN"
    assert slice_endpoints(body) is None


def test_the_oldest_claim_owns_the_gateway() -> None:
    older = Claim("2026-12-01T10:00:00Z", "zeta", "u1")
    younger = Claim("2026-12-01T10:00:01Z", "alpha", "u2")
    assert owner([younger, older]) == older
    assert owner([]) is None


def _status(states: list[EndpointState], **kwargs: Any) -> dict[str, Any]:
    desired = desired_mapping(bucket_mapping(mappings=[{"logical": "a", "physical": "pa"}]))
    previous, now = kwargs.pop("previous", {}), kwargs.pop("now", "T1")
    return sync_status(desired, "gw", states, previous, now, **kwargs)


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_is_ready_when_every_endpoint_holds_the_generation() -> None:
    states = [EndpointState(Endpoint(f"198.18.0.{i}", 8000), 3, True) for i in (2, 3)]
    status = _status(states)
    assert _conditions(status) == {
        "Ready": ("True", "Synced"),
        "Progressing": ("False", "Synced"),
        "Conflict": ("False", "NoConflict"),
    }
    assert (status["replicas"], status["syncedReplicas"], status["synced"]) == (2, 2, "2/2")
    assert status["observedGeneration"] == 3
    assert status["endpoints"][0] == {
        "address": "198.18.0.2:8000",
        "pod": "",
        "ready": True,
        "appliedGeneration": 3,
        "error": "",
    }


def test_status_names_a_failing_endpoint_and_says_why() -> None:
    states = [
        EndpointState(Endpoint("198.18.0.2", 8000, "gw-1"), 3, True),
        EndpointState(Endpoint("198.18.0.3", 8000, "gw-2"), 2, False, "connection refused"),
    ]
    status = _status(states)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "EndpointsFailing")
    assert "198.18.0.3:8000 (pod gw-2): connection refused" in ready["message"]
    assert status["synced"] == "1/2"


def test_status_without_endpoints_and_in_conflict() -> None:
    assert _conditions(_status([]))["Ready"] == ("False", "NoEndpoints")
    other = Claim("2026-11-30T00:00:00Z", "first", "u0")
    conflict = _status([EndpointState(Endpoint("198.18.0.2", 8000))], conflict_with=other)
    assert _conditions(conflict)["Conflict"] == ("True", "OlderMappingOwnsGateway")
    assert "first" in conflict["conditions"][2]["message"]


def test_last_transition_time_moves_only_when_a_condition_changes() -> None:
    synced = [EndpointState(Endpoint("198.18.0.2", 8000), 3, True)]
    first = _status(synced)
    again = _status(synced, previous=first, now="T2")
    assert [c["lastTransitionTime"] for c in again["conditions"]] == ["T1", "T1", "T1"]
    failing = [EndpointState(Endpoint("198.18.0.2", 8000), 3, False, "timeout")]
    changed = _status(failing, previous=again, now="T3")
    times = {c["type"]: c["lastTransitionTime"] for c in changed["conditions"]}
    assert times == {"Ready": "T3", "Progressing": "T3", "Conflict": "T1"}
