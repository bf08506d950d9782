"""Session fixtures backed by real servers (MinIO, a Kubernetes control plane, pod networks),
and the fast tier: ``pytest --fast`` runs only the tests that need none of them."""

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


def _started_minio(data_dir: Path) -> Iterator[MinioServer]:
    server = MinioServer(data_dir)
    try:
        server.start()
    except RuntimeError as err:
        server.close()
        pytest.fail(f"could not start MinIO: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO server for the whole session; failing to start is an error, never a skip."""
    yield from _started_minio(tmp_path_factory.mktemp("minio-data"))


@pytest.fixture(scope="module")
def private_minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A MinIO server of the module's own, for tests that pause or kill it, or that check
    (and repair) everything on it: the session server holds other modules' buckets."""
    yield from _started_minio(tmp_path_factory.mktemp("private-minio-data"))


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

import kube as kube_bed  # noqa: E402
from kube import ControlPlane  # noqa: E402
from netns import PodNetwork  # noqa: E402


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the session (no scheduler/kubelet)."""
    try:
        tools = kube_bed.ensure_kube_tools()
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


# --- A distributed MinIO: four nodes in network namespaces behind nginx ---------------------

from minio_cluster import MinioCluster  # noqa: E402


@pytest.fixture(scope="session")
def minio_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioCluster]:
    """A 4-node erasure-coded MinIO for the session, reached through nginx; failing to start
    is an error saying what is missing, never a skip. Tests that kill nodes restart them."""
    cluster = MinioCluster(tmp_path_factory.mktemp("minio-cluster"))
    try:
        cluster.start()
    except RuntimeError as err:
        pytest.fail(f"could not start the MinIO cluster: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


# --- The fast tier: `pytest --fast` (scripts/test --fast) ------------------------------------
#
# A test needs a server when its fixtures, its own code or the helpers under tests/ that it
# calls refer to one of SERVER_ENTRY_POINTS (found by reading their code objects, so a new test
# is sorted without being marked). Such tests get the `server` marker; --fast deselects them,
# and in --fast runs the entry points refuse to start anything, so a test sorted wrongly fails
# instead of starting a server. The full run runs every test, marked or not.

import builtins  # noqa: E402
import inspect  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import types  # noqa: E402

import podman  # noqa: E402
import servers  # noqa: E402
from gateway_process import GatewayProcess  # noqa: E402
from operator_bed import OperatorProcess  # noqa: E402

# The test bed's ways to start a server, or to build or install one: (class or module, the
# attribute a --fast run makes raise, what it starts). Using the class (or a subclass) or the
# function marks a test; so does subprocess.Popen, through which anything long-running starts.
SERVER_STARTS: tuple[tuple[object, str, str], ...] = (
    (servers.MinioServer, "start", "MinIO"),
    (MinioCluster, "start", "a MinIO cluster"),
    (servers.NginxServer, "start", "nginx"),
    (servers, "ensure_minio", "a MinIO build"),
    (GatewayProcess, "start", "a gateway process"),
    (kube_bed.ControlPlane, "start", "a Kubernetes control plane"),
    (kube_bed, "ensure_kube_tools", "a Kubernetes build"),
    (PodNetwork, "__init__", "a pod network"),
    (OperatorProcess, "start", "an operator process"),
    (podman, "require_podman", "podman"),
    (podman, "require_build", "an image build"),
    (podman, "require_image", "an image build"),
    (podman.Container, "start", "a container"),
)
SERVER_ENTRY_POINTS: tuple[object, ...] = (
    subprocess.Popen,
    *(
        owner if isinstance(owner, type) else getattr(owner, name)
        for owner, name, _ in SERVER_STARTS
    ),
)
# Parametrised fixtures that ask for a server (request.getfixturevalue) for some params only.
SERVER_PARAMS = {"backend_config": "minio"}
# Commands that are servers when started with Popen (commands run to completion are fine).
SERVER_COMMANDS = frozenset(
    {
        "minio",
        "nginx",
        "chromium",
        "chromium-browser",
        "podman",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "uvicorn",
    }
)
_TESTS_PREFIX = _TESTS_DIR + os.sep
_GUARD_FIXTURE = "_fast_tier_starts_no_server"  # below; every test uses it


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="run only the tests that need no external server (no MinIO, Kubernetes, podman, "
        "Chromium, nginx or gateway process); in such a run, starting one is an error",
    )


def _in_tests(obj: object) -> bool:
    """Whether ``obj`` (a module, function or class) is defined under tests/."""
    if isinstance(obj, types.ModuleType):
        path = getattr(obj, "__file__", None)
    elif hasattr(obj, "__code__"):
        path = obj.__code__.co_filename
    else:
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        path = getattr(module, "__file__", None)
    return str(path or "").startswith(_TESTS_PREFIX)


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a code object and the ones nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


_ENTRY_IDS = frozenset(id(entry) for entry in SERVER_ENTRY_POINTS)
_SERVER_CLASSES = tuple(entry for entry in SERVER_ENTRY_POINTS if isinstance(entry, type))
# Modules whose attributes (module.name in code) may be entry points or test helpers.
_SCANNED_MODULES = frozenset({"subprocess"})


def _is_entry_point(obj: object) -> bool:
    if id(obj) in _ENTRY_IDS:
        return True
    return isinstance(obj, type) and issubclass(obj, _SERVER_CLASSES)


def _refers_to_a_server(obj: object, seen: set[int]) -> bool:
    """Whether ``obj`` (a function or class) uses a server entry point, directly or through
    functions and classes defined under tests/."""
    if _is_entry_point(obj):
        return True
    if callable(obj) and not isinstance(obj, type):
        obj = inspect.unwrap(obj)  # decorated helpers, e.g. @contextmanager
    if id(obj) in seen or not _in_tests(obj):
        return False
    seen.add(id(obj))
    if isinstance(obj, type):
        members = [inspect.getattr_static(obj, name) for name in vars(obj)]
        functions = [getattr(m, "__func__", getattr(m, "fget", m)) for m in members]
        return any(_refers_to_a_server(f, seen) for f in functions if callable(f))
    code = getattr(obj, "__code__", None)
    if code is None:
        return False
    names = _names(code)
    namespace = getattr(obj, "__globals__", {})
    for name in names:
        target = namespace.get(name, getattr(builtins, name, None))
        if isinstance(target, types.ModuleType):
            # module.attribute: subprocess.Popen, podman.require_image, servers.free_port...
            if target.__name__ not in _SCANNED_MODULES and not _in_tests(target):
                continue
            used = (getattr(target, attr, None) for attr in names)
            if any(u is not None and _refers_to_a_server(u, seen) for u in used):
                return True
        elif target is not None and _refers_to_a_server(target, seen):
            return True
    return False


def needs_server(item: pytest.Item) -> bool:
    """Whether the test needs a server: see SERVER_ENTRY_POINTS."""
    if item.get_closest_marker("server") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(
        callspec.params.get(name) == value for name, value in SERVER_PARAMS.items()
    ):
        return True
    seen: set[int] = set()
    function = getattr(item, "function", None)
    if function is not None and _refers_to_a_server(function, seen):
        return True
    fixture_info = getattr(item, "_fixtureinfo", None)
    definitions = fixture_info.name2fixturedefs.values() if fixture_info is not None else ()
    return any(
        _refers_to_a_server(getattr(d.func, "__func__", d.func), seen)
        for defs in definitions
        for d in defs
        if d.argname != _GUARD_FIXTURE
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    fast: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if needs_server(item):
            item.add_marker(pytest.mark.server)
            deselected.append(item)
        else:
            fast.append(item)
    if config.getoption("fast") and deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = fast


class FastTierError(RuntimeError):
    """A test of the fast tier tried to start a server."""


def _refuse(what: str) -> FastTierError:
    return FastTierError(
        f"the fast tier (--fast) must not start {what}, but this test did: it needs a server "
        "and was not sorted as one. Make its code or fixtures use the test bed's starts "
        "(SERVER_STARTS in tests/conftest.py) or mark it @pytest.mark.server."
    )


def _is_server_command(args: Any) -> bool:
    argv = args.split() if isinstance(args, str) else [os.fspath(a) for a in args]
    names = [os.path.basename(str(a)) for a in argv]
    if SERVER_COMMANDS.intersection(names):
        return True
    cli = "refstore" in names or "refstore.cli" in names
    long_running = "serve" in names or "operator" in names
    return cli and long_running and not {"--help", "-h"}.intersection(names)


def _guard_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """In --fast runs: the test bed's server starts raise, and so does a Popen of a server
    command (subprocess.run and call wait for theirs, and may run anything)."""

    def refusing(what: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise _refuse(what)

        return refuse

    for owner, name, what in SERVER_STARTS:
        monkeypatch.setattr(owner, name, refusing(what))

    popen_init = subprocess.Popen.__init__
    waiting = {subprocess.run.__code__, subprocess.call.__code__}

    def guarded_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        if sys._getframe(1).f_code not in waiting and _is_server_command(args):
            raise _refuse(f"the server {args!r}")
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_init)


@pytest.fixture(scope="session", autouse=True)
def _fast_tier_starts_no_server(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getoption("fast"):
        yield
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        _guard_servers(monkeypatch)
        yield
