"""The operator's RBAC from the Helm chart, on a real API server: its ServiceAccount may do
exactly what the operator needs in its own namespace (BucketMappings, their status and
finalizers, EndpointSlices read, Events written) and nothing else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import ControlPlane

CHART = Path(__file__).resolve().parent.parent / "deploy/helm/refstore"
CRD = CHART / "crds/bucketmappings.refstore.io.yaml"
RELEASE = "rbac"
SERVICE_ACCOUNT = "rbac-refstore-operator"

# What the operator needs (the contract), as `kubectl auth can-i` arguments.
ALLOWED = [
    ("get", "bucketmappings.refstore.io"),
    ("list", "bucketmappings.refstore.io"),
    ("watch", "bucketmappings.refstore.io"),
    ("patch", "bucketmappings.refstore.io"),
    ("update", "bucketmappings.refstore.io"),
    ("get", "bucketmappings.refstore.io", "--subresource=status"),
    ("patch", "bucketmappings.refstore.io", "--subresource=status"),
    ("update", "bucketmappings.refstore.io", "--subresource=status"),
    ("update", "bucketmappings.refstore.io", "--subresource=finalizers"),
    ("get", "endpointslices.discovery.k8s.io"),
    ("list", "endpointslices.discovery.k8s.io"),
    ("watch", "endpointslices.discovery.k8s.io"),
    ("create", "events"),
    ("patch", "events"),
    ("create", "events.events.k8s.io"),
    ("patch", "events.events.k8s.io"),
]

# A sample of what it must not do in its own namespace.
DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("get", "secrets/rbac-refstore-tokens"),
    ("get", "configmaps"),
    ("list", "pods"),
    ("delete", "pods"),
    ("create", "pods"),
    ("create", "pods", "--subresource=exec"),
    ("get", "services"),
    ("create", "bucketmappings.refstore.io"),
    ("delete", "bucketmappings.refstore.io"),
    ("deletecollection", "bucketmappings.refstore.io"),
    ("patch", "bucketmappings.refstore.io", "--subresource=finalizers"),
    ("create", "endpointslices.discovery.k8s.io"),
    ("update", "endpointslices.discovery.k8s.io"),
    ("delete", "endpointslices.discovery.k8s.io"),
    ("list", "endpoints"),
    ("delete", "events"),
    ("list", "events"),
    ("update", "deployments.apps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts", "--subresource=token"),
    ("impersonate", "serviceaccounts"),
    ("create", "leases.coordination.k8s.io"),
    ("create", "kopfpeerings.kopf.dev"),
]

# Cluster-scoped things and other namespaces (checked without -n / with another namespace).
DENIED_CLUSTER_WIDE = [
    ("list", "bucketmappings.refstore.io", "--all-namespaces"),
    ("watch", "endpointslices.discovery.k8s.io", "--all-namespaces"),
    ("list", "namespaces"),
    ("get", "nodes"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("list", "persistentvolumes"),
]


@pytest.fixture(scope="module")
def namespace(kube: ControlPlane) -> Iterator[str]:
    """A namespace with the chart's operator ServiceAccount, Role and RoleBinding in it (and
    the CRD served, so that kubectl knows the resource it is asked about)."""
    kube.kubectl("apply", "-f", str(CRD))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/bucketmappings.refstore.io"
    )
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    rendered = kube.helm("template", RELEASE, str(CHART), "--namespace", name).stdout
    rbac = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
        and doc["metadata"]["name"] == SERVICE_ACCOUNT
    ]  # fmt: skip
    assert sorted(doc["kind"] for doc in rbac) == ["Role", "RoleBinding", "ServiceAccount"]
    kube.apply(rbac)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def other_namespace(kube: ControlPlane) -> Iterator[str]:
    name = f"rbac-other-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def _as_operator(namespace: str) -> str:
    return f"--as=system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


@pytest.mark.parametrize("request_", ALLOWED, ids=" ".join)
def test_the_operator_may_do_what_it_needs(
    kube: ControlPlane, namespace: str, request_: tuple[str, ...]
) -> None:
    result = kube.kubectl(
        "auth", "can-i", *request_, "-n", namespace, _as_operator(namespace), check=False
    )
    assert result.stdout.strip() == "yes", result.stderr


@pytest.mark.parametrize("request_", DENIED, ids=" ".join)
def test_the_operator_may_not_do_more_in_its_namespace(
    kube: ControlPlane, namespace: str, request_: tuple[str, ...]
) -> None:
    result = kube.kubectl(
        "auth", "can-i", *request_, "-n", namespace, _as_operator(namespace), check=False
    )
    assert result.stdout.strip() == "no", result.stderr


@pytest.mark.parametrize("request_", DENIED_CLUSTER_WIDE, ids=" ".join)
def test_the_operator_has_nothing_cluster_wide(
    kube: ControlPlane, namespace: str, request_: tuple[str, ...]
) -> None:
    result = kube.kubectl("auth", "can-i", *request_, _as_operator(namespace), check=False)
    assert result.stdout.strip() == "no", result.stderr


@pytest.mark.parametrize(
    "request_",
    [("list", "bucketmappings.refstore.io"), ("watch", "endpointslices.discovery.k8s.io"),
     ("create", "events"), ("patch", "bucketmappings.refstore.io", "--subresource=status")],
    ids=" ".join,
)  # fmt: skip
def test_the_operator_may_do_nothing_in_another_namespace(
    kube: ControlPlane, namespace: str, other_namespace: str, request_: tuple[str, ...]
) -> None:
    result = kube.kubectl(
        "auth", "can-i", *request_, "-n", other_namespace, _as_operator(namespace), check=False
    )
    assert result.stdout.strip() == "no", result.stderr


def test_the_role_grants_exactly_the_contract(kube: ControlPlane, namespace: str) -> None:
    role = kube.kubectl_json("get", "role", SERVICE_ACCOUNT, "-n", namespace)
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {
        *(
            ("refstore.io", "bucketmappings", v)
            for v in ("get", "list", "watch", "patch", "update")
        ),
        *(("refstore.io", "bucketmappings/status", v) for v in ("get", "patch", "update")),
        ("refstore.io", "bucketmappings/finalizers", "update"),
        *(("discovery.k8s.io", "endpointslices", v) for v in ("get", "list", "watch")),
        *((g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")),
    }
    assert granted == needed
    assert not any(rule.get("resourceNames") for rule in role["rules"])


def test_the_service_account_token_reads_mappings_but_not_secrets(
    kube: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """With its own bound token (no impersonation), as the operator pod would run."""
    config = kube.service_account_kubeconfig(namespace, SERVICE_ACCOUNT, tmp_path / "sa.conf")
    listed = kube.kubectl("get", "endpointslices", "-n", namespace, "-o", "json", kubeconfig=config)
    assert json.loads(listed.stdout)["items"] == []
    secrets = kube.kubectl("get", "secrets", "-n", namespace, kubeconfig=config, check=False)
    assert secrets.returncode != 0
    assert "Forbidden" in secrets.stderr
    event: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": "bm-", "namespace": namespace},
        "eventTime": "2025-01-02T03:04:05.000000Z",
        "reportingController": "refstore.io/operator",
        "reportingInstance": "refstore-operator",
        "action": "Push",
        "reason": "Synced",
        "type": "Normal",
        "note": "pushed",
        "regarding": {"kind": "BucketMapping", "namespace": namespace, "name": "buckets"},
    }
    created = kube.kubectl("create", "-f", "-", input=json.dumps(event), kubeconfig=config)
    assert created.returncode == 0
