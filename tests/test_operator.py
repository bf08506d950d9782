"""``refstore operator`` end to end on a real control plane (etcd, kube-apiserver,
kube-controller-manager), with real gateways each in a network namespace of its own and the
EndpointSlices the EndpointSlice controller would write for them: every replica serves the
BucketMapping, including replicas that appear later or restart empty; status says so; stale
or conflicting pushes never win."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kube import ControlPlane
from netns import GatewayPod
from operator_bed import (
    CHART,
    MAPPING_TOKEN,
    Fleet,
    OperatorProcess,
    apply_crd,
    bucket_mapping,
    endpoint_slice,
    held,
    mapping_requests,
    pod_name,
    serves,
    service,
)
from polling import wait_until

RESYNC = 2.0


@dataclass
class Bed:
    kube: ControlPlane
    namespace: str
    fleet: Fleet
    operator: OperatorProcess
    last_created: float = 0.0
    """When the newest BucketMapping was made (epoch seconds, whole as Kubernetes keeps them)."""

    def kubectl(self, *args: str, check: bool = True) -> Any:
        return self.kube.kubectl("-n", self.namespace, *args, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kube.apply(manifest, namespace=self.namespace)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.kube.kubectl_json(
            "-n", self.namespace, "get", "bucketmapping", name
        )
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for each in self.status(name).get("conditions") or ():
            if each["type"] == kind:
                return dict(each)
        return {}


@pytest.fixture(scope="module")
def bed(kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    namespace = f"rs-op-{uuid.uuid4().hex[:8]}"
    apply_crd(kube)
    kube.kubectl("create", "namespace", namespace)
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    operator = OperatorProcess(kube, namespace, resync=RESYNC)
    try:
        fleet.add(3)
        operator.start()
        yield Bed(kube, namespace, fleet, operator)
    finally:
        try:
            kube.kubectl(
                "-n",
                namespace,
                "delete",
                "bucketmappings",
                "--all",
                "--wait=true",
                "--timeout=30s",
                check=False,
            )
        finally:
            operator.stop()
            fleet.close()
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclass
class Case:
    """One test's Service name and the objects it made, removed afterwards."""

    bed: Bed
    service: str
    mappings: list[str] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)

    def publish(self, *groups: list[GatewayPod], not_ready: tuple[GatewayPod, ...] = ()) -> None:
        """One EndpointSlice per group of pods (the rest of this Service's slices removed)."""
        names = [f"{self.service}-{i}" for i in range(len(groups))]
        for name, pods in zip(names, groups, strict=True):
            self.bed.apply(endpoint_slice(self.service, name, pods, lambda p: p not in not_ready))
        for gone in set(self.slices) - set(names):
            self.bed.kubectl("delete", "endpointslice", gone)
        self.slices = names

    def create(self, name: str, mappings: dict[str, str], **spec: Any) -> str:
        """Apply a BucketMapping; returns its uid."""
        self.bed.apply(bucket_mapping(name, self.service, mappings, **spec))
        if name not in self.mappings:
            self.mappings.append(name)
        meta = self.bed.get(name)["metadata"]
        created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
        self.bed.last_created = max(self.bed.last_created, created.timestamp())
        return str(meta["uid"])

    def delete(self, name: str) -> None:
        self.bed.kubectl("delete", "bucketmapping", name, "--wait=true", "--timeout=30s")
        self.mappings.remove(name)


@pytest.fixture
def case(bed: Bed) -> Iterator[Case]:
    # Gateways order versions by creationTimestamp (whole seconds), then generation, and keep
    # a deleted object's mapping (onDelete: Retain): a mapping made in the same second as the
    # last test's would rank below that test's generation 2 on the same pods.
    while time.time() < bed.last_created + 1.0:
        time.sleep(0.05)
    made = Case(bed, f"gw-{uuid.uuid4().hex[:6]}")
    bed.apply(service(made.service))
    try:
        yield made
    finally:
        for name in made.mappings:
            bed.kubectl(
                "delete", "bucketmapping", name, "--wait=true", "--timeout=30s", check=False
            )
        for name in made.slices:
            bed.kubectl("delete", "endpointslice", name, check=False)
        bed.kubectl("delete", "service", made.service, check=False)


def all_serve(pods: list[GatewayPod], bucket_map: dict[str, str], uid: str) -> bool:
    return all(serves(pod, bucket_map, uid) for pod in pods)


def ready_synced(bed: Bed, name: str, count: int) -> bool:
    status = bed.status(name)
    generation = bed.get(name)["metadata"]["generation"]
    return (
        bed.condition(name, "Ready").get("status") == "True"
        and status.get("synced") == f"{count}/{count}"
        and status.get("observedGeneration") == generation
    )


def test_apply_then_update_reaches_every_gateway_and_status_says_ready(
    bed: Bed, case: Case
) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("maps", {"data": "team-a-data"})
    wait_until(lambda: all_serve(pods, {"data": "team-a-data"}, uid), what="first mapping")
    assert all(held(pod)["ready"] == 200 for pod in pods)
    wait_until(lambda: ready_synced(bed, "maps", 3), what="status Ready 3/3")
    status = bed.status("maps")
    assert status["replicas"] == 3 and status["syncedReplicas"] == 3
    assert status["lastSyncTime"]
    assert sorted(e["pod"] for e in status["endpoints"]) == sorted(pod_name(p) for p in pods)
    assert {e["appliedGeneration"] for e in status["endpoints"]} == {1}
    assert bed.condition("maps", "Conflict")["status"] == "False"

    case.create("maps", {"data": "team-a-data-v2", "logs": "team-a-logs"})
    expected = {"data": "team-a-data-v2", "logs": "team-a-logs"}
    wait_until(lambda: all_serve(pods, expected, uid), what="updated mapping")
    assert all(held(pod)["version"]["generation"] == 2 for pod in pods)
    wait_until(lambda: ready_synced(bed, "maps", 3), what="status follows the update")
    printed = bed.kubectl("get", "bm", "maps").stdout
    assert "ENABLED" in printed and "SYNCED" in printed and "3/3" in printed


def test_endpoints_split_over_two_slices_are_all_served(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods[:1], pods[1:])
    uid = case.create("split", {"data": "split-data"})
    wait_until(lambda: all_serve(pods, {"data": "split-data"}, uid), what="both slices served")
    wait_until(lambda: ready_synced(bed, "split", 3), what="Ready 3/3 over two slices")


def test_a_new_endpoint_that_is_not_ready_gets_the_mapping_and_becomes_ready(
    bed: Bed, case: Case
) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("grow", {"data": "grow-data"})
    wait_until(lambda: all_serve(pods, {"data": "grow-data"}, uid), what="first three")
    (newcomer,) = bed.fleet.add(1)
    assert held(newcomer)["ready"] == 503  # waiting for its mapping
    case.publish([*pods, newcomer], not_ready=(newcomer,))
    wait_until(lambda: serves(newcomer, {"data": "grow-data"}, uid), what="newcomer served")
    assert held(newcomer)["ready"] == 200
    wait_until(lambda: ready_synced(bed, "grow", 4), what="status counts the newcomer")


def test_a_gateway_restarted_empty_is_pushed_again_by_the_resync(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("restart", {"data": "restart-data"})
    wait_until(lambda: all_serve(pods, {"data": "restart-data"}, uid), what="first push")
    earlier_log = len(pods[1].log())
    pods[1].restart()
    took = wait_until(lambda: serves(pods[1], {"data": "restart-data"}, uid), what="re-push")
    assert took < RESYNC + 2.0, f"re-pushed after {took:.1f}s with a {RESYNC}s resync"
    # The new process held nothing: the operator pushed to it again. (Reading its mapping
    # right after the restart raced with that push.)
    assert "PUT /gateway/bucket-mapping 200" in pods[1].log()[earlier_log:]


def test_a_stopped_gateway_is_named_in_status_and_recovers(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("outage", {"data": "outage-data"})
    wait_until(lambda: ready_synced(bed, "outage", 3), what="Ready before the outage")
    down = pods[2]
    down.stop()
    try:
        case.create("outage", {"data": "outage-data-2"})
        wait_until(
            lambda: bed.condition("outage", "Ready").get("reason") == "EndpointsFailing",
            what="status reports the stopped gateway",
        )
        ready = bed.condition("outage", "Ready")
        assert ready["status"] == "False"
        assert f"pod {pod_name(down)}" in ready["message"]
        assert "connection refused" in ready["message"]
        failing = [e for e in bed.status("outage")["endpoints"] if e["error"]]
        assert [e["pod"] for e in failing] == [pod_name(down)]
        assert bed.status("outage")["synced"] == "2/3"
        events = bed.kubectl("get", "events", "-o", "json").stdout
        assert "GatewayUnreachable" in events
    finally:
        down.start()
    wait_until(lambda: serves(down, {"data": "outage-data-2"}, uid), what="recovered gateway")
    wait_until(lambda: ready_synced(bed, "outage", 3), what="Ready again")


def test_an_older_version_replayed_by_hand_is_refused(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:1]
    case.publish(pods)
    uid = case.create("replay", {"data": "replay-1"})
    wait_until(lambda: serves(pods[0], {"data": "replay-1"}, uid), what="generation 1")
    first = held(pods[0])
    case.create("replay", {"data": "replay-2"})
    wait_until(lambda: serves(pods[0], {"data": "replay-2"}, uid), what="generation 2")
    stale = {
        "enable_bucket_mapping": True,
        "bucket_map": {"data": "replay-1"},
        "version": first["version"],
    }
    headers = {"Authorization": f"Bearer {MAPPING_TOKEN}"}
    with httpx.Client(base_url=pods[0].url, headers=headers, trust_env=False) as client:
        refused = client.put("/gateway/bucket-mapping", json=stale)
    assert refused.status_code == 409, refused.text
    assert held(pods[0])["bucket_map"] == {"data": "replay-2"}


def test_a_second_mapping_for_the_same_gateway_is_a_conflict_and_its_delete_clears_nothing(
    bed: Bed, case: Case
) -> None:
    pods = bed.fleet.pods[:2]
    case.publish(pods)
    uid = case.create("first", {"data": "owner-data"})
    wait_until(lambda: all_serve(pods, {"data": "owner-data"}, uid), what="owner served")
    case.create("second", {"data": "intruder-data"}, onDelete="Clear")
    wait_until(
        lambda: bed.condition("second", "Conflict").get("status") == "True",
        what="Conflict on the younger mapping",
    )
    assert "first" in bed.condition("second", "Conflict")["message"]
    assert bed.condition("second", "Ready")["status"] == "False"
    assert all(serves(pod, {"data": "owner-data"}, uid) for pod in pods)
    case.delete("second")
    assert all(serves(pod, {"data": "owner-data"}, uid) for pod in pods)
    assert bed.condition("first", "Conflict")["status"] == "False"


def test_an_operator_killed_mid_update_converges_without_duplicate_or_stale_pushes(
    bed: Bed, case: Case
) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("crash", {"data": "crash-1"})
    wait_until(lambda: all_serve(pods, {"data": "crash-1"}, uid), what="before the crash")
    wait_until(lambda: ready_synced(bed, "crash", 3), what="settled")
    before = [mapping_requests(pod) for pod in pods]
    case.create("crash", {"data": "crash-2"})
    bed.operator.kill()
    bed.operator.start()
    wait_until(lambda: all_serve(pods, {"data": "crash-2"}, uid), what="converged after restart")
    wait_until(lambda: ready_synced(bed, "crash", 3), what="status after restart")
    after = [mapping_requests(pod) for pod in pods]
    for old, new in zip(before, after, strict=True):
        assert new.get("200", 0) - old.get("200", 0) == 1, (old, new)  # one push each
        assert new.get("409", 0) == old.get("409", 0), (old, new)  # nothing stale


def test_a_restarted_operator_pushes_nothing_that_is_already_there(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("steady", {"data": "steady"})
    wait_until(lambda: ready_synced(bed, "steady", 3), what="settled")
    assert all_serve(pods, {"data": "steady"}, uid)
    before = [mapping_requests(pod) for pod in pods]
    assert bed.operator.stop() == 0  # SIGTERM: a graceful stop
    bed.operator.start()
    wait_until(lambda: ready_synced(bed, "steady", 3), what="status after restart")
    time.sleep(RESYNC + 0.5)  # a resync round re-reads every replica
    assert [mapping_requests(pod) for pod in pods] == before


def test_delete_with_on_delete_clear_clears_every_gateway_and_goes(bed: Bed, case: Case) -> None:
    pods = bed.fleet.pods[:3]
    case.publish(pods)
    uid = case.create("clearing", {"data": "clear-me"}, onDelete="Clear")
    wait_until(lambda: all_serve(pods, {"data": "clear-me"}, uid), what="pushed")
    finalizers = bed.get("clearing")["metadata"].get("finalizers") or []
    assert finalizers, "the operator guards the object with a finalizer"
    case.delete("clearing")
    assert bed.kubectl("get", "bm", "clearing", check=False).returncode != 0
    for pod in pods:
        state = held(pod)
        assert state["bucket_map"] == {} and state["enable_bucket_mapping"] is False
        assert state["version"]["uid"] == uid


def test_the_operator_logs_json_lines_and_answers_its_liveness_probe(bed: Bed) -> None:
    with httpx.Client(trust_env=False) as client:
        assert client.get(bed.operator.liveness_url).status_code == 200
    entries = bed.operator.log_entries()
    assert entries, bed.operator.log()
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    lines = [line for line in bed.operator.log().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), [
        line for line in lines if not line.startswith("{")
    ][:3]
    assert json.loads(lines[0])


def test_the_operator_works_with_nothing_but_the_charts_role(
    bed: Bed, kube: ControlPlane, tmp_path: Path
) -> None:
    namespace = f"rs-rbac-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", namespace)
    rendered = kube.helm(
        "template",
        "rel",
        str(CHART),
        "--namespace",
        namespace,
        "--show-only",
        "templates/operator-rbac.yaml",
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    account = next(o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount")
    kube.apply(rendered, namespace=namespace)
    kubeconfig = kube.service_account_kubeconfig(namespace, account, tmp_path / "sa.kubeconfig")
    operator = OperatorProcess(kube, namespace, resync=RESYNC, kubeconfig=kubeconfig)
    pods = bed.fleet.pods[:2]
    try:
        operator.start()
        kube.apply(service("gw"), namespace=namespace)
        kube.apply(endpoint_slice("gw", "gw-0", pods), namespace=namespace)
        kube.apply(bucket_mapping("least", "gw", {"data": "least-data"}), namespace=namespace)
        uid = kube.kubectl_json("-n", namespace, "get", "bm", "least")["metadata"]["uid"]
        wait_until(lambda: all_serve(pods, {"data": "least-data"}, uid), what="pushed")
        wait_until(
            lambda: (
                (kube.kubectl_json("-n", namespace, "get", "bm", "least").get("status") or {}).get(
                    "synced"
                )
                == "2/2"
            ),
            what="status written with the Role's rights",
        )
        kube.kubectl("-n", namespace, "delete", "bm", "least", "--wait=true", "--timeout=30s")
        refused = [
            e
            for e in operator.log_entries()
            if "Forbidden" in e.get("message", "") or "403" in e.get("message", "")
        ]
        assert refused == [], refused[:3]
    finally:
        operator.stop()
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
