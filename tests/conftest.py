"""Session fixtures backed by a real MinIO server."""

from __future__ import annotations

import copy
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from httpsource import HttpSource  # noqa: E402
from servers import MinioServer  # noqa: E402

from refstore import RefStore  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (still part of the default run)")


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO server for the whole session; failing to start is an error, never a skip."""
    server = MinioServer(tmp_path_factory.mktemp("minio-data"))
    try:
        server.start()
    except RuntimeError as err:
        server.close()
        pytest.fail(f"could not start MinIO: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def minio_config(minio_server: MinioServer) -> dict[str, Any]:
    """A fresh copy of the library config for the session MinIO server."""
    return copy.deepcopy(minio_server.config())


_bucket_counter = iter(range(1_000_000))


@pytest.fixture
def bucket_name() -> str:
    """A bucket name no other test uses."""
    return f"test-{next(_bucket_counter)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["minio", "local"])
def backend_config(
    request: pytest.FixtureRequest, tmp_path: Path, bucket_name: str
) -> dict[str, Any]:
    """A library config for each backend, with a fresh default bucket."""
    if request.param == "minio":
        server: MinioServer = request.getfixturevalue("minio_server")
        config = copy.deepcopy(server.config())
    else:
        config = {"local": {"root": str(tmp_path / "store")}}
    config["default_bucket"] = bucket_name
    config["part_size"] = 5 * 1024 * 1024
    return config


@pytest.fixture
def store(backend_config: dict[str, Any]) -> Iterator[RefStore]:
    """A RefStore on each backend (contract tests run once per backend)."""
    with RefStore(backend_config) as refstore:
        refstore.init_buckets()
        yield refstore


@pytest.fixture
def http_source() -> Iterator[HttpSource]:
    """A real HTTP server on 127.0.0.1 serving in-memory files."""
    with HttpSource() as source:
        yield source


# --- Kubernetes test bed: a real control plane and pod-like network namespaces ---

from collections.abc import Callable  # noqa: E402

from kube import ControlPlane, ensure_kube_tools  # noqa: E402
from netns import PodNetwork  # noqa: E402


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the session (no scheduler/kubelet)."""
    try:
        tools = ensure_kube_tools()
    except RuntimeError as err:
        pytest.fail(f"Kubernetes binaries unavailable: {err}", pytrace=False)
    plane = ControlPlane(tmp_path_factory.mktemp("kube"), tools)
    try:
        plane.start()
    except RuntimeError as err:
        pytest.fail(f"could not start the Kubernetes control plane: {err}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def pod_network() -> Iterator[Callable[[], PodNetwork]]:
    """Makes PodNetworks (a namespace with address 198.18.N.2 each); all closed after the test."""
    made: list[PodNetwork] = []

    def make() -> PodNetwork:
        try:
            network = PodNetwork()
        except RuntimeError as err:
            pytest.fail(f"could not make a pod network: {err}", pytrace=False)
        made.append(network)
        return network

    try:
        yield make
    finally:
        for network in reversed(made):
            network.close()
