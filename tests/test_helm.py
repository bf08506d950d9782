"""The Helm chart deploy/helm/refstore with the pinned helm, against a real API server.

``helm lint``; ``helm template`` of several value sets (defaults; everything on; an existing
MinIO with existing Secrets; no operator) accepted by ``kubectl apply --dry-run=server``; what
the rendered objects promise (hardening, probes, checksums, the settings file the gateway
loads); bad values refused with the schema's message; ``helm install``/``upgrade``/``uninstall``
with generated secrets that survive the upgrade. No pod runs (there is no kubelet).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import ControlPlane

from refstore.web.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy/helm/refstore"
DASHBOARD = CHART / "dashboards/refstore-gateway.json"

# Enough of the Prometheus Operator's ServiceMonitor CRD for the server to check ours.
SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors,
          singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              properties:
                selector: {type: object, x-kubernetes-preserve-unknown-fields: true}
                namespaceSelector:
                  type: object
                  properties:
                    any: {type: boolean}
                    matchNames: {type: array, items: {type: string}}
                endpoints:
                  type: array
                  items:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string, pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
                      scrapeTimeout: {type: string, pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
"""  # noqa: E501

FULL: dict[str, Any] = {
    "commonLabels": {"team": "storage"},
    "image": {"repository": "registry.example.com/refstore", "tag": "0.4.0"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "minio": {"enabled": True, "persistence": {"size": "20Gi", "storageClass": "fast"}},
    "auth": {
        "apiKeys": [
            {
                "key": "analytics-project-key-0123",
                "project": "analytics",
                "buckets": ["reports"],
                "prefix": "team-a",
                "actions": ["read", "list"],
            }
        ]
    },
    "gateway": {
        "replicaCount": 3,
        "config": {"public_url": "https://refstore.example.com", "default_bucket": "files"},
        "extraConfig": {"server": {"storage_threads": 64}},
        "extraEnv": [{"name": "FASTAPI_OTEL_AUTO_CONFIGURE", "value": "false"}],
        "podAnnotations": {"example.com/owner": "storage"},
        "service": {"annotations": {"example.com/lb": "internal"}},
        "pdb": {"minAvailable": 2, "maxUnavailable": None},
        "autoscaling": {
            "enabled": True,
            "minReplicas": 3,
            "maxReplicas": 12,
            "targetMemoryUtilizationPercentage": 80,
        },
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "0"},
            "hosts": [{"host": "refstore.example.com", "paths": [{"path": "/"}]}],
            "tls": [{"hosts": ["refstore.example.com"], "secretName": "refstore-tls"}],
        },
    },
    "operator": {"resync": 15, "logLevel": "debug"},
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "Storage"}},
    },
    "networkPolicy": {
        "enabled": True,
        "allowExternal": False,
        "allowExternalEgress": False,
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    },
}

EXISTING_SECRETS: dict[str, Any] = {
    "minio": {"enabled": False},
    "externalMinio": {
        "endpoint": "minio.storage.svc:443",
        "secure": True,
        "region": "eu-1",
        "existingSecret": "minio-credentials",
        "existingSecretAccessKeyKey": "user",
        "existingSecretSecretKeyKey": "password",
    },
    "auth": {
        "existingSecret": "refstore-tokens",
        "existingSecretAdminTokenKey": "admin",
        "existingSecretOperatorTokenKey": "operator",
        "apiKeysExistingSecret": "refstore-project-keys",
    },
    "operator": {"image": {"repository": "registry.example.com/refstore-operator", "tag": "1"}},
    "networkPolicy": {"enabled": True, "allowExternalEgress": False, "externalMinioPort": 443},
}

NO_OPERATOR: dict[str, Any] = {
    "minio": {"enabled": False},
    "externalMinio": {"endpoint": "minio:9000", "accessKey": "refstore", "secretKey": "s3cr3t-key"},
    "operator": {"enabled": False},
    "gateway": {
        "replicaCount": 1,
        "config": {"enable_bucket_mapping": True, "bucket_map": {"reports": "reports-prod"}},
        "pdb": {"enabled": False},
    },
    "metrics": {"podAnnotations": False},
    "tests": {"enabled": False},
}

VALUE_SETS = {"default": {}, "full": FULL, "existing-secrets": EXISTING_SECRETS}
VALUE_SETS["no-operator"] = NO_OPERATOR


@pytest.fixture(scope="module")
def cluster(kube: ControlPlane) -> ControlPlane:
    """The session control plane with the ServiceMonitor CRD served."""
    kube.apply(SERVICE_MONITOR_CRD)
    kube.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    )
    return kube


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    name = f"helm-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(
    kube: ControlPlane, tmp_path: Path, values: dict[str, Any], namespace: str = "refstore"
) -> list[dict[str, Any]]:
    """``helm template`` (release "refstore") parsed into objects."""
    result = kube.helm(
        "template", "refstore", str(CHART), "--namespace", namespace,
        "-f", values_file(tmp_path, values),
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(owner, pod spec, container) of every workload and hook pod."""
    for doc in docs:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            pod = doc["spec"]
        else:
            continue
        for container in pod["containers"]:
            yield f"{doc['kind']}/{doc['metadata']['name']}", pod, container


# -- lint and render --------------------------------------------------------------------------


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_helm_lint_passes(kube: ControlPlane, tmp_path: Path, values: str) -> None:
    result = kube.helm(
        "lint", "--strict", str(CHART), "-f", values_file(tmp_path, VALUE_SETS[values])
    )
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_rendered_chart_is_accepted_by_the_api_server(
    cluster: ControlPlane, namespace: str, tmp_path: Path, values: str
) -> None:
    rendered = cluster.helm(
        "template", "refstore", str(CHART), "--namespace", namespace, "--include-crds",
        "-f", values_file(tmp_path, VALUE_SETS[values]),
    ).stdout  # fmt: skip
    # The helm test Pod needs the namespace's default ServiceAccount (controller-manager).
    cluster.kubectl(
        "wait", "--for=jsonpath={.metadata.name}=default", "--timeout=60s",
        "serviceaccount/default", "-n", namespace,
    )  # fmt: skip
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    applied = result.stdout.splitlines()
    kinds = {line.split("/")[0] for line in applied}
    assert "deployment.apps" in kinds
    assert all(line.endswith("(server dry run)") for line in applied)


def test_full_values_render_every_optional_object(kube: ControlPlane, tmp_path: Path) -> None:
    docs = render(kube, tmp_path, FULL)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap/refstore-dashboard",
            "ConfigMap/refstore-gateway",
            "Deployment/refstore-gateway",
            "Deployment/refstore-minio",
            "Deployment/refstore-operator",
            "HorizontalPodAutoscaler/refstore-gateway",
            "Ingress/refstore-gateway",
            "NetworkPolicy/refstore-gateway",
            "NetworkPolicy/refstore-minio",
            "NetworkPolicy/refstore-operator",
            "PersistentVolumeClaim/refstore-minio",
            "PodDisruptionBudget/refstore-gateway",
            "Pod/refstore-test-ready",
            "Role/refstore-operator",
            "RoleBinding/refstore-operator",
            "Secret/refstore-api-keys",
            "Secret/refstore-minio",
            "Secret/refstore-tokens",
            "Service/refstore-gateway",
            "Service/refstore-minio",
            "ServiceAccount/refstore-gateway",
            "ServiceAccount/refstore-operator",
            "ServiceMonitor/refstore-gateway",
        ]
    )
    gateway = find(docs, "Deployment", "refstore-gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    assert all(d["metadata"]["labels"]["team"] == "storage" for d in docs)
    assert find(docs, "PodDisruptionBudget", "refstore-gateway")["spec"] == {
        "minAvailable": 2,
        "selector": gateway["spec"]["selector"],
    }
    monitor = find(docs, "ServiceMonitor", "refstore-gateway")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    ingress = find(docs, "Ingress", "refstore-gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "refstore-gateway", "port": {"name": "http"}}}


def test_default_values_make_gateway_operator_and_evaluation_minio(
    kube: ControlPlane, tmp_path: Path
) -> None:
    docs = render(kube, tmp_path, {})
    kinds = {d["kind"] for d in docs}
    assert {
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "ServiceMonitor",
    } & kinds == set()
    assert find(docs, "Deployment", "refstore-gateway")["spec"]["replicas"] == 2
    minio = find(docs, "Deployment", "refstore-minio")
    assert minio["spec"]["strategy"] == {"type": "Recreate"}
    # Abandoned multipart uploads: MinIO's own sweep (it has no lifecycle rule for them).
    [container] = minio["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MINIO_API_STALE_UPLOADS_EXPIRY"] == "24h"
    assert env["MINIO_API_STALE_UPLOADS_CLEANUP_INTERVAL"] == "6h"
    service = find(docs, "Service", "refstore-gateway")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "refstore",
        "app.kubernetes.io/instance": "refstore",
        "app.kubernetes.io/component": "gateway",
    }


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_container_is_hardened(kube: ControlPlane, tmp_path: Path, values: str) -> None:
    docs = render(kube, tmp_path, VALUE_SETS[values])
    seen = set()
    for owner, pod, container in containers(docs):
        seen.add(owner)
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, owner
        assert context["runAsUser"] == 10001, owner
        assert context["readOnlyRootFilesystem"] is True, owner
        assert context["allowPrivilegeEscalation"] is False, owner
        assert context["capabilities"] == {"drop": ["ALL"]}, owner
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        if owner.startswith("Deployment/"):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], owner
            assert container["resources"]["requests"], owner
    assert "Deployment/refstore-gateway" in seen


def test_gateway_probes_and_rolling_checksums(kube: ControlPlane, tmp_path: Path) -> None:
    docs = render(kube, tmp_path, {})
    pod = find(docs, "Deployment", "refstore-gateway")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["refstore"]
    assert container["args"][:3] == ["serve", "--host=0.0.0.0", "--port=8000"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    annotations = pod["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == len(annotations["checksum/secret"]) == 64
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"
    spread = pod["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(
        c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
        for c in spread
    )


def test_a_config_change_changes_only_the_config_checksum(
    kube: ControlPlane, tmp_path: Path
) -> None:
    fixed = {"auth": {"adminToken": "a" * 20, "operatorToken": "o" * 20}}
    fixed["minio"] = {"rootPassword": "p" * 12}

    def annotations(values: dict[str, Any]) -> dict[str, str]:
        docs = render(kube, tmp_path, values)
        pod = find(docs, "Deployment", "refstore-gateway")["spec"]["template"]
        return dict(pod["metadata"]["annotations"])

    first = annotations(fixed)
    assert annotations(fixed) == first  # deterministic
    other_config = annotations(fixed | {"gateway": {"config": {"default_bucket": "files"}}})
    assert other_config["checksum/config"] != first["checksum/config"]
    assert other_config["checksum/secret"] == first["checksum/secret"]
    other_token = annotations(fixed | {"auth": {"adminToken": "b" * 20, "operatorToken": "o" * 20}})
    assert other_token["checksum/secret"] != first["checksum/secret"]
    assert other_token["checksum/config"] == first["checksum/config"]


def test_operator_deployment_runs_one_kopf_operator_for_its_namespace(
    kube: ControlPlane, tmp_path: Path
) -> None:
    docs = render(kube, tmp_path, {}, namespace="storage")
    deployment = find(docs, "Deployment", "refstore-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "refstore-operator"
    (container,) = pod["containers"]
    assert container["command"] == ["refstore"]
    assert container["args"] == [
        "operator",
        "--namespace=storage",
        "--resync=5",
        "--push-timeout=2",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--log-level=info",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    env = {e["name"]: e for e in container["env"]}
    assert env["REFSTORE_OPERATOR_TOKEN_FILE"]["value"] == "/etc/refstore/operator/token"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/refstore/operator")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "refstore-tokens"
    assert volume["secret"]["items"] == [{"key": "operator-token", "path": "token"}]


def _gateway_settings_file(docs: list[dict[str, Any]]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        find(docs, "ConfigMap", "refstore-gateway")["data"]["gateway.yaml"]
    )
    return loaded


def _load_as_the_gateway(
    settings: dict[str, Any], docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: Any
) -> Any:
    """Load the rendered settings with refstore's own loader, the mounted files written under
    tmp_path and the environment of the gateway container."""
    gateway = find(docs, "Deployment", "refstore-gateway")["spec"]["template"]["spec"]
    (container,) = gateway["containers"]
    files = {
        "/etc/refstore/tokens/admin-token": "admin-token-from-secret\n",
        "/etc/refstore/tokens/operator-token": "operator-token-from-secret\n",
        "/etc/refstore/api-keys/api-keys.yaml": "[]\n",
    }
    text = yaml.safe_dump(settings)
    for path, content in files.items():
        local = tmp_path / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
        text = text.replace(path, str(local))
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    for name in ("REFSTORE_MINIO__ACCESS_KEY", "REFSTORE_MINIO__SECRET_KEY"):
        assert any(e["name"] == name and "secretKeyRef" in e["valueFrom"] for e in container["env"])
    monkeypatch.setenv("REFSTORE_MINIO__ACCESS_KEY", "access")
    monkeypatch.setenv("REFSTORE_MINIO__SECRET_KEY", "secret")
    return load_settings(config)


def test_rendered_settings_are_what_the_gateway_loads_with_the_operator(
    kube: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(kube, tmp_path, FULL)
    raw = _gateway_settings_file(docs)
    assert raw["bucket_mapping_source"] == "operator"
    assert "bucket_map" not in raw
    settings = _load_as_the_gateway(raw, docs, tmp_path, monkeypatch)
    assert settings.bucket_mapping_source == "operator"
    assert settings.minio.endpoint == "refstore-minio:9000"
    assert settings.minio.access_key == "access"
    assert settings.auth.all_admin_tokens() == ["admin-token-from-secret"]
    assert settings.auth.all_mapping_tokens() == ["operator-token-from-secret"]
    assert settings.auth.api_keys_file is not None
    assert settings.default_bucket == "files"
    assert settings.public_url == "https://refstore.example.com"
    assert settings.server.storage_threads == 64  # extraConfig
    gateway = find(docs, "Deployment", "refstore-gateway")["spec"]["template"]["spec"]
    tokens = next(v for v in gateway["volumes"] if v["name"] == "tokens")["secret"]
    assert tokens["secretName"] == "refstore-tokens"
    assert tokens["items"] == [
        {"key": "admin-token", "path": "admin-token"},
        {"key": "operator-token", "path": "operator-token"},
    ]


def test_rendered_settings_without_the_operator_carry_the_bucket_map(
    kube: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(kube, tmp_path, NO_OPERATOR)
    raw = _gateway_settings_file(docs)
    assert "mapping_tokens_file" not in raw["auth"]
    settings = _load_as_the_gateway(raw, docs, tmp_path, monkeypatch)
    assert settings.bucket_mapping_source == "config"
    assert settings.enable_bucket_mapping is True
    assert settings.bucket_map == {"reports": "reports-prod"}
    assert settings.minio.endpoint == "minio:9000"
    assert not [d for d in docs if "operator" in d["metadata"]["name"]]
    credentials = find(docs, "Secret", "refstore-minio-credentials")["data"]
    assert base64.b64decode(credentials["secret-key"]).decode() == "s3cr3t-key"


def test_existing_secrets_are_used_and_none_is_made(
    kube: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(kube, tmp_path, EXISTING_SECRETS)
    assert [d for d in docs if d["kind"] == "Secret"] == []
    raw = _gateway_settings_file(docs)
    settings = _load_as_the_gateway(raw, docs, tmp_path, monkeypatch)
    assert (settings.minio.endpoint, settings.minio.secure, settings.minio.region) == (
        "minio.storage.svc:443",
        True,
        "eu-1",
    )
    gateway = find(docs, "Deployment", "refstore-gateway")["spec"]["template"]["spec"]
    (container,) = gateway["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["REFSTORE_MINIO__ACCESS_KEY"] == {"name": "minio-credentials", "key": "user"}
    assert refs["REFSTORE_MINIO__SECRET_KEY"] == {"name": "minio-credentials", "key": "password"}
    volumes = {v["name"]: v.get("secret") for v in gateway["volumes"]}
    assert volumes["tokens"]["secretName"] == "refstore-tokens"
    assert volumes["tokens"]["items"] == [
        {"key": "admin", "path": "admin-token"},
        {"key": "operator", "path": "operator-token"},
    ]
    assert volumes["api-keys"]["secretName"] == "refstore-project-keys"
    operator = find(docs, "Deployment", "refstore-operator")["spec"]["template"]["spec"]
    assert operator["containers"][0]["image"] == "registry.example.com/refstore-operator:1"
    assert operator["volumes"][0]["secret"]["items"] == [{"key": "operator", "path": "token"}]


def test_dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar(
    kube: ControlPlane, tmp_path: Path
) -> None:
    docs = render(kube, tmp_path, FULL)
    configmap = find(docs, "ConfigMap", "refstore-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Storage"}
    assert json.loads(configmap["data"]["refstore-gateway.json"]) == json.loads(
        DASHBOARD.read_text()
    )


def test_network_policies_let_only_the_operator_and_clients_reach_the_gateway(
    kube: ControlPlane, tmp_path: Path
) -> None:
    docs = render(kube, tmp_path, FULL)
    gateway = find(docs, "NetworkPolicy", "refstore-gateway")["spec"]
    (rule,) = gateway["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    peers = [p.get("podSelector", p.get("namespaceSelector"))["matchLabels"] for p in rule["from"]]
    assert peers[0]["app.kubernetes.io/component"] == "operator"
    assert peers[1] == {"refstore-client": "true"}
    assert peers[2] == {"kubernetes.io/metadata.name": "monitoring"}
    assert gateway["policyTypes"] == ["Ingress", "Egress"]
    minio = find(docs, "NetworkPolicy", "refstore-minio")["spec"]
    assert minio["ingress"][0]["from"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"
    ] == ("gateway")
    test_pod = find(docs, "Pod", "refstore-test-ready")
    assert test_pod["metadata"]["labels"]["refstore-client"] == "true"


def test_helm_test_hook_asks_the_gateway_service_for_ready(
    kube: ControlPlane, tmp_path: Path
) -> None:
    docs = render(kube, tmp_path, {}, namespace="storage")
    pod = find(docs, "Pod", "refstore-test-ready")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["READY_URL"] == "http://refstore-gateway.storage.svc:8000/ready"


# -- values the chart refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "messages"),
    [
        ({"gateway": {"replicaCount": "two"}}, ["at '/gateway/replicaCount'", "want integer"]),
        ({"gateway": {"replicas": 2}}, ["at '/gateway'", "additional properties 'replicas'"]),
        ({"auth": {"mode": "open"}}, ["at '/auth/mode'", "value must be one of 'keys', 'none'"]),
        (
            {"operator": {"logLevel": "verbose"}},
            ["at '/operator/logLevel'", "'debug', 'info', 'warning', 'error'"],
        ),
        (
            {"gateway": {"service": {"type": "Headless"}}},
            ["at '/gateway/service/type'", "'ClusterIP', 'NodePort', 'LoadBalancer'"],
        ),
        ({"gateway": {"port": 70000}}, ["at '/gateway/port'", "maximum"]),
        ({"gateway": {"pdb": {"maxUnavailable": "half"}}}, ["at '/gateway/pdb/maxUnavailable'"]),
        ({"image": {"digest": "latest"}}, ["at '/image/digest'", "does not match pattern"]),
        ({"auth": {"adminToken": "short"}}, ["at '/auth/adminToken'", "minLength"]),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, ["at '/metrics/serviceMonitor"]),
        (
            {"gateway": {"config": {"default_bucket": 7}}},
            ["at '/gateway/config/default_bucket'", "want string"],
        ),
        (
            {"minio": {"enabled": False}},
            ["no storage backend: set externalMinio.endpoint to the host:port of your MinIO"],
        ),
        (
            {"minio": {"enabled": False}, "externalMinio": {"endpoint": "minio:9000"}},
            ["the MinIO credentials are missing: set externalMinio.existingSecret"],
        ),
        (
            {"externalMinio": {"endpoint": "minio:9000", "existingSecret": "creds"}},
            ["externalMinio.endpoint is set and so is minio.enabled", "set minio.enabled=false"],
        ),
        (
            {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
            ["gateway.autoscaling.minReplicas (5) is above maxReplicas (2)"],
        ),
        (
            {"gateway": {"pdb": {"minAvailable": 1}}},
            ["set gateway.pdb.minAvailable or gateway.pdb.maxUnavailable, not both"],
        ),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_bad_values_fail_helm_template_with_a_clear_message(
    kube: ControlPlane, tmp_path: Path, values: dict[str, Any], messages: list[str]
) -> None:
    result = kube.helm(
        "template", "refstore", str(CHART), "-f", values_file(tmp_path, values), check=False
    )
    assert result.returncode != 0
    for message in messages:
        assert message in result.stderr


def test_bad_values_fail_helm_install_and_nothing_is_installed(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    result = cluster.helm(
        "install", "refstore", str(CHART), "-n", namespace,
        "--set", "gateway.replicaCount=two", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "at '/gateway/replicaCount': got string, want integer" in result.stderr
    listed = cluster.helm("list", "-n", namespace, "-a", "-q").stdout.split()
    assert listed == []
    assert cluster.kubectl_json("get", "deployments", "-n", namespace)["items"] == []


# -- install, upgrade, uninstall ---------------------------------------------------------------


def _secret(kube: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    data = kube.kubectl_json("get", "secret", name, "-n", namespace)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _pod_annotations(kube: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    deployment = kube.kubectl_json("get", "deployment", name, "-n", namespace)
    return dict(deployment["spec"]["template"]["metadata"]["annotations"])


def test_install_upgrade_uninstall_keep_generated_secrets(
    cluster: ControlPlane, namespace: str
) -> None:
    installed = cluster.helm("install", "rel", str(CHART), "-n", namespace)
    # NOTES name the Service a BucketMapping must point at.
    assert "service: rel-refstore-gateway" in installed.stdout
    assert "kubectl -n " + namespace + " get secret rel-refstore-tokens" in installed.stdout
    tokens = _secret(cluster, namespace, "rel-refstore-tokens")
    assert set(tokens) == {"admin-token", "operator-token"}
    assert len(tokens["admin-token"]) == len(tokens["operator-token"]) == 40
    assert tokens["admin-token"] != tokens["operator-token"]
    minio = _secret(cluster, namespace, "rel-refstore-minio")
    before = _pod_annotations(cluster, namespace, "rel-refstore-gateway")
    assert (
        _pod_annotations(cluster, namespace, "rel-refstore-operator")["checksum/secret"]
        == (before["checksum/secret"])
    )

    cluster.helm(
        "upgrade", "rel", str(CHART), "-n", namespace,
        "--set", "gateway.config.default_bucket=files", "--set", "gateway.replicaCount=3",
    )  # fmt: skip
    assert _secret(cluster, namespace, "rel-refstore-tokens") == tokens
    assert _secret(cluster, namespace, "rel-refstore-minio") == minio
    after = _pod_annotations(cluster, namespace, "rel-refstore-gateway")
    assert after["checksum/secret"] == before["checksum/secret"]  # no roll for the secrets
    assert after["checksum/config"] != before["checksum/config"]  # a roll for the config
    deployment = cluster.kubectl_json("get", "deployment", "rel-refstore-gateway", "-n", namespace)
    assert deployment["spec"]["replicas"] == 3
    configmap = cluster.kubectl_json("get", "configmap", "rel-refstore-gateway", "-n", namespace)
    assert yaml.safe_load(configmap["data"]["gateway.yaml"])["default_bucket"] == "files"

    given = "a-token-chosen-by-the-operator-of-the-cluster"
    cluster.helm("upgrade", "rel", str(CHART), "-n", namespace, "--set", f"auth.adminToken={given}")
    rotated = _secret(cluster, namespace, "rel-refstore-tokens")
    assert rotated == {"admin-token": given, "operator-token": tokens["operator-token"]}
    assert (
        _pod_annotations(cluster, namespace, "rel-refstore-gateway")["checksum/secret"]
        != (before["checksum/secret"])
    )

    history = cluster.helm("history", "rel", "-n", namespace, "-o", "json").stdout
    assert [r["status"] for r in json.loads(history)] == ["superseded", "superseded", "deployed"]
    cluster.helm("uninstall", "rel", "-n", namespace, "--wait", "--timeout=60s")
    assert cluster.helm("list", "-n", namespace, "-a", "-q").stdout.split() == []
    for kind in ("deployments", "secrets", "configmaps", "services", "roles", "serviceaccounts"):
        left = cluster.kubectl_json(
            "get", kind, "-n", namespace, "-l", "app.kubernetes.io/instance=rel"
        )
        assert left["items"] == [], kind
    # CRDs from crds/ stay (Helm never deletes them, so BucketMappings are not lost).
    cluster.kubectl("get", "crd", "bucketmappings.refstore.io")


def test_install_with_existing_secrets(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    for name, data in {
        "minio-credentials": {"user": "refstore", "password": "minio-secret"},
        "refstore-tokens": {"admin": "admin-token-0123456789", "operator": "operator-token-01234"},
        "refstore-project-keys": {"api-keys.yaml": "[]"},
    }.items():
        literals = [f"--from-literal={k}={v}" for k, v in data.items()]
        cluster.kubectl("create", "secret", "generic", name, "-n", namespace, *literals)
    cluster.helm(
        "install", "ext", str(CHART), "-n", namespace, "-f", values_file(tmp_path, EXISTING_SECRETS)
    )
    secrets = cluster.kubectl_json(
        "get", "secrets", "-n", namespace, "-l", "app.kubernetes.io/instance=ext"
    )
    assert secrets["items"] == []  # the chart made none of its own
    assert _secret(cluster, namespace, "refstore-tokens")["admin"] == "admin-token-0123456789"
    cluster.helm("uninstall", "ext", "-n", namespace)
    assert _secret(cluster, namespace, "refstore-tokens")["admin"] == "admin-token-0123456789"


def test_the_chart_deploys_the_version_of_the_package() -> None:
    import refstore

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == refstore.__version__


def test_the_chart_schema_takes_every_server_setting_of_the_gateway():
    """gateway.config.server is checked by values.schema.json: a setting the gateway has
    and the schema lacks could not be set through the chart."""
    import json

    from refstore.web.settings import ServerSection

    schema = json.loads((CHART / "values.schema.json").read_text())
    server = schema["properties"]["gateway"]["properties"]["config"]["properties"]["server"]
    assert set(server["properties"]) == set(ServerSection.model_fields)
