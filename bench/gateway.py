"""Benchmark the refstore gateway against raw minio-py on one local MinIO server.

Run by hand from the repository root::

    python bench/gateway.py [--quick]

Starts one MinIO server and one gateway process (``refstore serve``, MinIO
backend) in front of it, and prints a plain-text report:

1. 256 MiB throughput through the gateway (GET, raw-body PUT, multipart POST)
   vs a default ``minio.Minio`` client talking to the same server;
2. 4 KiB GET ops/s and latency at concurrency 16, gateway vs direct;
3. the gateway's peak RSS growth while a 1 GiB object streams up and down;
4. ``/health`` latency while 8 large transfers run through the gateway.

Sides are interleaved round by round (order alternating) and compared by the
median of per-round ratios, so load drifts on a shared machine cancel out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import library as lib  # bench/library.py: shared helpers, sys.path for tests/ and the repo
import psutil
import urllib3
from gateway_process import ADMIN_TOKEN, GatewayProcess
from minio import Minio
from servers import MinioServer, free_port

MiB, GiB, MB = lib.MiB, lib.GiB, lib.MB
KiB = 1024
BUCKET = lib.BUCKET
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HTTP_TIMEOUT = 600.0

TARGET_DOWNLOAD = 0.7
TARGET_PUT = 0.6
TARGET_MULTIPART = 0.4
TARGET_OPS = 0.5
TARGET_RSS = 64 * MiB
TARGET_HEALTH_P99 = 0.050

CONCURRENCY = 16
SMALL_SIZE = 4 * KiB
SMALL_OBJECTS = 256
LOAD_UPLOADS = 4
LOAD_DOWNLOADS = 4
SAMPLE_INTERVAL = 0.020
HEALTH_INTERVAL = 0.010

LARGE_KEY = "seed/large.bin"
RSS_KEY = "seed/rss.bin"


@dataclass(frozen=True)
class Params:
    large_size: int
    download_reps: int
    upload_reps: int
    rounds: int
    ops_seconds: float
    ops_warmup_seconds: float
    ops_rounds: int
    rss_size: int
    load_size: int
    load_windows: int
    load_seconds: float
    idle_seconds: float

    @classmethod
    def for_run(cls, quick: bool) -> Params:
        if quick:
            return cls(32 * MiB, 2, 1, 2, 1.0, 0.3, 2, 128 * MiB, 32 * MiB, 1, 3.0, 1.0)
        return cls(256 * MiB, 3, 2, 10, 3.0, 0.5, 10, GiB, 256 * MiB, 3, 10.0, 3.0)


# -- processes and CPU accounting -------------------------------------------------------


@dataclass
class Env:
    """MinIO, the gateway in front of it, and the clients of both."""

    root: Path
    server: MinioServer
    gateway: GatewayProcess
    direct: Minio
    http: httpx.Client
    pool: urllib3.HTTPConnectionPool
    large_file: Path
    rss_file: Path
    gateway_proc: psutil.Process = field(init=False)
    minio_proc: psutil.Process = field(init=False)
    gateway_start_rss: int = field(init=False)

    def __post_init__(self) -> None:
        self.gateway_proc = psutil.Process(self.gateway.pid)
        assert self.server.pid is not None
        self.minio_proc = psutil.Process(self.server.pid)
        self.gateway_start_rss = self.gateway_rss()

    def gateway_rss(self) -> int:
        return int(self.gateway_proc.memory_info().rss)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of this process (all threads), the gateway and MinIO."""

        def busy(proc: psutil.Process) -> float:
            times = proc.cpu_times()
            return float(times.user + times.system)

        return {
            "client": time.process_time(),
            "gateway": busy(self.gateway_proc),
            "minio": busy(self.minio_proc),
        }


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def http_client(url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers=AUTH, timeout=HTTP_TIMEOUT, trust_env=False, **kwargs)


def object_path(key: str) -> str:
    return f"/files/{BUCKET}/{key}"


def open_env(root: Path, params: Params, stack: contextlib.ExitStack) -> Env:
    server = MinioServer(root / "minio-data").start()
    stack.callback(server.close)
    settings = {"minio": dict(server.config()["minio"]), "default_bucket": BUCKET}
    gateway = stack.enter_context(GatewayProcess(settings))
    direct = lib.raw_client(server)
    http = stack.enter_context(http_client(gateway.url))
    pool = gateway_pool(gateway.url)
    stack.callback(pool.close)
    large_file = root / "large.bin"
    rss_file = root / "rss.bin"
    lib.write_random_file(large_file, params.large_size)
    lib.write_random_file(rss_file, params.rss_size)
    return Env(root, server, gateway, direct, http, pool, large_file, rss_file)


def small_key(i: int) -> str:
    return f"seed/small4k/{i % SMALL_OBJECTS}.bin"


def seed_objects(env: Env) -> None:
    """Objects both sides read, written once by raw minio-py."""
    for i in range(SMALL_OBJECTS):
        payload = i.to_bytes(4, "big") * (SMALL_SIZE // 4)
        env.direct.put_object(BUCKET, small_key(i), io.BytesIO(payload), len(payload))
    env.direct.fput_object(BUCKET, LARGE_KEY, str(env.large_file))
    env.direct.fput_object(BUCKET, RSS_KEY, str(env.rss_file))
    # Prime the gateway (imports, first connections) before anything is measured.
    for i in range(CONCURRENCY):
        response = env.http.get(object_path(small_key(i)))
        response.raise_for_status()


def loaded_extensions(pid: int) -> str:
    """Which of uvicorn's optional C accelerators the gateway process has mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    found = [name for name in ("httptools", "uvloop") if f"/{name}/" in maps]
    return ", ".join(found) if found else "none (h11 + asyncio)"


def print_header(params: Params, quick: bool, env: Env) -> None:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    lib.emit("refstore gateway benchmark: gateway vs raw minio-py on one local MinIO server")
    lib.emit("=" * 78)
    lib.emit(f"date            {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    lib.emit(f"mode            {'quick (smoke run)' if quick else 'full'}")
    lib.emit(
        f"machine         {psutil.cpu_count()} CPUs ({lib.cpu_model()}), {platform.platform()}"
    )
    lib.emit(f"python          {platform.python_version()} ({platform.python_implementation()})")
    lib.emit(f"minio-py        {version('minio')}, urllib3 {version('urllib3')}")
    lib.emit(
        f"gateway stack   uvicorn {version('uvicorn')}, fastapi {version('fastapi')}, "
        f"starlette {version('starlette')}, python-multipart {version('python-multipart')}"
    )
    accelerators = loaded_extensions(env.gateway.pid)
    lib.emit(f"                C accelerators loaded by the gateway: {accelerators}")
    lib.emit(f"client          urllib3 {version('urllib3')} for downloads (the HTTP library of")
    lib.emit(
        f"                minio-py), httpx {version('httpx')} (h11) for uploads and reference rows"
    )
    lib.emit(f"MinIO server    {lib.minio_server_version()}")
    lib.emit(f"refstore        git {lib.git_revision()}")
    lib.emit(f"temp dir        {env.root} (MinIO data and source files, single drive)")
    lib.emit("gateway         `refstore serve` (1 worker, default settings: storage_threads 32,")
    lib.emit("                log level info = one JSON access-log line per request to a file)")
    lib.emit("direct          minio.Minio(endpoint, key, secret, secure=False), defaults")
    lib.emit("parameters")
    lib.emit(
        f"  throughput    {lib.fmt_size(params.large_size)} objects; per side and round: "
        f"downloads x{params.download_reps}, uploads x{params.upload_reps} of each kind;"
    )
    lib.emit(f"                {params.rounds} rounds")
    lib.emit(
        f"  small GETs    {lib.fmt_size(SMALL_SIZE)} objects x{SMALL_OBJECTS}, concurrency "
        f"{CONCURRENCY}, {params.ops_seconds:g} s per side and round, {params.ops_rounds} rounds"
    )
    lib.emit("  interleaving  sides alternate order each round; each timed batch is preceded")
    lib.emit("                by an untimed warm-up of the same side")
    lib.emit(
        f"  RSS object    {lib.fmt_size(params.rss_size)}, gateway RSS sampled every "
        f"{SAMPLE_INTERVAL * 1000:.0f} ms"
    )
    lib.emit(
        f"  load          {LOAD_UPLOADS} uploads + {LOAD_DOWNLOADS} downloads of "
        f"{lib.fmt_size(params.load_size)} (curl, restarted as they finish),"
    )
    lib.emit(
        f"                {params.load_windows} x {params.load_seconds:g} s; /health and a control "
        f"server probed every {HEALTH_INTERVAL * 1000:.0f} ms"
    )
    lib.emit("  run order     3 (fresh gateway), 1, 2, 4; printed in numeric order")
    lib.emit("  units         MB = 10^6 bytes; MiB = 2^20 bytes")
    lib.emit()


# -- 1. large-object throughput ----------------------------------------------------------

Op = Callable[[int], int]
"""One repetition of a transfer: takes the repetition index, returns bytes moved."""


@dataclass(frozen=True)
class Sample:
    rate: float
    """MB/s (throughput) or ops/s (small GETs)."""
    cpu: dict[str, float]
    """CPU ms per MB or per op, by process: client, gateway, minio."""


@dataclass
class Pairing:
    """One comparison: the same work done through the gateway and directly."""

    name: str
    target: float
    sides: dict[str, Any]
    reps: int = 1
    """Repetitions per timed batch (throughput); small GET batches are timed instead."""
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples = {side: [] for side in self.sides}

    @property
    def references(self) -> list[str]:
        """Sides shown for diagnosis, beside the gateway/direct comparison."""
        return [side for side in self.sides if side not in ("gateway", "direct")]

    def rates(self, side: str) -> list[float]:
        return [sample.rate for sample in self.samples[side]]

    def ratios(self, side: str = "gateway") -> list[float]:
        pairs = zip(self.rates(side), self.rates("direct"), strict=True)
        return [ours / direct for ours, direct in pairs]

    def ratio(self, side: str = "gateway") -> float:
        return statistics.median(self.ratios(side))

    def passed(self) -> bool:
        return self.ratio() >= self.target

    def cpu(self, side: str, process: str) -> float:
        return statistics.median(sample.cpu[process] for sample in self.samples[side])

    def ordered(self, round_index: int) -> list[tuple[str, Any]]:
        sides = list(self.sides.items())
        return sides[::-1] if round_index % 2 else sides


HTTPX_SIDE = "gateway, httpx client"


def gateway_pool(url: str) -> urllib3.HTTPConnectionPool:
    """Keep-alive connections to the gateway through urllib3, as minio-py reaches MinIO."""
    host, port = url.removeprefix("http://").split(":")
    return urllib3.HTTPConnectionPool(host, int(port), maxsize=CONCURRENCY, headers=AUTH)


def drain_gateway(pool: urllib3.HTTPConnectionPool, key: str) -> int:
    """Stream a GET in 1 MiB reads (as the direct side's get_object().stream(1 MiB))."""
    response = pool.request("GET", object_path(key), preload_content=False)
    total = 0
    try:
        if response.status != 200:
            raise RuntimeError(f"GET {key}: HTTP {response.status}")
        for chunk in response.stream(lib.CHUNK):
            total += len(chunk)
    finally:
        response.release_conn()
    return total


def drain_gateway_httpx(http: httpx.Client, key: str) -> int:
    total = 0
    with http.stream("GET", object_path(key)) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            total += len(chunk)
    return total


def uploaded_size(response: httpx.Response) -> int:
    response.raise_for_status()
    return int(response.json()["size"])


def put_gateway(http: httpx.Client, source: Path, key: str) -> int:
    with source.open("rb") as body:
        headers = {"Content-Type": "application/octet-stream"}
        return uploaded_size(http.put(object_path(key), content=body, headers=headers))


def post_gateway(http: httpx.Client, source: Path, path: str) -> int:
    with source.open("rb") as body:
        files = {"file": (source.name, body, "application/octet-stream")}
        fields = {"logic_bucket": BUCKET, "path": path}
        return uploaded_size(http.post("/upload", data=fields, files=files))


def throughput_pairings(env: Env, params: Params) -> list[Pairing]:
    size, source = params.large_size, env.large_file

    def direct_upload(i: int) -> int:
        env.direct.fput_object(BUCKET, "direct/large.bin", str(source))
        return size

    download = Pairing(
        "download (GET)",
        TARGET_DOWNLOAD,
        {
            "gateway": lambda i: lib.expect(drain_gateway(env.pool, LARGE_KEY), size, "GET"),
            "direct": lambda i: lib.expect(lib.drain_raw(env.direct, LARGE_KEY), size, "get"),
            HTTPX_SIDE: lambda i: lib.expect(drain_gateway_httpx(env.http, LARGE_KEY), size, "GET"),
        },
        params.download_reps,
    )
    put = Pairing(
        "upload raw PUT",
        TARGET_PUT,
        {
            "gateway": lambda i: lib.expect(
                put_gateway(env.http, source, "gw/put.bin"), size, "PUT"
            ),
            "direct": direct_upload,
        },
        params.upload_reps,
    )
    post = Pairing(
        "upload multipart",
        TARGET_MULTIPART,
        {
            "gateway": lambda i: lib.expect(
                post_gateway(env.http, source, "gw/post"), size, "POST"
            ),
            "direct": direct_upload,
        },
        params.upload_reps,
    )
    return [download, put, post]


def timed_transfers(env: Env, op: Op, reps: int) -> Sample:
    before, start = env.cpu(), time.perf_counter()
    nbytes = sum(op(i) for i in range(reps))
    seconds = time.perf_counter() - start
    per_mb = nbytes / MB
    used = cpu_delta(before, env.cpu())
    return Sample(lib.mbps(nbytes, seconds), {k: v * 1000 / per_mb for k, v in used.items()})


def run_throughput(env: Env, params: Params, pairings: list[Pairing]) -> None:
    for r in range(params.rounds):
        start = time.perf_counter()
        for pairing in pairings:
            sides = pairing.ordered(r)
            for _side, op in sides:
                op(0)
            for side, op in sides:
                pairing.samples[side].append(timed_transfers(env, op, pairing.reps))
        lib.purge_minio_trash(env.server)
        progress(f"throughput round {r + 1}/{params.rounds}", start)


def progress(what: str, start: float) -> None:
    print(f"  {what} done in {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)


def print_throughput(pairings: list[Pairing], size: int) -> None:
    lib.emit(
        f"1. {lib.fmt_size(size)} object throughput (MB/s, median of rounds; min-max in brackets)"
    )
    lib.emit("-" * 78)
    lib.emit(
        f"{'operation':<18}{'gateway':>18}{'direct':>18}{'ratio':>7}{'IQR':>11}"
        f"{'target':>8}  verdict"
    )
    for pairing in pairings:
        gateway, direct = pairing.rates("gateway"), pairing.rates("direct")
        lib.emit(
            f"{pairing.name:<18}"
            f"{statistics.median(gateway):>8.1f} [{lib.spread(gateway):>7}]"
            f"{statistics.median(direct):>8.1f} [{lib.spread(direct):>7}]"
            f"{pairing.ratio():>7.3f}{lib.quartiles(pairing.ratios()):>11}"
            f"{'>= ' + format(pairing.target, '.1f'):>8}  {lib.verdict(pairing.passed())}"
        )
        for side in pairing.references:
            rates = pairing.rates(side)
            lib.emit(
                f"  {side:<16}{statistics.median(rates):>8.1f} [{lib.spread(rates):>7}]{'':>18}"
                f"{pairing.ratio(side):>7.3f}{lib.quartiles(pairing.ratios(side)):>11}"
                f"{'':>8}  (reference)"
            )
    lib.emit("ratio = median over rounds of gateway/direct within the round; IQR = interquartile")
    lib.emit("  range of those per-round ratios.")
    lib.emit("gateway: GET /files/{bucket}/{key} streamed with urllib3 in 1 MiB reads, as the")
    lib.emit("  direct side's minio-py does (same HTTP library: the ratio measures the gateway,")
    lib.emit(f"  not the client); {HTTPX_SIDE}: the same GET with httpx iter_raw;")
    lib.emit("  PUT /files/{bucket}/{key} with the open file as body (Content-Length known);")
    lib.emit(
        "  POST /upload, httpx files= with the open file (fields first, Content-Length known)."
    )
    lib.emit("direct: get_object().stream(1 MiB) and fput_object (the same upload for both")
    lib.emit("  upload rows, each paired with its own gateway batch in the same round).")
    lib.emit()
    print_cpu(pairings, "MB moved", (HTTPX_SIDE,))


def print_cpu(pairings: list[Pairing], unit: str, extra_sides: tuple[str, ...] = ()) -> None:
    lib.emit(f"   CPU per {unit} (ms, median of rounds), by process")
    lib.emit(f"{'operation':<18}{'side':<22}{'client':>8}{'gateway':>9}{'MinIO':>8}{'total':>8}")
    for pairing in pairings:
        for side in ("gateway", "direct", *extra_sides):
            if side not in pairing.samples:
                continue
            cpu = {p: pairing.cpu(side, p) for p in ("client", "gateway", "minio")}
            gateway = f"{cpu['gateway']:>9.3f}" if side != "direct" else f"{'-':>9}"
            total = sum(cpu.values()) if side != "direct" else cpu["client"] + cpu["minio"]
            lib.emit(
                f"{pairing.name:<18}{side:<22}{cpu['client']:>8.3f}{gateway}"
                f"{cpu['minio']:>8.3f}{total:>8.3f}"
            )
    lib.emit("   client = this process (incl. minio-py's upload threads). Client, gateway and")
    lib.emit(
        f"   MinIO share the machine's {psutil.cpu_count()} CPUs, so when CPU-bound a higher total"
    )
    lib.emit("   means fewer MB or requests per second.")
    lib.emit()


# -- 2. small GETs at concurrency 16 -------------------------------------------------------


@dataclass
class OpsBatch:
    ops: int
    seconds: float
    latencies: list[float]


def threaded(worker: Callable[[int, float], list[float]], seconds: float) -> OpsBatch:
    """Run ``worker(index, deadline)`` in CONCURRENCY threads; each returns its latencies."""
    start = time.perf_counter()
    deadline = start + seconds

    def run(w: int) -> tuple[list[float], float]:
        return worker(w, deadline), time.perf_counter()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return collect(list(pool.map(run, range(CONCURRENCY))), start)


def collect(results: list[tuple[list[float], float]], start: float) -> OpsBatch:
    latencies = [lat for worker_latencies, _ in results for lat in worker_latencies]
    end = max(finished for _, finished in results)
    return OpsBatch(len(latencies), end - start, latencies)


def direct_ops(clients: list[Minio], seconds: float) -> OpsBatch:
    """CONCURRENCY threads, each with its own default Minio client, GET 4 KiB objects."""

    def worker(w: int, deadline: float) -> list[float]:
        client, latencies, i = clients[w], [], w
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            response = client.get_object(BUCKET, small_key(i))
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
            latencies.append(time.perf_counter() - t0)
            lib.expect(len(data), SMALL_SIZE, "direct small get")
            i += CONCURRENCY
        return latencies

    return threaded(worker, seconds)


def gateway_ops(pool: urllib3.HTTPConnectionPool, seconds: float) -> OpsBatch:
    """CONCURRENCY threads sharing one urllib3 pool (CONCURRENCY keep-alive connections)."""

    def worker(w: int, deadline: float) -> list[float]:
        latencies, i = [], w
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            response = pool.request("GET", object_path(small_key(i)))
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                raise RuntimeError(f"gateway small GET: HTTP {response.status}")
            lib.expect(len(response.data), SMALL_SIZE, "gateway small GET")
            i += CONCURRENCY
        return latencies

    return threaded(worker, seconds)


def gateway_httpx_ops(client: httpx.Client, seconds: float) -> OpsBatch:
    """CONCURRENCY threads sharing one httpx.Client (CONCURRENCY keep-alive connections)."""

    def worker(w: int, deadline: float) -> list[float]:
        latencies, i = [], w
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            response = client.get(object_path(small_key(i)))
            latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            lib.expect(len(response.content), SMALL_SIZE, "gateway small GET")
            i += CONCURRENCY
        return latencies

    return threaded(worker, seconds)


async def _raw_get_loop(host: str, port: int, first: int, deadline: float) -> list[float]:
    """One keep-alive connection sending bare HTTP/1.1 GETs and reading exact bodies."""
    reader, writer = await asyncio.open_connection(host, port)
    latencies, i = [], first
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(
                f"GET {object_path(small_key(i))} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"raw GET failed: {head[:200]!r}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            lib.expect(len(body), SMALL_SIZE, "raw small GET")
            i += CONCURRENCY
    finally:
        writer.close()
    return latencies


def raw_socket_ops(url: str, seconds: float) -> OpsBatch:
    """CONCURRENCY asyncio connections of a minimal HTTP/1.1 client (reference side)."""
    host, port = url.removeprefix("http://").split(":")

    async def run() -> OpsBatch:
        start = time.perf_counter()
        deadline = start + seconds

        async def one(w: int) -> tuple[list[float], float]:
            return await _raw_get_loop(host, int(port), w, deadline), time.perf_counter()

        return collect(list(await asyncio.gather(*(one(w) for w in range(CONCURRENCY)))), start)

    return asyncio.run(run())


RAW_SIDE = "gateway, bare client"


@dataclass
class OpsResult:
    pairing: Pairing
    latencies: dict[str, list[float]]


def run_ops(env: Env, params: Params) -> OpsResult:
    clients = [lib.raw_client(env.server) for _ in range(CONCURRENCY)]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    sides: dict[str, Callable[[float], OpsBatch]] = {}
    with http_client(env.gateway.url, limits=limits) as client:
        sides["gateway"] = lambda s: gateway_ops(env.pool, s)
        sides["direct"] = lambda s: direct_ops(clients, s)
        sides[HTTPX_SIDE] = lambda s: gateway_httpx_ops(client, s)
        sides[RAW_SIDE] = lambda s: raw_socket_ops(env.gateway.url, s)
        pairing = Pairing(f"{lib.fmt_size(SMALL_SIZE)} GET c={CONCURRENCY}", TARGET_OPS, sides)
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(params.ops_rounds):
            start = time.perf_counter()
            for side, run in pairing.ordered(r):
                run(params.ops_warmup_seconds)
                before = env.cpu()
                batch = run(params.ops_seconds)
                used = cpu_delta(before, env.cpu())
                per_op = {k: v * 1000 / batch.ops for k, v in used.items()}
                pairing.samples[side].append(Sample(batch.ops / batch.seconds, per_op))
                latencies[side].extend(batch.latencies)
            progress(f"small GET round {r + 1}/{params.ops_rounds}", start)
    return OpsResult(pairing, latencies)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def print_ops(result: OpsResult) -> None:
    pairing = result.pairing
    lib.emit(
        f"2. {lib.fmt_size(SMALL_SIZE)} GETs at concurrency {CONCURRENCY} "
        "(ops/s median of rounds; latency over all requests)"
    )
    lib.emit("-" * 78)
    lib.emit(
        f"{'side':<22}{'ops/s':>7}{'min-max':>11}{'p50 ms':>8}{'p99 ms':>8}{'requests':>9}"
        f"{'ratio':>7}  verdict"
    )
    for side in pairing.sides:
        rates, lat = pairing.rates(side), result.latencies[side]
        ratio, mark = "", ""
        if side == "gateway":
            ratio, mark = f"{pairing.ratio():.3f}", lib.verdict(pairing.passed())
        elif side != "direct":
            ratio, mark = f"{pairing.ratio(side):.3f}", "(reference)"
        lib.emit(
            f"{side:<22}{statistics.median(rates):>7.0f}{lib.spread(rates):>11}"
            f"{percentile(lat, 50) * 1000:>8.2f}{percentile(lat, 99) * 1000:>8.2f}{len(lat):>9}"
            f"{ratio:>7}  {mark}".rstrip()
        )
    lib.emit(
        f"ratio = median over rounds of (side ops/s) / (direct ops/s); target >= "
        f"{pairing.target:.1f}; IQR {lib.quartiles(pairing.ratios())}."
    )
    lib.emit(f"gateway: {CONCURRENCY} threads sharing one urllib3 pool ({CONCURRENCY} keep-alive")
    lib.emit("  connections), GET /files/{bucket}/{key}: the HTTP library minio-py uses on the")
    lib.emit("  direct side, so the ratio compares the servers, not the clients.")
    lib.emit(f"{HTTPX_SIDE}: the same with one shared httpx.Client (threads rather than")
    lib.emit("  AsyncClient, which costs more client CPU on this machine).")
    lib.emit(f"direct: {CONCURRENCY} threads, each with its own default minio.Minio client (one")
    lib.emit("  shared client's pool keeps only 10 connections), get_object + read.")
    lib.emit(f"{RAW_SIDE}: {CONCURRENCY} asyncio connections writing bare HTTP/1.1 GETs and")
    lib.emit("  reading Content-Length bytes (~0.05 ms client CPU per request): what the gateway")
    lib.emit("  serves when the client costs almost nothing. Not a target; for diagnosis.")
    lib.emit("All sides read the same pre-uploaded objects in the same order; side order")
    lib.emit("  reverses every round.")
    lib.emit()
    print_cpu([pairing], "request", (HTTPX_SIDE, RAW_SIDE))


# -- 3. gateway RSS while streaming 1 GiB -------------------------------------------------


class RssSampler:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, proc: psutil.Process, interval: float = SAMPLE_INTERVAL) -> None:
        self.proc = proc
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self.proc.memory_info().rss))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, int(self.proc.memory_info().rss))


def vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class RssResult:
    name: str
    baseline: int
    peak: int
    hwm: int | None
    samples: int
    seconds: float
    nbytes: int

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def measure_rss(env: Env, name: str, transfer: Callable[[], int]) -> RssResult:
    time.sleep(0.5)  # let the gateway settle
    baseline = env.gateway_rss()
    hwm_reset = reset_hwm(env.gateway.pid)
    start = time.perf_counter()
    with RssSampler(env.gateway_proc) as sampler:
        nbytes = transfer()
    seconds = time.perf_counter() - start
    hwm = vm_hwm(env.gateway.pid) if hwm_reset else None
    return RssResult(name, baseline, sampler.peak, hwm, sampler.samples, seconds, nbytes)


def run_rss(env: Env, params: Params) -> list[RssResult]:
    size, source = params.rss_size, env.rss_file
    cases: list[tuple[str, Callable[[], int]]] = [
        ("upload raw PUT", lambda: put_gateway(env.http, source, "gw/rss.bin")),
        ("download GET", lambda: drain_gateway(env.pool, RSS_KEY)),
        ("upload multipart", lambda: post_gateway(env.http, source, "gw/rss-post")),
    ]
    results = []
    for name, transfer in cases:
        result = measure_rss(env, name, transfer)
        lib.expect(result.nbytes, size, f"RSS {name}")
        lib.purge_minio_trash(env.server)
        print(f"  RSS {name}: +{result.growth / MiB:.1f} MiB", file=sys.stderr, flush=True)
        results.append(result)
    return results


def print_rss(results: list[RssResult], size: int, start_rss: int) -> None:
    lib.emit(
        f"3. Gateway RSS growth streaming a {lib.fmt_size(size)} object (sampled every "
        f"{SAMPLE_INTERVAL * 1000:.0f} ms)"
    )
    lib.emit("-" * 78)
    lib.emit(
        f"{'transfer':<18}{'before':>10}{'peak':>10}{'growth':>10}{'HWM growth':>12}"
        f"{'samples':>9}{'MB/s':>8}  verdict"
    )
    for r in results:
        hwm = f"{(r.hwm - r.baseline) / MiB:>9.1f}MiB" if r.hwm is not None else f"{'-':>12}"
        required = r.name != "upload multipart"
        mark = lib.verdict(r.growth <= TARGET_RSS) if required else "(extra)"
        lib.emit(
            f"{r.name:<18}{r.baseline / MiB:>7.1f}MiB{r.peak / MiB:>7.1f}MiB"
            f"{r.growth / MiB:>7.1f}MiB{hwm}{r.samples:>9}"
            f"{lib.mbps(r.nbytes, r.seconds):>8.1f}  {mark}"
        )
    lib.emit(
        f"target: growth <= {lib.fmt_size(TARGET_RSS)} each way. Run first, on the fresh gateway"
    )
    lib.emit(f"  (RSS {start_rss / MiB:.1f} MiB at start, after one small GET per connection), so")
    lib.emit("  no memory kept from earlier transfers hides growth.")
    lib.emit("before = gateway RSS right before the transfer; peak = highest psutil sample;")
    lib.emit("  HWM growth = VmHWM (reset with clear_refs=5 before the transfer) - before, an")
    lib.emit("  exact peak to check the sampling against. Clients as in section 1.")
    lib.emit("  upload multipart is not a target; shown because it takes a different path.")
    lib.emit()


# -- 4. /health latency under load -------------------------------------------------------------


@dataclass
class LoadStats:
    finished: int = 0
    failed: int = 0
    nbytes: int = 0
    in_flight: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def curl_command(env: Env, upload: bool, slot: int, source: Path) -> list[str]:
    command = [
        "curl", "-sS", "--fail", "--noproxy", "*", "-o", "/dev/null",
        "-w", "%{size_upload} %{size_download}",
        "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
    ]  # fmt: skip
    if upload:
        url = f"{env.gateway.url}{object_path(f'gw/load/{slot}.bin')}"
        return [*command, "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                "-T", str(source), url]  # fmt: skip
    return [*command, f"{env.gateway.url}{object_path(LOAD_KEY)}"]


LOAD_KEY = "seed/load.bin"


def load_worker(command: list[str], stats: LoadStats, stop: threading.Event) -> None:
    while not stop.is_set():
        with stats.lock:
            stats.in_flight += 1
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        with stats.lock:
            stats.in_flight -= 1
            if result.returncode == 0:
                stats.finished += 1
                stats.nbytes += sum(int(n) for n in result.stdout.split())
            else:
                stats.failed += 1
                stats.errors.append(result.stderr.strip())


@dataclass
class Window:
    """One load window: client-side /health latencies and what the load achieved."""

    latencies: list[float]
    control: list[float]
    full_load: int
    seconds: float
    stats: LoadStats
    cpu: dict[str, float]


@dataclass
class HealthResult:
    idle: list[float] = field(default_factory=list)
    idle_control: list[float] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    in_app: dict[str, list[float]] = field(default_factory=dict)
    skipped: str = ""

    @property
    def loaded(self) -> list[float]:
        return [lat for window in self.windows for lat in window.latencies]

    @property
    def loaded_control(self) -> list[float]:
        return [lat for window in self.windows for lat in window.control]

    def window_p99s(self) -> list[float]:
        return [percentile(window.latencies, 99) for window in self.windows]

    def verdict_p99(self) -> float:
        return statistics.median(self.window_p99s())


CONTROL_SERVER = r"""
import asyncio, sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""
"""A control: the smallest asyncio HTTP server, in its own process with nothing else to
do. Its latency under the same load is what the machine's CPU scheduling alone costs."""


@contextlib.contextmanager
def control_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROL_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the control HTTP server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


class Prober:
    """Sequential GETs, alternating the gateway's /health (tagged with X-Request-ID) and the
    control server, each on one keep-alive connection."""

    def __init__(self, url: str, control_url: str) -> None:
        self.http = http_client(url)
        self.control = httpx.Client(base_url=control_url, trust_env=False)
        self.count = 0

    def close(self) -> None:
        self.http.close()
        self.control.close()

    def probe(self, tag: str) -> float:
        self.count += 1
        headers = {"X-Request-ID": f"bench-{tag}-{self.count}"}
        start = time.perf_counter()
        response = self.http.get("/health", headers=headers)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        return elapsed

    def probe_control(self) -> float:
        start = time.perf_counter()
        response = self.control.get("/")
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        return elapsed

    def run(
        self, tag: str, seconds: float, sample: Callable[[], None] = lambda: None
    ) -> tuple[list[float], list[float]]:
        """(gateway latencies, control latencies) probed for ``seconds``."""
        gateway, control = [], []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            sample()
            gateway.append(self.probe(tag))
            control.append(self.probe_control())
            time.sleep(HEALTH_INTERVAL)
        return gateway, control


def loaded_window(env: Env, params: Params, prober: Prober, source: Path) -> Window:
    stats, stop = LoadStats(), threading.Event()
    slots = [True] * LOAD_UPLOADS + [False] * LOAD_DOWNLOADS
    workers = [
        threading.Thread(
            target=load_worker, args=(curl_command(env, up, slot, source), stats, stop), daemon=True
        )
        for slot, up in enumerate(slots)
    ]
    for worker in workers:
        worker.start()
    while stats.in_flight < len(slots):
        time.sleep(0.01)
    time.sleep(0.5)  # let every transfer reach full speed
    full = 0

    def count_full() -> None:
        nonlocal full
        full += stats.in_flight == len(slots)

    before, start = env.cpu(), time.perf_counter()
    moved_before = stats.nbytes
    latencies, control = prober.run("load", params.load_seconds, count_full)
    seconds = time.perf_counter() - start
    used = cpu_delta(before, env.cpu())
    stop.set()
    for worker in workers:
        worker.join()
    if stats.failed:
        raise RuntimeError(f"{stats.failed} load transfers failed: {stats.errors[:3]}")
    stats.nbytes -= moved_before  # count only transfers that finished inside the window
    cpu = {k: v / seconds for k, v in used.items()}
    return Window(latencies, control, full, seconds, stats, cpu)


def in_app_durations(env: Env) -> dict[str, list[float]]:
    """/health durations measured inside the gateway (its access log), by probe tag."""
    found: dict[str, list[float]] = {"idle": [], "load": []}
    for line in env.gateway.log().splitlines():
        if not line.startswith("{") or '"bench-' not in line:
            continue
        entry = json.loads(line)
        tag = str(entry.get("request_id", "")).split("-")[1:2]
        if tag and tag[0] in found:
            found[tag[0]].append(float(entry["duration_ms"]) / 1000)
    return found


def run_health(env: Env, params: Params) -> HealthResult:
    result = HealthResult()
    with control_server() as control_url:
        prober = Prober(env.gateway.url, control_url)
        try:
            prober.run("warmup", 0.3)
            if shutil.which("curl") is None:
                result.idle, result.idle_control = prober.run("idle", params.idle_seconds)
                result.skipped = "curl not found"
                return result
            source = env.root / "load.bin"
            lib.write_random_file(source, params.load_size)
            env.direct.fput_object(BUCKET, LOAD_KEY, str(source))
            for w in range(params.load_windows):
                start = time.perf_counter()
                idle, idle_control = prober.run("idle", params.idle_seconds)
                result.idle.extend(idle)
                result.idle_control.extend(idle_control)
                result.windows.append(loaded_window(env, params, prober, source))
                lib.purge_minio_trash(env.server)
                progress(f"/health window {w + 1}/{params.load_windows}", start)
            time.sleep(0.5)  # the access-log line is written just after the response
            result.in_app = in_app_durations(env)
            source.unlink()
        finally:
            prober.close()
    return result


def latency_row(name: str, values: list[float], in_app: list[float], mark: str) -> str:
    p = {q: percentile(values, q) * 1000 for q in (50, 90, 99)}
    app = f"{percentile(in_app, 99) * 1000:>9.2f}" if in_app else f"{'-':>9}"
    return (
        f"{name:<22}{len(values):>7}{p[50]:>8.2f}{p[90]:>8.2f}{p[99]:>8.2f}"
        f"{max(values) * 1000:>9.2f}{app}  {mark}"
    )


def print_health(result: HealthResult, params: Params) -> None:
    transfers = LOAD_UPLOADS + LOAD_DOWNLOADS
    lib.emit(f"4. /health latency (ms) at idle and while {transfers} large transfers run")
    lib.emit("-" * 78)
    lib.emit(
        f"{'condition':<22}{'probes':>7}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}"
        f"{'in-app':>9}  verdict"
    )
    lib.emit(latency_row("idle", result.idle, result.in_app.get("idle", []), "(reference)"))
    lib.emit(latency_row("idle, control server", result.idle_control, [], "(reference)"))
    if result.skipped:
        lib.emit(f"under load: skipped ({result.skipped})")
        lib.emit()
        return
    passed = result.verdict_p99() < TARGET_HEALTH_P99
    lib.emit(
        latency_row(
            f"{LOAD_UPLOADS} PUT + {LOAD_DOWNLOADS} GET", result.loaded,
            result.in_app.get("load", []), "(all windows pooled)",
        )
    )  # fmt: skip
    lib.emit(latency_row("loaded, control server", result.loaded_control, [], "(reference)"))
    for i, window in enumerate(result.windows):
        load, rate = window.stats, window.stats.nbytes / MB / window.seconds
        lib.emit(
            f"  window {i + 1}: p99 {percentile(window.latencies, 99) * 1000:.2f} ms, control "
            f"{percentile(window.control, 99) * 1000:.2f} ms; all {transfers} in flight at "
            f"{window.full_load / len(window.latencies):.0%} of probes;"
        )
        lib.emit(
            f"            {load.finished} transfers done, ~{rate:.0f} MB/s; CPU (of one core): "
            f"gateway {window.cpu['gateway']:.0%}, MinIO {window.cpu['minio']:.0%}, "
            f"client {window.cpu['client']:.0%}"
        )
    lib.emit(
        f"median of window p99s {result.verdict_p99() * 1000:.2f} ms; target < "
        f"{TARGET_HEALTH_P99 * 1000:.0f} ms  {lib.verdict(passed)}"
    )
    lib.emit(
        f"{params.load_windows} windows of {params.load_seconds:g} s under load, each after "
        f"{params.idle_seconds:g} s of idle probing; the verdict uses the median"
    )
    lib.emit("  of the windows' p99s so one burst of other jobs on the shared machine does not")
    lib.emit("  decide it (the pooled p99 is shown above).")
    lib.emit(
        f"load: {LOAD_UPLOADS} raw-body PUTs and {LOAD_DOWNLOADS} GETs of "
        f"{lib.fmt_size(params.load_size)} through the gateway by curl (a C client,"
    )
    lib.emit("  so the gateway and MinIO, not this process, limit the load), each restarted as")
    lib.emit("  it finishes; MB/s counts transfers that finished inside the window.")
    lib.emit("probes: sequential GETs from this process (client; no other busy thread), each on a")
    lib.emit("  keep-alive httpx.Client, alternating the gateway's /health and the control")
    lib.emit(
        f"  server, then a {HEALTH_INTERVAL * 1000:.0f} ms pause. in-app = p99 of the duration the"
    )
    lib.emit("  gateway logged for the same requests (middleware to last byte); the rest is")
    lib.emit("  waiting for the event loop, the GIL or a CPU.")
    lib.emit("control server: a bare asyncio HTTP server in its own process, idle but for these")
    lib.emit("  probes; its latency under load is what CPU scheduling alone costs on this machine.")
    lib.emit()


# -- summary -------------------------------------------------------------------------------------


def print_summary(
    pairings: list[Pairing], ops: OpsResult, rss: list[RssResult], health: HealthResult, env: Env
) -> None:
    lib.emit("5. Summary")
    lib.emit("-" * 78)
    for pairing in [*pairings, ops.pairing]:
        lib.emit(
            f"{pairing.name:<26} ratio {pairing.ratio():.3f} (target >= {pairing.target:.1f})"
            f"  {lib.verdict(pairing.passed())}"
        )
    for r in rss:
        if r.name != "upload multipart":
            lib.emit(
                f"{'RSS ' + r.name:<26} +{r.growth / MiB:.1f} MiB (target <= "
                f"{lib.fmt_size(TARGET_RSS)})  {lib.verdict(r.growth <= TARGET_RSS)}"
            )
    if health.skipped:
        lib.emit(f"{'/health p99 under load':<26} skipped ({health.skipped})")
    else:
        p99 = health.verdict_p99()
        lib.emit(
            f"{'/health p99 under load':<26} {p99 * 1000:.1f} ms (target < "
            f"{TARGET_HEALTH_P99 * 1000:.0f} ms)  {lib.verdict(p99 < TARGET_HEALTH_P99)}"
        )
    hwm = vm_hwm(env.gateway.pid)
    peak = f"; highest since section 3 (VmHWM) {hwm / MiB:.1f} MiB" if hwm else ""
    lib.emit(
        f"gateway RSS: {env.gateway_start_rss / MiB:.1f} MiB at start, "
        f"{env.gateway_rss() / MiB:.1f} MiB at the end{peak}"
    )


# -- main ------------------------------------------------------------------------------------------


def benchmark(params: Params, quick: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="refstore-gwbench-"))
    try:
        with contextlib.ExitStack() as stack:
            print("preparing data and servers...", file=sys.stderr, flush=True)
            env = open_env(root, params, stack)
            seed_objects(env)
            env.gateway_start_rss = env.gateway_rss()
            print_header(params, quick, env)
            rss = run_rss(env, params)  # first, on the fresh gateway; printed third
            pairings = throughput_pairings(env, params)
            run_throughput(env, params, pairings)
            print_throughput(pairings, params.large_size)
            ops = run_ops(env, params)
            print_ops(ops)
            print_rss(rss, params.rss_size, env.gateway_start_rss)
            health = run_health(env, params)
            print_health(health, params)
            print_summary(pairings, ops, rss, health, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchmark(Params.for_run(args.quick), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
