"""A real Kubernetes control plane on 127.0.0.1 for the test suite (stdlib only).

``ensure_kube_tools()`` builds pinned etcd, kube-apiserver, kube-controller-manager, kubectl
and helm from their Go modules into ``~/.cache/refstore/bin/kube-.../`` (``REFSTORE_CACHE``
moves the cache, ``REFSTORE_KUBE_BIN_DIR`` points at prebuilt binaries instead).
``ControlPlane`` runs etcd, kube-apiserver and kube-controller-manager with a static admin token
and writes a kubeconfig. There is no scheduler and no kubelet: pods stay Pending, and tests write
EndpointSlices themselves (see ``endpoint_slice``), with addresses of ``netns.PodNetwork``s.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from servers import BIN_DIR, free_port

K8S_MODULE = "k8s.io/kubernetes"
K8S_VERSION = "v1.36.3"
K8S_STAGING_VERSION = "v0.36.3"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ETCD_VERSION = "v3.6.16"
HELM_MODULE = "helm.sh/helm/v3"
HELM_VERSION = "v3.21.4"

KUBE_BIN_DIR = BIN_DIR / f"kube-{K8S_VERSION}-etcd-{ETCD_VERSION}-helm-{HELM_VERSION}"
TOOL_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
_STAMP = "versions"

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
KUBECTL_TIMEOUT = 120.0

HOW_TO_GET_TOOLS = (
    "build them with scripts/test, or with "
    "`python -c 'import kube; kube.ensure_kube_tools()'` run in tests/ (needs Go and 5-11 "
    "minutes on 2 cores), or set REFSTORE_KUBE_BIN_DIR to a directory holding "
    + ", ".join(TOOL_NAMES)
)


@dataclasses.dataclass(frozen=True)
class KubeTools:
    """Paths of the five binaries."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path

    @property
    def bin_dir(self) -> Path:
        return self.kubectl.parent


def _say(message: str) -> None:
    print(f"[kube-tools] {message}", file=sys.stderr, flush=True)


def _versions_text() -> str:
    return (
        f"{K8S_MODULE} {K8S_VERSION} (staging {K8S_STAGING_VERSION})\n"
        f"{ETCD_MODULE} {ETCD_VERSION}\n"
        f"{HELM_MODULE} {HELM_VERSION}\n"
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _tools_in(directory: Path) -> KubeTools:
    return KubeTools(*(directory / name for name in TOOL_NAMES))


def _find_go() -> str | None:
    return shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(p, os.X_OK)),
        None,
    )


def ensure_kube_tools() -> KubeTools:
    """Return the five binaries, building the pinned versions that are missing.

    Builds run under a file lock (concurrent test runs wait for one another) with a private
    Go build cache that is removed afterwards; the Go module cache stays where Go keeps it.
    """
    override = os.environ.get("REFSTORE_KUBE_BIN_DIR")
    if override:
        tools = _tools_in(Path(override).expanduser())
        missing = [name for name in TOOL_NAMES if not _executable(tools.bin_dir / name)]
        if missing:
            raise RuntimeError(
                f"REFSTORE_KUBE_BIN_DIR={override} lacks executable {', '.join(missing)}; "
                + HOW_TO_GET_TOOLS
            )
        return tools

    tools = _tools_in(KUBE_BIN_DIR)
    KUBE_BIN_DIR.mkdir(parents=True, exist_ok=True)
    with open(BIN_DIR / ".kube-tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = KUBE_BIN_DIR / _STAMP
        if stamp.exists() and stamp.read_text() != _versions_text():
            for name in TOOL_NAMES:
                (KUBE_BIN_DIR / name).unlink(missing_ok=True)
        missing = [name for name in TOOL_NAMES if not _executable(KUBE_BIN_DIR / name)]
        if not missing:
            return tools

        go = _find_go()
        if go is None:
            raise RuntimeError(
                f"{', '.join(missing)} not found in {KUBE_BIN_DIR} and `go` is not installed; "
                + HOW_TO_GET_TOOLS
            )
        stamp.unlink(missing_ok=True)
        started = time.monotonic()
        _say(
            f"building {', '.join(missing)} into {KUBE_BIN_DIR} "
            "(5-11 minutes on 2 cores with empty Go caches; progress follows)"
        )
        # The private build cache (GBs) lives in the temp dir and goes with it.
        with tempfile.TemporaryDirectory(
            prefix="refstore-kube-build-", ignore_cleanup_errors=True
        ) as tmp:
            builder = _Builder(go, Path(tmp))
            if "etcd" in missing:
                builder.build_etcd()
            if {"kube-apiserver", "kube-controller-manager", "kubectl"} & set(missing):
                builder.build_kubernetes()
            if "helm" in missing:
                builder.build_helm()
        still_missing = [name for name in TOOL_NAMES if not _executable(KUBE_BIN_DIR / name)]
        if still_missing:
            raise RuntimeError(
                f"build finished without {', '.join(still_missing)}; " + HOW_TO_GET_TOOLS
            )
        stamp.write_text(_versions_text())
        _say(f"all five ready in {time.monotonic() - started:.0f}s")
        return tools


_ETCD_MAIN = """\
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
"""

# The upstream mains of these commands, copied from the downloaded k8s.io/kubernetes module.
_K8S_MAINS = {
    "kube-apiserver": "cmd/kube-apiserver/apiserver.go",
    "kube-controller-manager": "cmd/kube-controller-manager/controller-manager.go",
    "kubectl": "cmd/kubectl/kubectl.go",
}

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/\1\s*$", re.M)


class _Builder:
    """Generates wrapper modules in a temp dir and builds them into KUBE_BIN_DIR."""

    def __init__(self, go: str, tmp: Path) -> None:
        self.go = go
        self.tmp = tmp
        self.gocache = tmp / "gocache"
        self.env = {k: v for k, v in os.environ.items() if k not in ("GOOS", "GOARCH", "GOBIN")}
        self.env.update(
            CGO_ENABLED="0",
            GOTOOLCHAIN="local",
            GOWORK="off",
            GO111MODULE="on",
            GOCACHE=str(self.gocache),
            GOFLAGS=(self.env.get("GOFLAGS", "") + " -buildvcs=false").strip(),
        )

    def run(self, argv: Sequence[str], cwd: Path, what: str) -> str:
        result = subprocess.run(
            [self.go, *argv],
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.splitlines()[-40:])
            raise RuntimeError(
                f"{what} failed (go {' '.join(argv[:2])}..., exit {result.returncode}):\n"
                f"{tail}\n" + HOW_TO_GET_TOOLS
            )
        return result.stdout

    def module_dir(self, module: str, version: str) -> Path:
        out = self.run(
            ["mod", "download", "-json", f"{module}@{version}"], self.tmp, f"downloading {module}"
        )
        info = json.loads(out)
        return Path(info["Dir"])

    def _install(self, out_dir: Path, names: Iterable[str]) -> None:
        for name in names:
            os.chmod(out_dir / name, 0o755)
            os.replace(out_dir / name, KUBE_BIN_DIR / name)

    def _timed_build(self, what: str, argv: Sequence[str], cwd: Path, note: str = "") -> None:
        started = time.monotonic()
        _say(f"compiling {what}{note} ...")
        self.run(argv, cwd, f"building {what}")
        _say(f"{what} built in {time.monotonic() - started:.0f}s")

    def build_etcd(self) -> None:
        _say(f"etcd: wrapper module for {ETCD_MODULE} {ETCD_VERSION}")
        mod = self.tmp / "etcd"
        mod.mkdir()
        (mod / "go.mod").write_text(
            f"module refstore.test/etcd\n\ngo 1.26.0\n\nrequire {ETCD_MODULE} {ETCD_VERSION}\n"
        )
        (mod / "main.go").write_text(_ETCD_MAIN)
        self.run(["mod", "tidy"], mod, "resolving etcd's dependencies")
        out = self.tmp / "out-etcd"
        out.mkdir()
        self._timed_build(
            "etcd",
            ["build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), "."],
            mod,
        )
        self._install(out, ["etcd"])

    def build_kubernetes(self) -> None:
        _say(f"kubernetes: downloading {K8S_MODULE} {K8S_VERSION}")
        source = self.module_dir(K8S_MODULE, K8S_VERSION)
        staging = sorted(
            name
            for name in _STAGING_REPLACE.findall((source / "go.mod").read_text())
            if not name.startswith("k8s.io/sample-")
        )
        if not staging:
            raise RuntimeError(f"no staging replace block found in {source / 'go.mod'}")
        mod = self.tmp / "kubernetes"
        replace = "".join(f"\t{name} => {name} {K8S_STAGING_VERSION}\n" for name in staging)
        (mod).mkdir()
        (mod / "go.mod").write_text(
            "module refstore.test/kubernetes\n\ngo 1.26.0\n\n"
            f"require {K8S_MODULE} {K8S_VERSION}\n\nreplace (\n{replace})\n"
        )
        for name, main in _K8S_MAINS.items():
            (mod / "cmd" / name).mkdir(parents=True)
            shutil.copyfile(source / main, mod / "cmd" / name / "main.go")
        _say(f"kubernetes: resolving dependencies ({len(staging)} staging modules pinned)")
        self.run(["mod", "tidy"], mod, "resolving kubernetes' dependencies")
        major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
        xflags = []
        for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            for key, value in (
                ("gitVersion", K8S_VERSION),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
                ("buildDate", "1970-01-01T00:00:00Z"),
            ):
                xflags.append(f"-X {package}.{key}={value}")
        out = self.tmp / "out-kubernetes"
        out.mkdir()
        self._timed_build(
            "kube-apiserver, kube-controller-manager, kubectl",
            [
                "build",
                "-trimpath",
                "-ldflags=" + " ".join(["-s", "-w", *xflags]),
                "-o",
                str(out) + "/",
                *(f"./cmd/{name}" for name in _K8S_MAINS),
            ],
            mod,
            note=" (the longest step)",
        )
        self._install(out, _K8S_MAINS)

    def build_helm(self) -> None:
        major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
        xflags = [f"-X {HELM_MODULE}/internal/version.version={HELM_VERSION}"]
        xflags.append(f"-X {HELM_MODULE}/internal/version.gitTreeState=clean")
        for package in ("pkg/chartutil", "pkg/lint/rules"):
            xflags.append(f"-X {HELM_MODULE}/{package}.k8sVersionMajor={major}")
            xflags.append(f"-X {HELM_MODULE}/{package}.k8sVersionMinor={minor}")
        out = self.tmp / "out-helm"
        out.mkdir()
        self.env["GOBIN"] = str(out)
        try:
            self._timed_build(
                f"helm {HELM_VERSION}",
                [
                    "install",
                    "-trimpath",
                    "-ldflags=" + " ".join(["-s", "-w", *xflags]),
                    f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
                ],
                self.tmp,
            )
        finally:
            del self.env["GOBIN"]
        self._install(out, ["helm"])


# --- control plane ---------------------------------------------------------------------------

_live: set[ControlPlane] = set()


@atexit.register
def _stop_all() -> None:
    for plane in list(_live):
        plane.stop()


class KubectlError(subprocess.CalledProcessError):
    """A kubectl or helm command failed; str() includes its stderr."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited {self.returncode}:\n"
            f"{(self.stderr or '').strip()}\n{(self.output or '').strip()}"
        ).rstrip()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found; install it with `apt-get install -y openssl`")
    result = subprocess.run(
        [openssl, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _quote(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def kubeconfig_yaml(server: str, ca_path: Path, token: str, user: str, namespace: str) -> str:
    """A kubeconfig with one cluster, one token user and one context."""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: refstore-test\n"
        "  cluster:\n"
        f"    server: {_quote(server)}\n"
        f"    certificate-authority: {_quote(str(ca_path))}\n"
        "users:\n"
        f"- name: {_quote(user)}\n"
        "  user:\n"
        f"    token: {_quote(token)}\n"
        "contexts:\n"
        "- name: refstore-test\n"
        "  context:\n"
        "    cluster: refstore-test\n"
        f"    user: {_quote(user)}\n"
        f"    namespace: {_quote(namespace)}\n"
        "current-context: refstore-test\n"
    )


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies (no orphaned servers)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Server:
    """One control-plane process with its log file."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, argv: Sequence[str]) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"log {self.log_path}:\n{_tail(self.log_path)}"
            )

    def port_in_use(self) -> bool:
        return "address already in use" in _tail(self.log_path, 80).lower()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, files under ``workdir``.

    The admin (static token, group ``system:masters``) may do anything, impersonation
    included: ``kubectl("auth", "can-i", "list", "secrets", "--as=system:serviceaccount:ns:sa",
    check=False)`` answers for another identity (exit 1 and "no" when denied). For acting as
    another identity for real, ``service_account_kubeconfig`` writes a kubeconfig with a bound
    token of a ServiceAccount, and ``write_kubeconfig`` one for any token.
    """

    def __init__(self, workdir: Path, tools: KubeTools | None = None) -> None:
        self.workdir = Path(workdir)
        self._tools = tools
        self._token = secrets.token_hex(16)
        self.etcd_port: int | None = None
        self.apiserver_port: int | None = None
        logs = self.workdir / "logs"
        self._etcd = _Server("etcd", logs / "etcd.log")
        self._apiserver = _Server("kube-apiserver", logs / "kube-apiserver.log")
        self._controller_manager = _Server(
            "kube-controller-manager", logs / "kube-controller-manager.log"
        )
        self._ssl: ssl.SSLContext | None = None
        self.start_seconds: float | None = None

    # -- paths and identities --

    @property
    def tools(self) -> KubeTools:
        if self._tools is None:
            self._tools = ensure_kube_tools()
        return self._tools

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_path(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def token(self) -> str:
        """The admin's bearer token."""
        return self._token

    @property
    def server(self) -> str:
        if self.apiserver_port is None:
            raise RuntimeError("control plane not started; call start() first")
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def write_kubeconfig(
        self,
        path: Path,
        token: str,
        *,
        user: str = "user",
        namespace: str = "default",
    ) -> Path:
        """Write a kubeconfig for this cluster authenticating with ``token``."""
        path = Path(path)
        path.write_text(kubeconfig_yaml(self.server, self.ca_path, token, user, namespace))
        path.chmod(0o600)
        return path

    def service_account_token(self, namespace: str, name: str, duration: str = "1h") -> str:
        """A bound token of an existing ServiceAccount (TokenRequest, ``kubectl create token``)."""
        result = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}")
        return result.stdout.strip()

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig acting as ServiceAccount ``namespace/name`` (which must exist)."""
        token = self.service_account_token(namespace, name)
        return self.write_kubeconfig(
            path, token, user=f"system:serviceaccount:{namespace}:{name}", namespace=namespace
        )

    def env_for(self, kubeconfig: Path) -> dict[str, str]:
        """Environment for a subprocess (kopf, ``refstore operator``, helm) using ``kubeconfig``."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig)
        env["PATH"] = f"{self.tools.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        helm_home = self.workdir / "helm"
        env["HELM_CACHE_HOME"] = str(helm_home / "cache")
        env["HELM_CONFIG_HOME"] = str(helm_home / "config")
        env["HELM_DATA_HOME"] = str(helm_home / "data")
        no_proxy = "127.0.0.1,localhost,198.18.0.0/15"
        for key in ("NO_PROXY", "no_proxy"):
            env[key] = f"{env[key]},{no_proxy}" if env.get(key) else no_proxy
        return env

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses acting as the admin (``KUBECONFIG`` etc.)."""
        return self.env_for(self.kubeconfig)

    # -- commands --

    def _run(
        self,
        argv: Sequence[str],
        input: str | None,  # noqa: A002 - as in subprocess.run
        check: bool,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(argv),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - as in subprocess.run
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or with ``kubeconfig``); raise KubectlError on failure."""
        config = kubeconfig or self.kubeconfig
        argv = [str(self.tools.kubectl), f"--kubeconfig={config}", *args]
        return self._run(argv, input, check, timeout, self.env_for(config))

    def kubectl_json(self, *args: str, kubeconfig: Path | None = None) -> Any:
        """``kubectl ARGS -o json``, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(
        self,
        manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        server_side: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of YAML text, one object (dict) or a list of objects."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        args = ["apply", "-f", "-"]
        if namespace is not None:
            args += ["-n", namespace]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        return self.kubectl(*args, input=text)

    def helm(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - as in subprocess.run
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this cluster as the admin."""
        argv = [str(self.tools.helm), f"--kubeconfig={self.kubeconfig}", *args]
        return self._run(argv, input, check, timeout)

    # -- lifecycle --

    def _write_pki(self) -> None:
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        if (pki / "sa.pub").exists():
            return
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=refstore-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=pki,
        )  # fmt: skip
        (pki / "apiserver.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        )
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key",
            "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver",
            cwd=pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-extfile", "apiserver.ext",
            "-out", "apiserver.crt",
            cwd=pki,
        )  # fmt: skip
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)

    def _write_tokens(self) -> Path:
        path = self.pki / "tokens.csv"
        path.write_text(f'{self._token},admin,admin-uid,"system:masters"\n')
        path.chmod(0o600)
        return path

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_path))
        return self._ssl

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self._token}"}
        )
        handler = urllib.request.HTTPSHandler(context=self._ssl_context())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            body = err.read()
            err.close()
            return err.code, body
        except (OSError, urllib.error.URLError):
            return 0, b""

    def _start_etcd(self, deadline: float) -> None:
        for _attempt in range(3):
            client, peer = free_port(), free_port()
            self.etcd_port = client
            self._etcd.start(
                [
                    str(self.tools.etcd),
                    "--name=refstore-test",
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=refstore-test=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ]
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            while time.monotonic() < deadline:
                if not self._etcd.running:
                    break
                with (
                    contextlib.suppress(OSError, ValueError),
                    opener.open(f"http://127.0.0.1:{client}/health", timeout=2) as resp,
                ):
                    if json.loads(resp.read()).get("health") == "true":
                        return
                time.sleep(0.1)
            if self._etcd.running or not self._etcd.port_in_use():
                break
            self._etcd.stop()
        self._etcd.check_alive()
        raise RuntimeError(
            f"etcd not healthy after {START_TIMEOUT:.0f}s; "
            f"log {self._etcd.log_path}:\n{_tail(self._etcd.log_path)}"
        )

    def _start_apiserver(self, deadline: float, tokens: Path) -> None:
        pki = self.pki
        for _attempt in range(3):
            self.apiserver_port = free_port()
            self._apiserver.start(
                [
                    str(self.tools.kube_apiserver),
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.apiserver_port}",
                    f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={self.ca_path}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={pki / 'generated'}",
                    "--profiling=false",
                ]
            )
            while time.monotonic() < deadline:
                if not self._apiserver.running:
                    break
                if self._get("/readyz")[0] == 200:
                    return
                time.sleep(0.2)
            if self._apiserver.running or not self._apiserver.port_in_use():
                break
            self._apiserver.stop()
        self._apiserver.check_alive()
        raise RuntimeError(
            f"kube-apiserver not ready after {START_TIMEOUT:.0f}s; /readyz: "
            f"{self._get('/readyz?verbose')[1].decode(errors='replace')[-2000:]}\n"
            f"log {self._apiserver.log_path}:\n{_tail(self._apiserver.log_path)}"
        )

    def _start_controller_manager(self, deadline: float) -> None:
        self._controller_manager.start(
            [
                str(self.tools.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.ca_path}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--use-service-account-credentials=false",
            ]
        )
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        while time.monotonic() < deadline:
            self._controller_manager.check_alive()
            if self._get(path)[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"the default ServiceAccount did not appear within {START_TIMEOUT:.0f}s; "
            f"log {self._controller_manager.log_path}:\n"
            f"{_tail(self._controller_manager.log_path)}"
        )

    def start(self) -> ControlPlane:
        """Start all three and wait for /readyz and the default ServiceAccount."""
        if self._apiserver.running:
            return self
        self.tools  # noqa: B018 - build or find the binaries before the clock starts
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        tokens = self._write_tokens()
        _live.add(self)
        try:
            self._start_etcd(deadline)
            self._start_apiserver(deadline, tokens)
            self.kubeconfig.write_text(
                kubeconfig_yaml(self.server, self.ca_path, self._token, "admin", "default")
            )
            self.kubeconfig.chmod(0o600)
            self._start_controller_manager(deadline)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop controller-manager, apiserver and etcd, one at a time (faster than all at once)."""
        self._controller_manager.stop()
        self._apiserver.stop()
        self._etcd.stop()
        _live.discard(self)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ControlPlane(workdir={str(self.workdir)!r}, port={self.apiserver_port})"


def endpoint_slice(
    name: str,
    service: str,
    endpoints: Iterable[Mapping[str, Any]],
    *,
    namespace: str | None = None,
    port: int = 8000,
    port_name: str = "http",
    managed_by: str = "refstore-tests",
) -> dict[str, Any]:
    """An IPv4 EndpointSlice for Service ``service`` (create that Service without a selector,
    or the controller-manager's EndpointSlice controller writes slices of its own).

    Each endpoint is ``{"address": ip, "pod": name, "ready": bool}`` (``pod`` and ``ready``
    optional; ``ready`` defaults to true).
    """
    items = []
    for endpoint in endpoints:
        ready = bool(endpoint.get("ready", True))
        item: dict[str, Any] = {
            "addresses": [endpoint["address"]],
            "conditions": {"ready": ready, "serving": ready, "terminating": False},
        }
        if endpoint.get("pod"):
            item["targetRef"] = {"kind": "Pod", "name": endpoint["pod"]}
            if namespace is not None:
                item["targetRef"]["namespace"] = namespace
        items.append(item)
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": managed_by,
        },
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": items,
    }
