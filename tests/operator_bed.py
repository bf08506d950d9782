"""What the operator's end-to-end tests and bench/operator.py share: gateways as "pods" in
network namespaces, the EndpointSlices the EndpointSlice controller would write for them
(there is no kubelet), BucketMapping manifests, and ``refstore operator`` as a process."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
from gateway_process import wait_for_http
from kube import ControlPlane
from netns import GatewayPod, PodNetwork
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "deploy" / "helm" / "refstore"
CRD_PATH = CHART / "crds" / "bucketmappings.refstore.io.yaml"
MAPPING_TOKEN = f"operator-{secrets.token_hex(12)}"
GATEWAY_PORT = 8000


def gateway_settings(root: Path) -> dict[str, Any]:
    """A gateway whose mapping comes from the operator, on the local backend."""
    return {
        "local": {"root": str(root)},
        "bucket_mapping_source": "operator",
        "auth": {"mode": "keys", "mapping_tokens": [MAPPING_TOKEN]},
    }


class Fleet:
    """Gateway "pods", each in its own network namespace, named gw-0, gw-1, ..."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pods: list[GatewayPod] = []
        self._networks: list[PodNetwork] = []

    def add(self, count: int = 1) -> list[GatewayPod]:
        new = []
        for _ in range(count):
            network = PodNetwork()
            self._networks.append(network)
            pod = GatewayPod(network, gateway_settings(self.workdir / f"gw-{len(self.pods)}"))
            pod.name = f"gw-{len(self.pods)}"  # type: ignore[attr-defined]
            self.pods.append(pod)
            new.append(pod)
        for pod in new:
            pod.start()
        return new

    def close(self) -> None:
        for pod in self.pods:
            pod.stop()
            shutil.rmtree(pod.config_path.parent, ignore_errors=True)
        for network in reversed(self._networks):
            network.close()


def pod_name(pod: GatewayPod) -> str:
    return str(getattr(pod, "name", pod.address))


def held(pod: GatewayPod, timeout: float = 2.0) -> dict[str, Any]:
    """What a gateway holds (``GET /gateway/bucket-mapping``), plus its ``/ready`` status."""
    headers = {"Authorization": f"Bearer {MAPPING_TOKEN}"}
    with httpx.Client(base_url=pod.url, headers=headers, timeout=timeout, trust_env=False) as c:
        body: dict[str, Any] = c.get("/gateway/bucket-mapping").json()
        body["ready"] = c.get("/ready").status_code
    return body


def serves(pod: GatewayPod, bucket_map: dict[str, str], uid: str | None = None) -> bool:
    """Whether the gateway answers and holds exactly ``bucket_map`` (from object ``uid``)."""
    try:
        state = held(pod, timeout=1.0)
    except httpx.HTTPError:
        return False
    if state["bucket_map"] != bucket_map:
        return False
    return uid is None or (state["version"] or {}).get("uid") == uid


def mapping_requests(pod: GatewayPod) -> dict[str, float]:
    """``PUT /gateway/bucket-mapping`` answers so far, by status."""
    with httpx.Client(base_url=pod.url, timeout=2.0, trust_env=False) as client:
        text = client.get("/metrics").text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "refstore_http_requests_total"
                and labels.get("route") == "/gateway/bucket-mapping"
                and labels.get("method") == "PUT"
            ):
                counts[labels["status"]] = counts.get(labels["status"], 0) + sample.value
    return counts


# -- Kubernetes objects -------------------------------------------------------------------


def apply_crd(kube: ControlPlane) -> None:
    kube.apply(CRD_PATH.read_text())
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/bucketmappings.refstore.io", "--timeout=30s"
    )


def service(name: str) -> dict[str, Any]:
    """A Service without a selector: its EndpointSlices are ours to write."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": GATEWAY_PORT}]},
    }


def endpoint_slice(
    service_name: str,
    slice_name: str,
    pods: Iterable[GatewayPod],
    ready: Callable[[GatewayPod], bool] = lambda _: True,
) -> dict[str, Any]:
    """The EndpointSlice the EndpointSlice controller would write for these pods."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name,
            "labels": {
                "kubernetes.io/service-name": service_name,
                "endpointslice.kubernetes.io/managed-by": "refstore-tests",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": GATEWAY_PORT, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [pod.address],
                "conditions": {"ready": ready(pod), "serving": ready(pod), "terminating": False},
                "targetRef": {"kind": "Pod", "name": pod_name(pod)},
            }
            for pod in pods
        ],
    }


def bucket_mapping(
    name: str,
    service_name: str,
    mappings: dict[str, str],
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "refstore.io/v1alpha1",
        "kind": "BucketMapping",
        "metadata": {"name": name},
        "spec": {
            "gatewayRef": {"service": service_name},
            "mappings": [{"logical": k, "physical": v} for k, v in mappings.items()],
            **spec,
        },
    }


# -- the operator -------------------------------------------------------------------------


class OperatorProcess:
    """``refstore operator`` watching ``namespace``, with the gateways' mapping token."""

    def __init__(
        self,
        kube: ControlPlane,
        namespace: str,
        *,
        resync: float = 2.0,
        kubeconfig: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.resync = resync
        self.kubeconfig = kubeconfig or kube.kubeconfig
        self.liveness_port = free_port()
        self._extra_args = list(extra_args)
        self._dir = Path(tempfile.mkdtemp(prefix="refstore-operator-"))
        self.log_path = self._dir / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        env = {k: v for k, v in self.kube.env_for(self.kubeconfig).items()}
        env = {k: v for k, v in env.items() if not k.startswith("REFSTORE_")}
        env["REFSTORE_OPERATOR_TOKEN"] = MAPPING_TOKEN
        argv = [
            sys.executable,
            "-m",
            "refstore.cli",
            "operator",
            "--namespace",
            self.namespace,
            "--resync",
            str(self.resync),
            "--liveness",
            self.liveness_url,
            *self._extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for_http(self.process, self.liveness_url, timeout, "refstore operator", self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
