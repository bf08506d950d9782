"""The Kubernetes test bed itself: a real control plane, helm, and gateways in pod networks."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from kube import HELM_VERSION, K8S_VERSION, ControlPlane, KubectlError, endpoint_slice
from netns import GatewayPod, PodNetwork

PodNetworkFactory = Callable[[], PodNetwork]

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.2)


def get_json(url: str) -> Any:
    with _direct.open(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture
def namespace(kube: ControlPlane) -> Iterator[str]:
    name = unique("testbed")
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_api_server_and_kubectl_report_the_pinned_version(kube: ControlPlane) -> None:
    versions = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == K8S_VERSION
    assert versions["clientVersion"]["gitVersion"] == K8S_VERSION
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    assert (versions["serverVersion"]["major"], versions["serverVersion"]["minor"]) == (
        major,
        minor,
    )


def test_namespace_deletion_is_finalized(kube: ControlPlane) -> None:
    name = unique("doomed")
    kube.kubectl("create", "namespace", name)
    kube.kubectl("create", "configmap", "inside", "-n", name, "--from-literal=a=b")
    kube.kubectl("delete", "namespace", name, "--timeout=60s")
    result = kube.kubectl("get", "namespace", name, check=False)
    assert result.returncode != 0
    assert "NotFound" in result.stderr


def test_deployment_gets_a_replica_set_and_pending_pods(kube: ControlPlane, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        }
    )

    def replica_sets() -> list[Any]:
        items: list[Any] = kube.kubectl_json("get", "replicasets", "-n", namespace)["items"]
        return items

    (replica_set,) = wait_for(replica_sets, what="a ReplicaSet")
    assert replica_set["metadata"]["ownerReferences"][0]["name"] == "web"

    def pods() -> list[Any]:
        items: list[Any] = kube.kubectl_json("get", "pods", "-n", namespace)["items"]
        return items if len(items) == 2 else []

    for pod in wait_for(pods, what="two pods"):
        assert pod["status"]["phase"] == "Pending"  # no scheduler, no kubelet


def test_helm_reports_its_version_and_installs_a_chart(
    kube: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    assert kube.helm("version", "--template", "{{.Version}}").stdout.strip() == HELM_VERSION

    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    rendered = kube.helm("template", "probe", str(chart)).stdout
    assert f'kube: "v{major}.{minor}.0"' in rendered  # not helm's built-in v1.20.0

    kube.helm("install", "probe", str(chart), "-n", namespace, "--wait", "--timeout=60s")
    data = kube.kubectl_json("get", "configmap", "probe", "-n", namespace)["data"]
    assert data["kube"] == K8S_VERSION  # from the API server at install time
    kube.helm("uninstall", "probe", "-n", namespace)
    assert kube.kubectl("get", "configmap", "probe", "-n", namespace, check=False).returncode


def test_service_account_identity_and_impersonation(
    kube: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kube.kubectl("create", "serviceaccount", "probe", "-n", namespace)
    subject = f"system:serviceaccount:{namespace}:probe"

    def can_i(*args: str) -> str:
        return kube.kubectl("auth", "can-i", *args, f"--as={subject}", check=False).stdout.strip()

    assert can_i("list", "configmaps", "-n", namespace) == "no"

    config = kube.service_account_kubeconfig(namespace, "probe", tmp_path / "probe.kubeconfig")
    with pytest.raises(KubectlError, match="Forbidden"):
        kube.kubectl("get", "configmaps", "-n", namespace, kubeconfig=config)

    kube.kubectl(
        "create", "role", "read-cm", "-n", namespace, "--verb=get,list", "--resource=configmaps"
    )
    kube.kubectl(
        "create", "rolebinding", "read-cm", "-n", namespace, "--role=read-cm",
        f"--serviceaccount={namespace}:probe",
    )  # fmt: skip
    assert can_i("list", "configmaps", "-n", namespace) == "yes"
    assert can_i("list", "secrets", "-n", namespace) == "no"
    wait_for(
        lambda: (
            kube.kubectl(
                "get", "configmaps", "-n", namespace, kubeconfig=config, check=False
            ).returncode
            == 0
        ),
        what="the RoleBinding to take effect",
    )


def test_endpoint_slice_points_at_a_gateway_in_a_pod_network(
    kube: ControlPlane, namespace: str, pod_network: PodNetworkFactory, tmp_path: Path
) -> None:
    network = pod_network()
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "gateway", "namespace": namespace},
                "spec": {"ports": [{"name": "http", "port": 8000}]},
            },
            endpoint_slice(
                "gateway-1",
                "gateway",
                [{"address": network.address, "pod": "gateway-0"}],
                namespace=namespace,
            ),
        ]
    )
    stored = kube.kubectl_json("get", "endpointslice", "gateway-1", "-n", namespace)
    assert stored["endpoints"][0]["addresses"] == [network.address]

    with GatewayPod(network, {"local": {"root": str(tmp_path / "data")}}) as gateway:
        assert gateway.url == f"http://{network.address}:8000"
        assert get_json(f"{gateway.url}/health")["status"] == "ok"  # from the root namespace


def test_loopback_addresses_are_refused_in_endpoint_slices(
    kube: ControlPlane, namespace: str
) -> None:
    slice_ = endpoint_slice("loopback", "none", [{"address": "127.0.0.2"}], namespace=namespace)
    with pytest.raises(KubectlError, match="loopback"):
        kube.apply(slice_)


def test_two_pod_networks_have_distinct_reachable_addresses(
    pod_network: PodNetworkFactory, tmp_path: Path
) -> None:
    networks = [pod_network(), pod_network()]
    assert len({n.address for n in networks}) == 2
    assert len({n.namespace for n in networks}) == 2
    assert len({n.veth for n in networks}) == 2
    with contextlib.ExitStack() as stack:
        gateways = [
            stack.enter_context(GatewayPod(n, {"local": {"root": str(tmp_path / f"data-{i}")}}))
            for i, n in enumerate(networks)
        ]
        for gateway in gateways:
            assert get_json(f"{gateway.url}/health")["status"] == "ok"
        gateways[0].kill()
        with pytest.raises(OSError):
            _direct.open(f"{gateways[0].url}/health", timeout=2)
        assert get_json(f"{gateways[1].url}/health")["status"] == "ok"
        gateways[0].restart()
        assert get_json(f"{gateways[0].url}/health")["status"] == "ok"


def test_pod_network_reaches_the_root_namespace_at_its_host_address(
    pod_network: PodNetworkFactory,
) -> None:
    network = pod_network()
    with socket.create_server((network.host_address, 0)) as server:
        port = server.getsockname()[1]
        client = network.popen(
            [
                sys.executable,
                "-c",
                "import socket, sys; address = (sys.argv[1], int(sys.argv[2])); "
                "socket.create_connection(address, timeout=5).sendall(b'hi')",
                network.host_address,
                str(port),
            ]
        )
        server.settimeout(10)
        conn, (peer, _port) = server.accept()
        with conn:
            assert conn.recv(2) == b"hi"
        assert peer == network.address
        assert client.wait(timeout=10) == 0


def test_closing_removes_the_namespace_and_what_runs_in_it(
    pod_network: PodNetworkFactory,
) -> None:
    network = pod_network()
    sleeper = network.popen(["sleep", "600"])
    assert sleeper.pid in network.pids()
    network.close()
    assert sleeper.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert network.namespace not in listed.split()
    link = subprocess.run(["ip", "link", "show", "dev", network.veth], capture_output=True)
    assert link.returncode != 0


def test_a_slot_left_by_a_dead_run_is_cleaned_up(pod_network: PodNetworkFactory) -> None:
    stale = pod_network()
    sleeper = subprocess.Popen([*stale.exec_prefix, "sleep", "600"])
    finished = subprocess.Popen(["true"])
    finished.wait()
    # As if the test run that made it had been killed: a dead owner, nobody to close it.
    stale._closed = True
    netns._live.discard(stale)
    stale._owner_file.write_text(f"{finished.pid} 0\n")

    pod_network()  # allocating cleans up slots whose owner is gone
    assert sleeper.wait(timeout=15) == -signal.SIGKILL
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    reused = netns._owner_alive(stale._owner_file)
    assert stale.namespace not in listed.split() or reused
