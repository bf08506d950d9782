"""The BucketMapping CRD on a real API server: invalid specs are refused by the server itself
with a message that names the field and the rule; valid ones get their defaults; the status
the operator writes is kept as written; ``kubectl get bm`` shows the printer columns."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import ControlPlane

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
CRD = DEPLOY / "helm/refstore/crds/bucketmappings.refstore.io.yaml"
EXAMPLE = DEPLOY / "examples/bucketmapping.yaml"


@pytest.fixture(scope="module")
def crd(kube: ControlPlane) -> ControlPlane:
    kube.kubectl("apply", "-f", str(CRD))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/bucketmappings.refstore.io"
    )
    return kube


@pytest.fixture
def namespace(crd: ControlPlane) -> Iterator[str]:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    crd.kubectl("create", "namespace", name)
    yield name
    crd.kubectl("delete", "namespace", name, "--wait=false")


def mapping(spec: dict[str, Any], name: str = "buckets") -> dict[str, Any]:
    return {
        "apiVersion": "refstore.io/v1alpha1",
        "kind": "BucketMapping",
        "metadata": {"name": name},
        "spec": spec,
    }


def valid_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "gatewayRef": {"service": "refstore-gateway"},
        "mappings": [
            {"logical": "reports", "physical": "reports-prod"},
            {"logical": "raw.data", "physical": "raw-data-2024"},
        ],
    }
    spec.update(changes)
    return spec


def create(kube: ControlPlane, namespace: str, obj: dict[str, Any]) -> Any:
    return kube.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


def refused(kube: ControlPlane, namespace: str, spec: dict[str, Any]) -> str:
    """The API server's refusal of a BucketMapping with ``spec`` (the test fails if created)."""
    result = create(kube, namespace, mapping(spec))
    assert result.returncode != 0, f"accepted: {spec}"
    assert "is invalid" in result.stderr, result.stderr
    return str(result.stderr)


def test_a_valid_mapping_is_accepted_with_its_defaults(crd: ControlPlane, namespace: str) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    stored = crd.kubectl_json("get", "bucketmapping", "buckets", "-n", namespace)
    assert stored["spec"]["enabled"] is True
    assert stored["spec"]["onDelete"] == "Retain"
    assert stored["spec"]["mappings"][1] == {"logical": "raw.data", "physical": "raw-data-2024"}


def test_explicit_values_are_kept(crd: ControlPlane, namespace: str) -> None:
    spec = valid_spec(enabled=False, onDelete="Clear", gatewayRef={"service": "gw", "port": 8000})
    assert create(crd, namespace, mapping(spec)).returncode == 0
    stored = crd.kubectl_json("get", "bm", "buckets", "-n", namespace)["spec"]
    assert (stored["enabled"], stored["onDelete"], stored["gatewayRef"]["port"]) == (
        False,
        "Clear",
        8000,
    )


@pytest.mark.parametrize("port", [1, 65535, "http", "gateway-http"])
def test_gateway_port_is_a_number_or_a_port_name(
    crd: ControlPlane, namespace: str, port: int | str
) -> None:
    spec = valid_spec(gatewayRef={"service": "refstore-gateway", "port": port})
    result = create(crd, namespace, mapping(spec))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "name",
    ["abc", "a" * 63, "my.bucket-1", "0-9", "192.168.5.4x", "256.1.1.1", "x--ol-s3-not-at-end"],
)
def test_bucket_names_within_the_s3_rules_are_accepted(
    crd: ControlPlane, namespace: str, name: str
) -> None:
    spec = valid_spec(mappings=[{"logical": name, "physical": name}])
    result = create(crd, namespace, mapping(spec))
    assert result.returncode == 0, result.stderr


CHARACTERS = (
    "bucket names use only lowercase letters, digits, '.' and '-', and start and end with a "
    "letter or digit"
)
ADJACENT = "bucket names must not contain '..', '.-' or '-.'"
RESERVED = (
    "bucket names must not use a prefix or suffix reserved by S3 (xn--, sthree-, amzn-s3-demo-, "
    "-s3alias, --ol-s3, --x-s3, .mrap)"
)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ab", "bucket names are 3 to 63 characters long"),
        ("Reports", CHARACTERS),
        ("my_bucket", CHARACTERS),
        ("-reports", CHARACTERS),
        ("reports.", CHARACTERS),
        ("my..bucket", ADJACENT),
        ("my.-bucket", ADJACENT),
        ("192.168.5.4", "bucket names must not be formatted as an IP address"),
        ("xn--bucket", RESERVED),
        ("bucket-s3alias", RESERVED),
    ],
)
@pytest.mark.parametrize("field", ["logical", "physical"])
def test_a_bad_bucket_name_is_refused_with_the_rule_it_breaks(
    crd: ControlPlane, namespace: str, field: str, name: str, message: str
) -> None:
    entry = {"logical": "reports", "physical": "reports-prod", field: name}
    stderr = refused(crd, namespace, valid_spec(mappings=[entry]))
    assert f'spec.mappings[0].{field}: Invalid value: "{name}": {message}' in stderr


def test_a_bucket_name_over_63_characters_is_refused(crd: ControlPlane, namespace: str) -> None:
    stderr = refused(
        crd, namespace, valid_spec(mappings=[{"logical": "a" * 64, "physical": "b1c"}])
    )
    assert "spec.mappings[0].logical" in stderr
    assert "may not be more than 63" in stderr


def test_a_logical_name_listed_twice_is_refused(crd: ControlPlane, namespace: str) -> None:
    mappings = [
        {"logical": "reports", "physical": "reports-a"},
        {"logical": "reports", "physical": "reports-b"},
    ]
    stderr = refused(crd, namespace, valid_spec(mappings=mappings))
    assert 'spec.mappings[1]: Duplicate value: {"logical":"reports"}' in stderr


def test_two_logical_names_on_one_physical_bucket_are_refused(
    crd: ControlPlane, namespace: str
) -> None:
    mappings = [
        {"logical": "reports", "physical": "shared"},
        {"logical": "archive", "physical": "other"},
        {"logical": "exports", "physical": "shared"},
    ]
    stderr = refused(crd, namespace, valid_spec(mappings=mappings))
    assert (
        'spec.mappings: Invalid value: physical bucket "shared" is the target of more '
        "than one logical bucket: each logical bucket needs a physical bucket of its own"
    ) in stderr


def test_more_than_256_mappings_are_refused(crd: ControlPlane, namespace: str) -> None:
    mappings = [{"logical": f"logical-{n}", "physical": f"physical-{n}"} for n in range(257)]
    stderr = refused(crd, namespace, valid_spec(mappings=mappings))
    assert "spec.mappings: Too many: 257: must have at most 256 items" in stderr


def test_256_mappings_are_accepted(crd: ControlPlane, namespace: str) -> None:
    mappings = [{"logical": f"logical-{n}", "physical": f"physical-{n}"} for n in range(256)]
    result = create(crd, namespace, mapping(valid_spec(mappings=mappings)))
    assert result.returncode == 0, result.stderr


def test_an_unknown_on_delete_is_refused(crd: ControlPlane, namespace: str) -> None:
    stderr = refused(crd, namespace, valid_spec(onDelete="Delete"))
    assert 'spec.onDelete: Unsupported value: "Delete": supported values: "Retain", "Clear"' in (
        stderr
    )


def test_a_missing_gateway_service_is_refused(crd: ControlPlane, namespace: str) -> None:
    stderr = refused(crd, namespace, valid_spec(gatewayRef={"port": "http"}))
    assert "spec.gatewayRef.service: Required value" in stderr


def test_a_missing_gateway_ref_is_refused(crd: ControlPlane, namespace: str) -> None:
    spec = valid_spec()
    del spec["gatewayRef"]
    stderr = refused(crd, namespace, spec)
    assert "spec.gatewayRef: Required value" in stderr


def test_a_missing_spec_is_refused(crd: ControlPlane, namespace: str) -> None:
    obj = mapping({})
    del obj["spec"]
    result = create(crd, namespace, obj)
    assert result.returncode != 0
    assert "spec: Required value" in result.stderr


def test_a_mapping_without_its_physical_bucket_is_refused(
    crd: ControlPlane, namespace: str
) -> None:
    stderr = refused(crd, namespace, valid_spec(mappings=[{"logical": "reports"}]))
    assert "spec.mappings[0].physical: Required value" in stderr


@pytest.mark.parametrize("service", ["Refstore-Gateway", "1gateway", "gateway.example", "g" * 64])
def test_a_gateway_service_that_is_no_service_name_is_refused(
    crd: ControlPlane, namespace: str, service: str
) -> None:
    stderr = refused(crd, namespace, valid_spec(gatewayRef={"service": service}))
    assert "spec.gatewayRef.service" in stderr
    if len(service) <= 63:
        assert (
            f'spec.gatewayRef.service: Invalid value: "{service}": must be a Service name: at '
            "most 63 lowercase letters, digits and '-', starting with a letter and ending with a "
            "letter or digit"
        ) in stderr
    else:
        assert "may not be more than 63" in stderr


@pytest.mark.parametrize("port", [0, 65536, -1, "HTTP", "-http", "http-", "port_8000"])
def test_a_bad_gateway_port_is_refused(crd: ControlPlane, namespace: str, port: int | str) -> None:
    spec = valid_spec(gatewayRef={"service": "refstore-gateway", "port": port})
    stderr = refused(crd, namespace, spec)
    assert (
        f"spec.gatewayRef.port: Invalid value: {json.dumps(port)}: port must be a number from 1 "
        "to 65535 or a port name (at most 15 lowercase letters, digits and '-')"
    ) in stderr


def test_a_gateway_port_name_over_15_characters_is_refused(
    crd: ControlPlane, namespace: str
) -> None:
    spec = valid_spec(gatewayRef={"service": "refstore-gateway", "port": "a-long-port-name"})
    stderr = refused(crd, namespace, spec)
    assert "spec.gatewayRef.port: Too long: may not be more than 15 bytes" in stderr


def test_an_update_breaking_a_rule_is_refused(crd: ControlPlane, namespace: str) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    patch = {"spec": {"mappings": [{"logical": "reports", "physical": "Not_Valid"}]}}
    result = crd.kubectl(
        "patch", "bm", "buckets", "-n", namespace, "--type=merge", "-p", json.dumps(patch),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "spec.mappings[0].physical" in result.stderr
    stored = crd.kubectl_json("get", "bm", "buckets", "-n", namespace)
    assert stored["spec"]["mappings"][0]["physical"] == "reports-prod"


OPERATOR_STATUS = {
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "EndpointsFailing",
            "message": "1 of 3 endpoints failed: 198.18.3.2:8000 connection refused",
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "observedGeneration": 1,
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "Pushing",
            "message": "",
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "observedGeneration": 1,
        },
        {
            "type": "Conflict",
            "status": "False",
            "reason": "NoConflict",
            "message": "",
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "observedGeneration": 1,
        },
    ],
    "replicas": 3,
    "syncedReplicas": 2,
    "synced": "2/3",
    "lastSyncTime": "2025-01-02T03:04:06Z",
    "endpoints": [
        {"address": "198.18.1.2", "pod": "gw-a", "ready": True, "appliedGeneration": 1},
        {"address": "198.18.2.2", "pod": "gw-b", "ready": True, "appliedGeneration": 1},
        {
            "address": "198.18.3.2",
            "pod": "gw-c",
            "ready": False,
            "appliedGeneration": 0,
            "error": "connection refused",
        },
    ],
}


def _set_status(kube: ControlPlane, namespace: str, status: dict[str, Any]) -> Any:
    return kube.kubectl(
        "patch", "bm", "buckets", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}), check=False,
    )  # fmt: skip


def test_the_status_the_operator_writes_is_kept_as_written(
    crd: ControlPlane, namespace: str
) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    result = _set_status(crd, namespace, OPERATOR_STATUS)
    assert result.returncode == 0, result.stderr
    stored = crd.kubectl_json("get", "bm", "buckets", "-n", namespace)
    assert stored["status"] == OPERATOR_STATUS  # nothing pruned
    assert stored["metadata"]["generation"] == 1  # status is a subresource


def test_status_is_not_written_through_the_main_resource(crd: ControlPlane, namespace: str) -> None:
    obj = mapping(valid_spec())
    obj["status"] = {"synced": "9/9"}
    assert create(crd, namespace, obj).returncode == 0
    stored = crd.kubectl_json("get", "bm", "buckets", "-n", namespace)
    assert "status" not in stored


def test_a_condition_type_outside_the_contract_is_refused(
    crd: ControlPlane, namespace: str
) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    status = {"conditions": [{"type": "Degraded", "status": "True"}]}
    result = _set_status(crd, namespace, status)
    assert result.returncode != 0
    assert 'status.conditions[0].type: Unsupported value: "Degraded"' in result.stderr


def test_kubectl_get_shows_enabled_ready_synced_and_age(crd: ControlPlane, namespace: str) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    before = crd.kubectl("get", "bm", "-n", namespace).stdout.splitlines()
    assert before[0].split() == ["NAME", "ENABLED", "READY", "SYNCED", "AGE"]
    assert before[1].split()[:2] == ["buckets", "true"]
    assert _set_status(crd, namespace, OPERATOR_STATUS).returncode == 0
    after = crd.kubectl("get", "bucketmappings.refstore.io", "-n", namespace).stdout.splitlines()
    name, enabled, ready, synced, age = after[1].split()
    assert (name, enabled, ready, synced) == ("buckets", "true", "False", "2/3")
    assert age.endswith("s")


def test_bucketmappings_are_in_the_refstore_category(crd: ControlPlane, namespace: str) -> None:
    assert create(crd, namespace, mapping(valid_spec())).returncode == 0
    listed = crd.kubectl("get", "refstore", "-n", namespace, "-o", "name").stdout.split()
    assert listed == ["bucketmapping.refstore.io/buckets"]


def test_the_example_bucket_mapping_is_accepted(crd: ControlPlane, namespace: str) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert example["spec"]["gatewayRef"]["service"] == "refstore-gateway"
    result = crd.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE), check=False)
    assert result.returncode == 0, result.stderr
