"""podman for the image tests, without Docker or any registry (stdlib only).

``require_podman()`` installs podman, runc and debootstrap from Debian when they are
missing and writes the configuration this kind of machine needs (each setting below was
seen failing without it) under ``$REFSTORE_CACHE/containers`` (default
``~/.cache/refstore``), where podman's storage lives too, so warm runs reuse images and
build layers. ``require_image()`` builds the project's Dockerfile on a Debian bookworm
base made with debootstrap once (``localhost/refstore-base:bookworm``, labelled with a
key of how it was made, rebuilt when that changes). ``Container`` runs one container and
removes it afterwards. Failures to get podman fail the test with how to get it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from servers import CACHE_DIR

REPO = Path(__file__).resolve().parent.parent
CONTAINERS_DIR = CACHE_DIR / "containers"
APT_PACKAGES = ("podman", "runc", "debootstrap")
COMMANDS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}

BASE_IMAGE = "localhost/refstore-base:bookworm"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_KEY_LABEL = "org.refstore.test.base-key"
IMAGE = "localhost/refstore:test"
BUILDER_IMAGE = "localhost/refstore-builder:test"
TEST_LABEL = "org.refstore.test=1"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

HOW_TO = (
    "install them with `apt-get install -y podman runc debootstrap` (as root; scripts/test "
    "does this); the tests write their own podman configuration under "
    f"{CONTAINERS_DIR}"
)


class PodmanUnavailable(RuntimeError):
    """podman cannot be had or used here; the message says how to get it."""


def _fail(message: str) -> PodmanUnavailable:
    return PodmanUnavailable(f"{message}; {HOW_TO}")


def _apt_install(packages: Sequence[str]) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise _fail(f"missing {', '.join(packages)} and cannot install them (not root with apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *packages]
    print(f"installing {' '.join(packages)} with apt-get", file=sys.stderr, flush=True)
    if subprocess.run(install, env=env, stdout=2, stderr=2, check=False).returncode == 0:
        return
    subprocess.run(["apt-get", "update", "-q"], env=env, stdout=2, stderr=2, check=False)
    if subprocess.run(install, env=env, stdout=2, stderr=2, check=False).returncode != 0:
        raise _fail(f"apt-get install {' '.join(packages)} failed")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _configs() -> dict[str, str]:
    """CONTAINERS_CONF / CONTAINERS_STORAGE_CONF for this machine, written once."""
    CONTAINERS_DIR.mkdir(parents=True, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile == resource.RLIM_INFINITY:
        nofile = 1 << 20
    containers_conf = CONTAINERS_DIR / "containers.conf"
    storage_conf = CONTAINERS_DIR / "storage.conf"
    _write_if_changed(
        containers_conf,
        "# Written by tests/podman.py for the image tests.\n"
        "[containers]\n"
        "# The defaults fail with 'error setting rlimit type 7/6: operation not permitted'.\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "\n[engine]\n"
        "# crun fails with 'cgroups in hybrid mode not supported'.\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{CONTAINERS_DIR}/events.log"\n',
    )
    _write_if_changed(
        storage_conf,
        "# Written by tests/podman.py for the image tests.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{CONTAINERS_DIR}/storage"\n'
        f'runroot = "{CONTAINERS_DIR}/run"\n',
    )
    return {
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
    }


@dataclass
class Podman:
    """The podman command with this suite's configuration."""

    env: dict[str, str]
    version: str = ""

    def argv(self, *args: str) -> list[str]:
        return ["podman", *args]

    def run(
        self, *args: str, check: bool = True, timeout: float | None = 600, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        result = subprocess.run(
            self.argv(*args), env=self.env, text=True, timeout=timeout, check=False, **kwargs
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"podman {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout or ''}{result.stderr or ''}"
            )
        return result

    def image_label(self, image: str, label: str) -> str | None:
        """A label of a local image, or None when the image (or label) is not there."""
        result = self.run("image", "inspect", image, check=False)
        if result.returncode != 0:
            return None
        labels = json.loads(result.stdout)[0].get("Labels") or {}
        value: str | None = labels.get(label)
        return value


@functools.cache
def _podman() -> Podman:
    missing = [pkg for pkg, cmd in COMMANDS.items() if shutil.which(cmd) is None]
    if missing:
        _apt_install(missing)
    still = [pkg for pkg, cmd in COMMANDS.items() if shutil.which(cmd) is None]
    if still:
        raise _fail(f"{', '.join(still)} not found after installing")
    env = dict(os.environ)
    env.update(_configs())
    engine = Podman(env)
    info = engine.run("version", "--format", "{{.Client.Version}}", check=False, timeout=60)
    if info.returncode != 0:
        raise _fail(f"podman does not run: {info.stderr.strip()}")
    engine.version = info.stdout.strip()
    return engine


def require_podman() -> Podman:
    """podman, installed and configured; a test failure saying how otherwise."""
    import pytest

    try:
        return _podman()
    except PodmanUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


# The Debian base image -------------------------------------------------------------


def _host_mirrors() -> tuple[str, str]:
    """The Debian mirror and security mirror this machine's apt uses (deb822 sources)."""
    mirror, security = DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if not (uris and suites):
                continue
            if "security" in suites.group(1):
                security = uris.group(1)
            else:
                mirror = uris.group(1)
    return mirror, security


def _base_key(mirror: str, security: str) -> str:
    recipe = {
        "suite": BASE_SUITE,
        "variant": "minbase",
        "packages": sorted(BASE_PACKAGES),
        "mirror": mirror,
        "security": security,
        "recipe": 1,  # raise when the steps below change
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _chroot(root: Path, *argv: str) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
    }
    result = subprocess.run(["chroot", str(root), *argv], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"chroot {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")


def _build_base(engine: Podman, key: str, mirror: str, security: str) -> None:
    print(
        f"building {BASE_IMAGE} with debootstrap (once; cached in podman's storage)",
        file=sys.stderr,
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CONTAINERS_DIR))
    root = work / "root"
    try:
        boot = subprocess.run(
            ["debootstrap", "--variant=minbase", BASE_SUITE, str(root), mirror],
            capture_output=True,
            text=True,
        )
        if boot.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{boot.stdout[-3000:]}{boot.stderr[-3000:]}")
        (root / "etc/apt/sources.list").write_text(
            f"deb {mirror} {BASE_SUITE} main\n"
            f"deb {mirror} {BASE_SUITE}-updates main\n"
            f"deb {security} {BASE_SUITE}-security main\n"
        )
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        _chroot(root, "apt-get", "update", "-q")
        _chroot(root, "apt-get", "upgrade", "-y", "-q")
        _chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *BASE_PACKAGES)
        _chroot(root, "apt-get", "clean")
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        (root / "etc/resolv.conf").unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            engine.run(
                "import",
                "--change",
                f"LABEL {BASE_KEY_LABEL}={key}",
                "--change",
                'CMD ["/bin/bash"]',
                "-",
                BASE_IMAGE,
                stdin=tar.stdout,
            )
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_base_image(engine: Podman) -> str:
    """``localhost/refstore-base:bookworm``: Debian minbase + python3, made once."""
    mirror, security = _host_mirrors()
    key = _base_key(mirror, security)
    with open(CONTAINERS_DIR / ".base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if engine.image_label(BASE_IMAGE, BASE_KEY_LABEL) != key:
            _build_base(engine, key, mirror, security)
    return BASE_IMAGE


# Building the project's image ---------------------------------------------------------

_PIP_SETTINGS = ("cert", "index-url", "extra-index-url", "trusted-host")


def host_pip_settings() -> dict[str, str]:
    """The host pip's index and certificate settings (``pip config``, then ``PIP_*``
    variables over it): what pip inside the build needs to reach the same index."""
    found: dict[str, str] = {}
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    for line in listed.stdout.splitlines():
        match = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line.strip())
        if match and match.group(1) in _PIP_SETTINGS:
            found[match.group(1)] = match.group(2)
    for name in _PIP_SETTINGS:
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            found[name] = value
    return found


def _build_pip_conf() -> tuple[Path, list[tuple[str, str]]]:
    """A pip.conf for pip inside the build, and the host files it names (to mount)."""
    settings = host_pip_settings()
    files = []
    cert = settings.get("cert")
    if cert:
        if Path(cert).is_file():
            files.append((str(Path(cert).resolve()), cert))
        else:
            del settings["cert"]
    text = "[global]\n" + "".join(f"{name} = {value}\n" for name, value in settings.items())
    conf = CONTAINERS_DIR / "build-pip.conf"
    _write_if_changed(conf, text)
    return conf, files


def _source_url() -> str:
    remote = subprocess.run(
        ["git", "-C", str(REPO), "remote", "get-url", "origin"], capture_output=True, text=True
    )
    return remote.stdout.strip() if remote.returncode == 0 else ""


def project_version() -> str:
    """The package's version (the image's version label), read where it is written."""
    text = (REPO / "refstore" / "_version.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert match, "refstore/_version.py has no __version__"
    return match.group(1)


def build_argv(base_image: str, tag: str = IMAGE, target: str | None = None) -> list[str]:
    """``podman build`` arguments for the project's Dockerfile on ``base_image``."""
    argv = ["build", "--pull=never", "--layers", "-t", tag, "-f", str(REPO / "Dockerfile")]
    if target:
        argv += ["--target", target]
    argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    argv += [
        "--build-arg",
        f"VERSION={project_version()}",
        "--build-arg",
        f"SOURCE={_source_url()}",
    ]
    mounts = set()
    if Path(HOST_CA_BUNDLE).is_file():
        # Outbound TLS is re-signed here: the build trusts what the host trusts.
        mounts.add((HOST_CA_BUNDLE, HOST_CA_BUNDLE))
    pip_conf, pip_files = _build_pip_conf()
    mounts.add((str(pip_conf), "/etc/pip.conf"))  # for the build's RUN steps, not the image
    mounts.update(pip_files)
    for source, target in sorted(mounts):
        argv += ["-v", f"{source}:{target}:ro"]
    return [*argv, str(REPO)]


@dataclass
class Build:
    image: str
    seconds: float
    base_seconds: float
    log: str = field(repr=False, default="")


@functools.cache
def _build() -> Build:
    engine = _podman()
    started = time.monotonic()
    base = ensure_base_image(engine)
    base_done = time.monotonic()
    log = ""
    # The builder stage gets a tag of its own, so that pruning the images earlier builds
    # left untagged keeps its cached layers.
    for argv in (build_argv(base, BUILDER_IMAGE, target="builder"), build_argv(base, IMAGE)):
        result = engine.run(*argv, check=False, timeout=1800)
        log += result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"podman build failed ({result.returncode}):\n{log[-6000:]}")
    engine.run("image", "prune", "--force", check=False)
    build = Build(IMAGE, time.monotonic() - base_done, base_done - started, log)
    print(
        f"{IMAGE}: base image {build.base_seconds:.1f} s, build {build.seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return build


def require_build() -> Build:
    """The project's image, built once per test session (layers cached across runs)."""
    import pytest

    require_podman()
    try:
        return _build()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def require_image() -> str:
    """The project's image tag (see :func:`require_build`)."""
    return require_build().image


# Running containers -----------------------------------------------------------------

_live: set[str] = set()


@atexit.register
def _remove_all() -> None:
    if _live:
        with contextlib.suppress(Exception):
            _podman().run("rm", "-f", "-t", "2", *_live, check=False, timeout=120)
        _live.clear()


# How a Kubernetes pod with readOnlyRootFilesystem, an emptyDir /tmp, runAsUser 10001,
# drop ALL and no privilege escalation runs the image.
HARDENED = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,mode=1777",
    "--user",
    "10001",
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
)


class Container:
    """``podman run -d`` of ``image`` with ``options`` (after the hardened defaults) and
    ``args``; stopped and removed on exit."""

    def __init__(
        self,
        engine: Podman,
        image: str,
        options: Sequence[str] = (),
        args: Sequence[str] = (),
        hardened: bool = True,
    ) -> None:
        self.engine = engine
        self.name = f"refstore-test-{uuid.uuid4().hex[:10]}"
        self.argv = [
            "run",
            "-d",
            "--name",
            self.name,
            "--label",
            TEST_LABEL,
            *(HARDENED if hardened else ()),
            *options,
            image,
            *args,
        ]

    def start(self) -> Container:
        _live.add(self.name)
        self.engine.run(*self.argv, timeout=120)
        return self

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False, timeout=60)
        return result.stdout + result.stderr

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.engine.run("exec", self.name, *argv, check=False, timeout=60)

    def running(self) -> bool:
        result = self.engine.run(
            "inspect", "--format", "{{.State.Running}}", self.name, check=False, timeout=60
        )
        return result.stdout.strip() == "true"

    def remove(self) -> None:
        self.engine.run("rm", "-f", "-t", "5", self.name, check=False, timeout=120)
        _live.discard(self.name)

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()
