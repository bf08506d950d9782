"""Pod-like network namespaces for gateways that Kubernetes objects point at (stdlib only).

A ``PodNetwork`` is a network namespace made by this module, joined to the root namespace by a
veth pair with its own /24 out of 198.18.0.0/15 (RFC 2544 benchmarking range, never routed):
the root side is ``.host_address`` (198.18.N.1), the namespace side ``.address``
(198.18.N.2, "the pod IP"), which the API server accepts in EndpointSlices (it refuses
loopback addresses). A server inside listening on ``.address`` is reachable from the root
namespace; from inside, the root namespace is reachable at ``.host_address`` (a server there
must listen on it or on 0.0.0.0, since 127.0.0.1 inside is the namespace's own loopback).

A ``BridgeNetwork`` takes a slot the same way for a Linux bridge in the root namespace
(198.18.N.1) with several namespaces on it (member ``i`` at 198.18.N.(10+i)), which reach each
other directly: the nodes of a distributed server.

Slots are allocated under a lock file shared by every test run on the machine, with the owner's
PID recorded; a slot whose owner died is cleaned up and reused. Needs root and iproute2.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway_process import GatewayProcess

NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
# Slot 0 (198.18.0.0/24) is left alone: it is the usual first choice of hand-made set-ups.
SLOTS = range(1, NETWORK.num_addresses // 256)
NAMESPACE_PREFIX = "refstore-pod-"
VETH_PREFIX = "rspod"  # + slot: at most 8 characters, under the 15 of IFNAMSIZ
BRIDGE_PREFIX = "rsbr"  # + slot; its members' namespaces and veths add "-<member>"
MEMBER_ADDRESS_BASE = 10  # member i of a bridge is at 198.18.N.(10 + i)
STOP_TIMEOUT = 10.0


def _state_dir() -> Path:
    """Machine-wide (network namespaces are): /run, else the refstore cache."""
    for candidate in (
        Path(os.environ.get("REFSTORE_NETNS_STATE", "/run/refstore-netns")),
        Path(os.environ.get("REFSTORE_CACHE", "~/.cache/refstore")).expanduser() / "netns",
    ):
        with contextlib.suppress(OSError):
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
    raise RuntimeError("no writable directory for the PodNetwork slot registry")


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _ip_binary() -> str:
    found = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(
            "PodNetwork needs iproute2's `ip`; install it with `apt-get install -y iproute2`"
        )
    return found


def _check_can_run() -> str:
    ip = _ip_binary()
    if os.geteuid() != 0:
        raise RuntimeError(
            "PodNetwork needs root (it creates network namespaces and veth pairs); "
            "run the tests as root, e.g. in CI or a container"
        )
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [_ip_binary(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live owner from a reused PID)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(owner_file: Path) -> bool:
    try:
        pid_text, started = owner_file.read_text().split()
        return _start_time(int(pid_text)) == started
    except (OSError, ValueError):
        return False


def _slot_names(slot: int) -> tuple[str, str]:
    return f"{NAMESPACE_PREFIX}{slot}", f"{VETH_PREFIX}{slot}"


def _slot_network(slot: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(NETWORK.network_address) + slot * 256, 24))


def _namespace_pids(namespace: str) -> list[int]:
    result = _ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def _kill_namespace(namespace: str, veth: str) -> None:
    """Kill everything inside, delete the namespace and the root-side veth (if still there)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids := _namespace_pids(namespace):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    _ip("netns", "del", namespace, check=False)
    if _ip("link", "show", "dev", veth, check=False).returncode == 0:
        _ip("link", "del", "dev", veth, check=False)


def _slot_of(name: str, prefix: str) -> int | None:
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def _our_namespaces() -> dict[int, str]:
    found = {}
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        slot = _slot_of(name, NAMESPACE_PREFIX)
        if slot is not None:
            found[slot] = name
    return found


def _our_veths() -> dict[int, str]:
    found = {}
    for line in _ip("-o", "link", "show").stdout.splitlines():
        fields = line.split()
        name = fields[1].rstrip(":").split("@")[0] if len(fields) > 1 else ""
        slot = _slot_of(name, VETH_PREFIX)
        if slot is not None:
            found[slot] = name
    return found


def _member_names(slot: int, member: int) -> tuple[str, str]:
    return f"{NAMESPACE_PREFIX}{slot}-{member}", f"{VETH_PREFIX}{slot}-{member}"


def _member_slot(name: str, prefix: str) -> int | None:
    """The slot of a bridge member's namespace or veth (``<prefix><slot>-<member>``)."""
    if not name.startswith(prefix):
        return None
    slot, dash, member = name[len(prefix) :].partition("-")
    return int(slot) if dash and slot.isdigit() and member.isdigit() else None


def _our_bridge_parts() -> dict[int, list[tuple[str, str]]]:
    """Per slot: ("netns" | "link", name) of every bridge, member namespace and member veth."""
    found: dict[int, list[tuple[str, str]]] = {}
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if (slot := _member_slot(name, NAMESPACE_PREFIX)) is not None:
            found.setdefault(slot, []).append(("netns", name))
    for line in _ip("-o", "link", "show").stdout.splitlines():
        fields = line.split()
        name = fields[1].rstrip(":").split("@")[0] if len(fields) > 1 else ""
        slot = _member_slot(name, VETH_PREFIX)
        if slot is None:
            slot = _slot_of(name, BRIDGE_PREFIX)
        if slot is not None:
            found.setdefault(slot, []).append(("link", name))
    return found


def _kill_bridge_parts(parts: list[tuple[str, str]]) -> None:
    """Member namespaces first (with what runs in them), then veths and the bridge."""
    for kind, name in parts:
        if kind == "netns":
            _kill_namespace(name, "")
    for kind, name in parts:
        if kind == "link" and _ip("link", "show", "dev", name, check=False).returncode == 0:
            _ip("link", "del", "dev", name, check=False)


def _sweep(state: Path) -> None:
    """Remove what runs that died left behind: slots of ours whose owner is gone."""
    bridge_parts = _our_bridge_parts()
    slots = set(_our_namespaces()) | set(_our_veths()) | set(bridge_parts)
    slots.update(s for f in state.glob("*.owner") if (s := _slot_of(f.stem, "")) is not None)
    for slot in sorted(slots):
        owner = state / f"{slot}.owner"
        if not _owner_alive(owner):
            _kill_namespace(*_slot_names(slot))
            _kill_bridge_parts(bridge_parts.get(slot, []))
            owner.unlink(missing_ok=True)


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Networks of every IPv4 address and route in the root namespace."""
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest[:1].isdigit():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dest, strict=False))
    return [net for net in used if net.overlaps(NETWORK) and net.prefixlen > 0]


_live: set[PodNetwork | BridgeNetwork] = set()


@atexit.register
def _close_all() -> None:
    for network in list(_live):
        network.close()


class PodNetwork:
    """A network namespace with one address, joined to the root namespace by a veth pair."""

    def __init__(self) -> None:
        _check_can_run()
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False
        state = _state_dir()
        with open(state / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.slot = self._allocate(state)
            self.namespace, self.veth = _slot_names(self.slot)
            subnet = _slot_network(self.slot)
            self.host_address = str(subnet.network_address + 1)
            self.address = str(subnet.network_address + 2)
            self.prefixlen = subnet.prefixlen
            self._owner_file = state / f"{self.slot}.owner"
            self._owner_file.write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
            _live.add(self)
            try:
                self._create()
            except BaseException:
                self.close()
                raise

    @staticmethod
    def _allocate(state: Path) -> int:
        _sweep(state)
        taken = set(_our_namespaces()) | set(_our_veths()) | set(_our_bridge_parts())
        used = _used_networks()
        for slot in SLOTS:
            if slot in taken or _owner_alive(state / f"{slot}.owner"):
                continue
            if any(net.overlaps(_slot_network(slot)) for net in used):
                continue
            return slot
        raise RuntimeError(f"all {len(SLOTS)} PodNetwork slots in {NETWORK} are in use")

    def _create(self) -> None:
        ns, veth = self.namespace, self.veth
        _ip("netns", "add", ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("addr", "add", f"{self.host_address}/{self.prefixlen}", "dev", veth)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "addr", "add", f"{self.address}/{self.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.host_address)

    @property
    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace."""
        return [_ip_binary(), "netns", "exec", self.namespace]

    def popen(self, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (``ip netns exec`` execs it: same PID).

        Unless ``preexec_fn`` is given, the process is SIGKILLed if the test process dies.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        popen_kwargs.setdefault("preexec_fn", _die_with_parent)
        proc: subprocess.Popen[Any] = subprocess.Popen([*self.exec_prefix, *argv], **popen_kwargs)
        self._procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], **run_kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the namespace to completion (``subprocess.run`` keywords)."""
        return subprocess.run([*self.exec_prefix, *argv], **run_kwargs)

    def pids(self) -> list[int]:
        """PIDs of every process running in the namespace."""
        return _namespace_pids(self.namespace)

    def close(self) -> None:
        """Stop what runs inside (SIGTERM, then SIGKILL), delete the namespace and the veth."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _kill_namespace(self.namespace, self.veth)
        self._owner_file.unlink(missing_ok=True)
        _live.discard(self)

    def __enter__(self) -> PodNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PodNetwork({self.namespace!r}, address={self.address!r})"


class BridgeNetwork:
    """A bridge in the root namespace with ``members`` network namespaces on one /24.

    The bridge has ``.host_address`` (198.18.N.1); member ``i`` (1-based) has namespace
    ``.namespaces[i - 1]`` and address ``.addresses[i - 1]`` (198.18.N.(10 + i)). Members reach
    each other and the root namespace; the root namespace reaches them.
    """

    def __init__(self, members: int) -> None:
        _check_can_run()
        if not 1 <= members <= 200:
            raise ValueError(f"a BridgeNetwork has 1 to 200 members, not {members}")
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False
        state = _state_dir()
        with open(state / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.slot = PodNetwork._allocate(state)
            subnet = _slot_network(self.slot)
            self.bridge = f"{BRIDGE_PREFIX}{self.slot}"
            self.host_address = str(subnet.network_address + 1)
            self.prefixlen = subnet.prefixlen
            members_range = range(1, members + 1)
            self._names = [_member_names(self.slot, i) for i in members_range]
            self.namespaces = [ns for ns, _veth in self._names]
            self.addresses = [
                str(subnet.network_address + MEMBER_ADDRESS_BASE + i) for i in members_range
            ]
            self._owner_file = state / f"{self.slot}.owner"
            self._owner_file.write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
            _live.add(self)
            try:
                self._create()
            except BaseException:
                self.close()
                raise

    def _create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_address}/{self.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for (ns, veth), address in zip(self._names, self.addresses, strict=True):
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{address}/{self.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "default", "via", self.host_address)

    def exec_prefix(self, member: int) -> list[str]:
        """argv prefix that runs a command inside member ``member``'s namespace (1-based)."""
        return [_ip_binary(), "netns", "exec", self.namespaces[member - 1]]

    def popen(self, member: int, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in member ``member``'s namespace, as PodNetwork.popen does."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        popen_kwargs.setdefault("preexec_fn", _die_with_parent)
        argv = [*self.exec_prefix(member), *argv]
        proc: subprocess.Popen[Any] = subprocess.Popen(argv, **popen_kwargs)
        self._procs.append(proc)
        return proc

    def pids(self, member: int) -> list[int]:
        """PIDs of every process running in member ``member``'s namespace."""
        return _namespace_pids(self.namespaces[member - 1])

    def set_link(self, member: int, up: bool) -> None:
        """Cut member ``member`` off the bridge (its packets vanish, nothing is refused) or
        join it again."""
        _ip("link", "set", self._names[member - 1][1], "up" if up else "down")

    def close(self) -> None:
        """Stop what runs inside (SIGTERM, then SIGKILL); delete namespaces, veths, bridge."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns, veth in self._names:
            _kill_namespace(ns, veth)
        if _ip("link", "show", "dev", self.bridge, check=False).returncode == 0:
            _ip("link", "del", "dev", self.bridge, check=False)
        self._owner_file.unlink(missing_ok=True)
        _live.discard(self)

    def __enter__(self) -> BridgeNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BridgeNetwork({self.bridge!r}, addresses={self.addresses!r})"


class GatewayPod(GatewayProcess):
    """``refstore serve`` inside a PodNetwork, listening on ``network.address:port``.

    ``url`` is reachable from the root namespace. ``settings`` as for GatewayProcess; a
    backend in the root namespace must be addressed at ``network.host_address``.
    """

    def __init__(
        self,
        network: PodNetwork,
        settings: dict[str, Any],
        port: int = 8000,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            settings,
            env,
            host=network.address,
            port=port,
            command_prefix=network.exec_prefix,
        )
        self.network = network

    @property
    def address(self) -> str:
        return self.network.address

    def kill(self) -> None:
        """SIGKILL the gateway now (a crash, not a shutdown)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, timeout: float = 30) -> GatewayPod:
        """Stop (SIGTERM) if running, then start again on the same address and port."""
        self.stop()
        self.start(timeout)
        return self

    def __repr__(self) -> str:
        return f"GatewayPod({self.url!r})"
