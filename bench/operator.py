"""Benchmark ``refstore operator``: how fast BucketMapping changes reach every gateway replica.

Run as root from the repository root (it makes network namespaces)::

    python bench/operator.py [--out bench/results/operator.txt]

Starts a control plane (etcd, kube-apiserver, kube-controller-manager; tests/kube.py), gateway
"pods" each in a network namespace of its own (tests/operator_bed.py), the EndpointSlices the
EndpointSlice controller would write for them, and ``refstore operator`` with its default
``--resync``, and prints, in one run:

1. the time from ``kubectl apply`` of a BucketMapping update to every gateway serving it,
   median and p99 over 25 updates with seeded random pauses, for a Service of 3 gateways and
   one of 10 (updates alternate between the two), beside what ``kubectl apply`` alone takes
   (target: median < 0.5 s, p99 < 1 s);
2. the time for a new endpoint to get the mapping after the EndpointSlice that adds it is
   applied (target: median < 0.5 s);
3. the time to re-push a replica that restarted empty, from the moment it answers again
   (target: within the resync period);
4. the operator's RSS after all that, with the gateways and BucketMappings in place.

"Serving" is read from each gateway's own JSON access log (the ``PUT
/gateway/bucket-mapping`` line has the time the push was applied), scanned every 20 ms, so
the measurement does not load the two cores the operator, the API server, etcd and the
gateways share; after each timing every gateway is asked once that it holds the new map.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _entry in (REPO / "tests", REPO):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

import kube  # noqa: E402
from kube import ControlPlane  # noqa: E402
from netns import GatewayPod  # noqa: E402
from operator_bed import (  # noqa: E402
    Fleet,
    OperatorProcess,
    bucket_mapping,
    endpoint_slice,
    held,
    pod_name,
    serves,
    service,
    wait_until,
)

CRD_FILE = REPO / "deploy" / "helm" / "refstore" / "crds" / "bucketmappings.refstore.io.yaml"
NAMESPACE = "refstore-bench"
MAPPING_ROUTE = "/gateway/bucket-mapping"

TARGET_MEDIAN = 0.5
TARGET_P99 = 1.0
TARGET_NEW_ENDPOINT = 0.5

SCAN_INTERVAL = 0.020
SIZES = (3, 10)
LOGICAL = ("data", "logs", "models", "scratch", "archive", "images")
PUSH_TIMEOUT = 15.0


# -- output --------------------------------------------------------------------------------


class Report:
    """Lines printed as they come and kept for ``--out``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def p99(values: list[float]) -> float:
    """Nearest rank: with fewer than 100 values this is the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "-" if math.isinf(seconds) else f"{seconds * 1000:.0f}"


# -- reading the gateways' access logs ------------------------------------------------------


def log_time(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["time"])).timestamp()


def is_push(entry: dict[str, Any]) -> bool:
    return (
        entry.get("route") == MAPPING_ROUTE
        and entry.get("method") == "PUT"
        and entry.get("status") == 200
    )


class LogTail:
    """New JSON lines of one gateway's log, read from where the last read stopped."""

    def __init__(self, pod: GatewayPod) -> None:
        self.pod = pod
        self._offset = 0
        self._partial = b""
        self.skip()

    def skip(self) -> None:
        """Forget everything logged so far."""
        self._offset = self.pod.log_path.stat().st_size if self.pod.log_path.exists() else 0
        self._partial = b""

    def entries(self) -> list[dict[str, Any]]:
        try:
            with self.pod.log_path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        found = []
        for line in lines:
            if line.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found


@dataclass
class PushWatch:
    """Waits, by scanning logs, until each watched gateway logs its first push after ``t0``."""

    tails: dict[str, LogTail]
    t0: float
    first: dict[str, float] = field(default_factory=dict)
    pushes: int = 0
    refused: int = 0

    def scan(self) -> None:
        for name, tail in self.tails.items():
            for entry in tail.entries():
                if entry.get("route") != MAPPING_ROUTE or entry.get("method") != "PUT":
                    continue
                if entry.get("status") == 409:
                    self.refused += 1
                if not is_push(entry):
                    continue
                self.pushes += 1
                at = log_time(entry)
                if name not in self.first and at >= self.t0:
                    self.first[name] = at

    def wait(self, timeout: float = PUSH_TIMEOUT) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            self.scan()
            if len(self.first) == len(self.tails) or time.monotonic() > deadline:
                return {name: at - self.t0 for name, at in self.first.items()}
            time.sleep(SCAN_INTERVAL)


def watch(pods: Iterable[GatewayPod], tails: dict[str, LogTail]) -> PushWatch:
    """Start watching ``pods`` now: what they logged before is skipped."""
    chosen = {pod_name(pod): tails[pod_name(pod)] for pod in pods}
    for tail in chosen.values():
        tail.skip()
    return PushWatch(chosen, time.time())


# -- the bed ------------------------------------------------------------------------------


@dataclass
class Group:
    """One gateway Service, its pods, and the BucketMapping that names it."""

    size: int
    service: str
    pods: list[GatewayPod]
    mapping: str
    uid: str = ""
    bucket_map: dict[str, str] = field(default_factory=dict)
    updates: list[Update] = field(default_factory=list)


@dataclass
class Update:
    apply: float
    served: float
    first: float
    verified: bool
    pushes: int


@dataclass
class Bed:
    kube: ControlPlane
    fleet: Fleet
    operator: OperatorProcess
    tails: dict[str, LogTail]

    def apply(self, manifest: dict[str, Any]) -> float:
        """``kubectl apply``; returns how long the command took."""
        started = time.perf_counter()
        self.kube.apply(manifest, namespace=NAMESPACE)
        return time.perf_counter() - started

    def uid(self, name: str) -> str:
        found = self.kube.kubectl_json("-n", NAMESPACE, "get", "bucketmapping", name)
        return str(found["metadata"]["uid"])


def apply_crd(plane: ControlPlane) -> None:
    plane.apply(CRD_FILE.read_text())
    plane.kubectl(
        "wait", "--for=condition=Established", "crd/bucketmappings.refstore.io", "--timeout=30s"
    )


def operator_default_resync() -> float:
    """The ``--resync`` default, as ``refstore operator --help`` states it."""
    text = subprocess.run(
        [sys.executable, "-m", "refstore.cli", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"--resync SECONDS.*?\(default:\s*([\d.]+)\)", text, re.S)
    if found is None:
        raise RuntimeError(f"no --resync default in `refstore operator --help`:\n{text}")
    return float(found.group(1))


def all_serve(group: Group) -> bool:
    return all(serves(pod, group.bucket_map, group.uid) for pod in group.pods)


def mapping_for(group: Group, step: int) -> dict[str, str]:
    """A map of six buckets whose physical names all change at every step."""
    return {logical: f"b{group.size}-{logical}-{step}" for logical in LOGICAL}


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def kib(value: str) -> float:
    """``12345 kB`` -> MiB."""
    return int(value.split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def operator_pid(bed: Bed) -> int:
    assert bed.operator.process is not None
    return int(bed.operator.process.pid)


# -- 1. updates ---------------------------------------------------------------------------


def timed_update(bed: Bed, group: Group, step: int) -> Update:
    bucket_map = mapping_for(group, step)
    pushes = watch(group.pods, bed.tails)
    apply_seconds = bed.apply(bucket_mapping(group.mapping, group.service, bucket_map))
    took = pushes.wait()
    verified = all(serves(pod, bucket_map, group.uid) for pod in group.pods)
    pushes.scan()
    group.bucket_map = bucket_map
    missing = len(group.pods) - len(took)
    served = max(took.values()) if not missing else math.inf
    return Update(
        apply_seconds, served, min(took.values(), default=math.inf), verified, pushes.pushes
    )


def reference_config_map(step: int) -> dict[str, Any]:
    """A ConfigMap that nothing watches: applying it is ``kubectl apply`` alone."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bench-reference"},
        "data": {"step": str(step)},
    }


def run_updates(
    bed: Bed, groups: list[Group], count: int, rng: random.Random
) -> tuple[float, list[float]]:
    """``count`` timed updates per group, alternating, and as many applies of a ConfigMap
    change; returns the operator's CPU seconds and the ConfigMap applies' durations."""
    for group in groups:  # one untimed update each: first connections, first code paths
        timed_update(bed, group, 0)
    bed.apply(reference_config_map(0))
    alone = []
    pid = operator_pid(bed)
    cpu_before = cpu_seconds(pid)
    for step in range(1, count + 1):
        order = groups if step % 2 else groups[::-1]
        for group in order:
            update = timed_update(bed, group, step)
            group.updates.append(update)
            time.sleep(rng.uniform(0.2, 1.5))
        alone.append(bed.apply(reference_config_map(step)))
        time.sleep(rng.uniform(0.2, 1.5))
        if step % 5 == 0:
            progress(f"updates: {step}/{count} per Service")
    return cpu_seconds(pid) - cpu_before, alone


def print_updates(
    report: Report, groups: list[Group], operator_cpu: float, alone: list[float]
) -> dict[int, bool]:
    count = len(groups[0].updates)
    report.say(
        f"1. kubectl apply of a BucketMapping update -> every gateway serves it ({count} each)"
    )
    report.say("-" * 90)
    report.say(
        f"{'gateways':<10}{'':>8}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}"
        f"{'  first gw':>11}  verdict"
    )
    apply_all: list[float] = []
    passed: dict[int, bool] = {}
    for group in groups:
        served = [u.served for u in group.updates]
        first = [u.first for u in group.updates]
        apply = [u.apply for u in group.updates]
        apply_all += apply
        after = [u.served - u.apply for u in group.updates]
        med, top = statistics.median(served), p99(served)
        ok = med < TARGET_MEDIAN and top < TARGET_P99
        passed[group.size] = ok
        p90 = sorted(served)[max(0, math.ceil(0.9 * len(served)) - 1)]
        report.say(
            f"{group.size:<10}{'ms':>8}{ms(med):>9}{ms(p90):>9}{ms(top):>9}{ms(max(served)):>9}"
            f"{ms(statistics.median(first)):>11}  {verdict(ok)}"
        )
        report.say(
            f"{'':<10}{'apply ms':>8}{ms(statistics.median(apply)):>9}{'':>9}"
            f"{ms(p99(apply)):>9}{ms(max(apply)):>9}"
        )
        report.say(
            f"{'':<10}{'rest ms':>8}{ms(statistics.median(after)):>9}{'':>9}"
            f"{ms(p99(after)):>9}{ms(max(after)):>9}"
        )
        pushes = sum(u.pushes for u in group.updates)
        bad = sum(not u.verified for u in group.updates)
        report.say(
            f"{'':<10}pushes logged {pushes} for {count} updates x {group.size} gateways; "
            f"{bad} updates not held afterwards"
        )
    report.say(
        f"kubectl apply alone (a ConfigMap change nothing watches, {len(alone)} times in the same"
        f" rounds): median {ms(statistics.median(alone))} ms, p99 {ms(p99(alone))} ms; the"
    )
    report.say(
        f"  BucketMapping applies above: median {ms(statistics.median(apply_all))} ms, p99 "
        f"{ms(p99(apply_all))} ms"
    )
    report.say(
        f"operator CPU: {operator_cpu:.2f} s for {2 * count} updates "
        f"({operator_cpu * 1000 / (2 * count):.0f} ms per update, resync reads included)"
    )
    report.say(
        f"targets: median < {TARGET_MEDIAN * 1000:.0f} ms and p99 < {TARGET_P99 * 1000:.0f} ms"
    )
    report.say("time = from just before `kubectl apply -f -` is launched (t0) until the last")
    report.say("  gateway of the Service logs `PUT /gateway/bucket-mapping` 200 (its access-log")
    report.say("  line, written when the push was applied; logs scanned every 20 ms). first gw =")
    report.say("  the same for the first gateway; apply = how long the kubectl command took;")
    report.say(f"  rest = time - apply. p99 is the nearest rank (of {count}: the largest).")
    report.say("  Updates alternate between the two Services (order swapped each round), each")
    report.say("  followed by a seeded random pause of 0.2-1.5 s; each changes all six physical")
    report.say("  bucket names; after each timing every gateway is asked once (GET")
    report.say("  /gateway/bucket-mapping) that it holds the new map from that object.")
    report.say()
    return passed


# -- 2. a new endpoint --------------------------------------------------------------------


def run_new_endpoint(
    bed: Bed, group: Group, newcomer: GatewayPod, reps: int, rng: random.Random
) -> tuple[list[float], list[float], int]:
    """The newcomer (empty, started beforehand) added to the Service's slice, then removed."""
    name = pod_name(newcomer)
    slice_name = f"{group.service}-0"
    took: list[float] = []
    applies: list[float] = []
    failures = 0
    for rep in range(reps):
        if newcomer.process is not None:
            newcomer.stop()
        newcomer.start()  # an empty replica: it holds no mapping yet
        time.sleep(rng.uniform(0.5, 1.5))
        if held(newcomer)["version"] is not None:
            raise RuntimeError(f"{name} was pushed before it was in any EndpointSlice")
        pushes = watch([newcomer], bed.tails)
        grown = endpoint_slice(
            group.service, slice_name, [*group.pods, newcomer], lambda p: p is not newcomer
        )
        applies.append(bed.apply(grown))
        found = pushes.wait()
        took.append(found.get(name, math.inf))
        if not serves(newcomer, group.bucket_map, group.uid):
            failures += 1
        bed.apply(endpoint_slice(group.service, slice_name, group.pods))
        time.sleep(0.5)
        progress(f"new endpoint: {rep + 1}/{reps}")
    return took, applies, failures


def print_new_endpoint(
    report: Report, took: list[float], applies: list[float], failures: int, size: int
) -> bool:
    med = statistics.median(took)
    ok = med < TARGET_NEW_ENDPOINT
    report.say(
        f"2. a new endpoint gets the mapping after its EndpointSlice changes ({len(took)} times)"
    )
    report.say("-" * 90)
    report.say(f"ms each      {' '.join(ms(t) for t in took)}")
    report.say(
        f"median {ms(med)} ms, max {ms(max(took))} ms (target median < "
        f"{TARGET_NEW_ENDPOINT * 1000:.0f} ms)  {verdict(ok)}"
    )
    report.say(
        f"kubectl apply of the slice: median {ms(statistics.median(applies))} ms; "
        f"{failures} times the newcomer did not hold the map afterwards"
    )
    report.say("one more gateway, started (empty) 0.5-1.5 s before and in no slice, is added to")
    report.say(
        f"  the slice of the Service of {size} as not ready (a pod waiting for its mapping);"
    )
    report.say("  time = t0 just before that `kubectl apply` until the newcomer logs its push.")
    report.say("  Then it is taken out of the slice again and restarted empty.")
    report.say()
    return ok


# -- 3. a replica restarted empty ---------------------------------------------------------


def up_time(entries: list[dict[str, Any]]) -> float | None:
    """When a restarted gateway began to answer: its "Uvicorn running on" line or the first
    ``/health`` it answered, whichever its log shows first."""
    times = [
        log_time(e)
        for e in entries
        if (e.get("route") == "/health" and e.get("status") == 200)
        or str(e.get("message", "")).startswith("Uvicorn running on")
    ]
    return min(times) if times else None


@dataclass
class Restart:
    down: float
    repush: float
    verified: bool
    retried: bool
    """The operator had found the replica failing while it was down (its retry, with
    backoff, pushed it), rather than finding it empty at its periodic re-read."""


def failing_logged(bed: Bed, pod: GatewayPod, since: float, until: float) -> bool:
    needle = f"gateway {pod.address}:"
    return any(
        str(entry.get("message", "")).startswith(needle)
        and "failing" in str(entry.get("message", ""))
        and since <= log_time(entry) <= until
        for entry in bed.operator.log_entries()
    )


def run_restarts(
    bed: Bed, group: Group, reps: int, resync: float, rng: random.Random
) -> list[Restart]:
    results = []
    for rep in range(reps):
        pod = group.pods[(3 * rep) % len(group.pods)]
        time.sleep(rng.uniform(0.5, resync))  # a random point of the replica's re-read cycle
        tail = bed.tails[pod_name(pod)]
        tail.skip()
        stopped = time.time()
        pod.stop()
        pod.start()
        entries: list[dict[str, Any]] = []
        pushed: float | None = None
        deadline = time.monotonic() + 3 * resync + PUSH_TIMEOUT
        while pushed is None and time.monotonic() < deadline:
            new = tail.entries()
            entries += new
            pushed = next((log_time(e) for e in new if is_push(e)), None)
            if pushed is None:
                time.sleep(SCAN_INTERVAL)
        up = up_time(entries)
        if up is None:
            raise RuntimeError(f"{pod_name(pod)} logged neither its start nor a /health answer")
        repush = pushed - up if pushed is not None else math.inf
        retried = failing_logged(bed, pod, stopped, pushed or time.time())
        verified = serves(pod, group.bucket_map, group.uid)
        results.append(Restart(up - stopped, repush, verified, retried))
        progress(f"restart: {rep + 1}/{reps}")
    return results


def print_restarts(report: Report, results: list[Restart], resync: float) -> bool:
    repush = [r.repush for r in results]
    ok = max(repush) <= resync
    report.say(f"3. a replica restarted empty is pushed again ({len(results)} restarts)")
    report.say("-" * 90)
    report.say(f"ms each      {' '.join(f'{ms(t):>5}' for t in repush)}")
    kinds = " ".join(f"{'retry' if r.retried else 'read':>5}" for r in results)
    report.say(f"found by     {kinds}")
    report.say(f"down ms      {' '.join(f'{ms(r.down):>5}' for r in results)}")
    for kind, label in ((False, "periodic re-read"), (True, "retry after a failed read")):
        chosen = [r.repush for r in results if r.retried is kind]
        if chosen:
            report.say(
                f"  {label + ':':<27}{len(chosen)} times, median "
                f"{ms(statistics.median(chosen))} ms, max {ms(max(chosen))} ms"
            )
    report.say(
        f"median {ms(statistics.median(repush))} ms, max {ms(max(repush))} ms "
        f"(target: every one within the resync period, {resync:g} s)  {verdict(ok)}"
    )
    report.say(f"{sum(not r.verified for r in results)} restarts not holding the map afterwards")
    report.say(f"operator run with its default --resync ({resync:g} s, from `refstore operator")
    report.say("  --help`). A gateway of the 10 is stopped (SIGTERM) and started again with no")
    report.say("  EndpointSlice change, after a random pause of 0.5 s to one resync period;")
    report.say("  time = from when it answers again (its log's `Uvicorn running on` line or")
    report.say("  first /health answer, whichever is earlier) until it logs the push; down = from")
    report.say("  the stop until then. Nothing tells the operator: either its re-read of each")
    report.say("  replica every resync period finds it empty (read), or a read fell while it was")
    report.say("  down and the retry with backoff (0.2 s doubling, at most 5 s) found it back")
    report.say("  (retry; the operator logged it failing).")
    report.say()
    return ok


# -- 4. RSS and summary -------------------------------------------------------------------


def print_rss(report: Report, bed: Bed, groups: list[Group]) -> None:
    pid = operator_pid(bed)
    status = proc_status(pid)
    gateways = [proc_status(pod.pid) for pod in bed.fleet.pods if pod.process is not None]
    rss = [kib(s["VmRSS"]) for s in gateways]
    endpoints = sum(len(g.pods) for g in groups)
    report.say("4. Memory")
    report.say("-" * 90)
    report.say(
        f"operator VmRSS {kib(status['VmRSS']):.1f} MiB, VmHWM (peak) {kib(status['VmHWM']):.1f} "
        f"MiB, {status['Threads']} threads, CPU {cpu_seconds(pid):.1f} s since its start"
    )
    report.say(
        f"  with {len(groups)} BucketMappings and {endpoints} gateway endpoints in place "
        f"(Services of {' and '.join(str(g.size) for g in groups)}), after sections 1-3"
    )
    report.say(
        f"gateway VmRSS median {statistics.median(rss):.1f} MiB ({len(rss)} gateways; reference)"
    )
    report.say()


def print_summary(report: Report, rows: list[tuple[str, str, bool | None]]) -> None:
    report.say("5. Summary")
    report.say("-" * 90)
    for name, value, ok in rows:
        report.say(f"{name:<44}{value:<34}{'(reference)' if ok is None else verdict(ok)}")


# -- header and main ----------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def print_header(
    report: Report, args: argparse.Namespace, resync: float, plane: ControlPlane
) -> None:
    changed = [line[3:] for line in git("status", "--porcelain", "refstore").splitlines()]
    dirty = f" (uncommitted changes in {', '.join(changed)})" if changed else ""
    kubectl_version = json.loads(plane.kubectl("version", "-o", "json").stdout)["serverVersion"][
        "gitVersion"
    ]
    report.say("refstore operator benchmark: BucketMapping changes -> every gateway replica")
    report.say("=" * 90)
    report.say(f"date            {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    report.say(
        f"machine         {os.cpu_count()} CPUs, {platform.platform()}; load average at start "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    report.say(f"python          {platform.python_version()} ({platform.python_implementation()})")
    report.say(f"refstore        git {git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}")
    report.say(
        f"kubernetes      kube-apiserver {kubectl_version}, etcd {kube.ETCD_VERSION} "
        f"(--unsafe-no-fsync), kube-controller-manager; no scheduler, no kubelet"
    )
    report.say(f"kopf            {metadata.version('kopf')}, httpx {metadata.version('httpx')}")
    report.say(
        f"operator        `refstore operator --namespace {NAMESPACE}`, default --resync "
        f"({resync:g} s), log level {args.operator_log_level}; admin kubeconfig"
    )
    report.say(
        "gateways        `refstore serve` (local backend, bucket_mapping_source: operator), each"
    )
    report.say(
        "                in a network namespace of its own (198.18.0.0/15), one EndpointSlice"
    )
    report.say("                per Service written by this script; everything on this machine's")
    report.say(
        "                cores: operator, API server, etcd, controller-manager, gateways, kubectl"
    )
    report.say(
        f"parameters      {args.updates} updates per Service, {args.new_endpoint} new-endpoint and"
    )
    report.say(f"                {args.restarts} restart repetitions, seed {args.seed}")
    report.say()


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def benchmark(args: argparse.Namespace, report: Report) -> None:
    rng = random.Random(args.seed)
    resync = operator_default_resync()
    workdir = Path(tempfile.mkdtemp(prefix="refstore-opbench-"))
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        else:
            stack.callback(progress, f"kept {workdir}")
        progress("starting the control plane")
        plane = ControlPlane(workdir / "kube")
        plane.start()
        stack.callback(plane.stop)
        apply_crd(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        total = sum(SIZES) + 1
        progress(f"starting {total} gateways")
        fleet = Fleet(workdir / "fleet")
        stack.callback(fleet.close)
        fleet.add(total)
        operator = OperatorProcess(
            plane, NAMESPACE, resync=resync, extra_args=["--log-level", args.operator_log_level]
        )
        stack.callback(shutil.rmtree, operator.log_path.parent, True)
        if args.keep:
            stack.callback(shutil.copy, operator.log_path, workdir / "operator.log")
        stack.callback(operator.stop)
        operator.start()
        tails = {pod_name(pod): LogTail(pod) for pod in fleet.pods}
        bed = Bed(plane, fleet, operator, tails)
        groups: list[Group] = []
        start = 0
        for size in SIZES:
            name = f"bench-{size}"
            group = Group(size, name, fleet.pods[start : start + size], name)
            start += size
            bed.apply(service(name))
            bed.apply(endpoint_slice(name, f"{name}-0", group.pods))
            group.bucket_map = mapping_for(group, 0)
            bed.apply(bucket_mapping(name, name, group.bucket_map))
            group.uid = bed.uid(name)
            groups.append(group)
        for group in groups:
            wait_until(
                functools.partial(all_serve, group),
                timeout=60,
                what=f"first mapping on the {group.size} gateways",
            )
        newcomer = fleet.pods[-1]
        print_header(report, args, resync, plane)

        progress("section 1: updates")
        operator_cpu, alone = run_updates(bed, groups, args.updates, rng)
        update_ok = print_updates(report, groups, operator_cpu, alone)

        progress("section 2: new endpoint")
        big = groups[-1]
        took, applies, failures = run_new_endpoint(bed, big, newcomer, args.new_endpoint, rng)
        new_ok = print_new_endpoint(report, took, applies, failures, big.size)

        progress("section 3: restarts")
        restarts = run_restarts(bed, big, args.restarts, resync, rng)
        restart_ok = print_restarts(report, restarts, resync)

        print_rss(report, bed, groups)
        rows: list[tuple[str, str, bool | None]] = []
        for group in groups:
            served = [u.served for u in group.updates]
            rows.append(
                (
                    f"update -> {group.size} gateways serve it",
                    f"median {ms(statistics.median(served))} ms, p99 {ms(p99(served))} ms",
                    update_ok[group.size],
                )
            )
        rows.append(
            (
                "kubectl apply alone (ConfigMap)",
                f"median {ms(statistics.median(alone))} ms, p99 {ms(p99(alone))} ms",
                None,
            )
        )
        rows.append(
            ("new endpoint gets the mapping", f"median {ms(statistics.median(took))} ms", new_ok)
        )
        repush = [r.repush for r in restarts]
        rows.append(
            (
                f"restarted replica re-pushed (resync {resync:g} s)",
                f"max {ms(max(repush))} ms, median {ms(statistics.median(repush))} ms",
                restart_ok,
            )
        )
        status = proc_status(operator_pid(bed))
        rows.append(
            (
                "operator memory",
                f"VmRSS {kib(status['VmRSS']):.1f} MiB, VmHWM {kib(status['VmHWM']):.1f} MiB",
                None,
            )
        )
        print_summary(report, rows)
        progress("cleaning up")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--updates", type=int, default=25, help="timed updates per Service")
    parser.add_argument("--new-endpoint", type=int, default=7, help="new-endpoint repetitions")
    parser.add_argument("--restarts", type=int, default=7, help="restart repetitions")
    parser.add_argument("--seed", type=int, default=8, help="seed of the random pauses")
    parser.add_argument(
        "--operator-log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the operator's --log-level (debug: for profiling)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs) and print its path"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/operator.py needs root (it makes network namespaces)", file=sys.stderr)
        return 2
    report = Report()
    try:
        with terminated_as_interrupt():
            benchmark(args, report)
    except KeyboardInterrupt:
        print("interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report.lines) + "\n")
        print(f"saved to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
