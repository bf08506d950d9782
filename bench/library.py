"""Benchmark RefStore against raw minio-py on one local MinIO server.

Run by hand from the repository root::

    python bench/library.py [--quick]

Prints a plain-text report: upload/download throughput of RefStore and of a
default ``minio.Minio`` client (interleaved rounds, medians, ratio), and the
peak RSS growth of streaming a large object up and down, each case in a fresh
subprocess.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, cast

REPO = Path(__file__).resolve().parent.parent
for _entry in (REPO / "tests", REPO):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

from minio import Minio  # noqa: E402
from servers import MINIO_VERSION, MinioServer, ensure_minio  # noqa: E402

from refstore import RefStore  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1_000_000
CHUNK = MiB
RAW_PART_SIZE_UNKNOWN_LENGTH = 8 * MiB
BUCKET = "bench"
THROUGHPUT_TARGET = 0.95
RSS_TARGET = 64 * MiB
SMALL_SEEDS = 50

Op = Callable[[int], int]
"""One repetition of a transfer: takes the repetition index, returns bytes moved."""

Transfer = Callable[[], int]
"""One measured transfer in an RSS subprocess; returns bytes moved."""


@dataclass(frozen=True)
class Params:
    """Sizes, and repetitions per side per round for each case."""

    small_size: int
    small_upload_reps: int
    small_download_reps: int
    large_size: int
    large_upload_reps: int
    large_download_reps: int
    rounds: int
    rss_size: int

    @classmethod
    def for_run(cls, quick: bool) -> Params:
        if quick:
            return cls(MiB, 10, 20, 32 * MiB, 1, 2, 2, 128 * MiB)
        return cls(MiB, 50, 200, 256 * MiB, 2, 6, 20, GiB)


@dataclass
class Workspace:
    """Server, clients and source data shared by the throughput cases."""

    root: Path
    server: MinioServer
    store: RefStore
    client: Minio
    small_data: bytes
    large_file: Path
    rss_file: Path

    @property
    def out_dir(self) -> Path:
        return self.root / "out"


@dataclass(frozen=True)
class Sample:
    """One timed batch: wall-clock throughput and this process's CPU time per MB moved."""

    mbps: float
    cpu_ms_per_mb: float


@dataclass
class Case:
    """One throughput comparison: the same transfer done by RefStore and by raw minio-py."""

    name: str
    size: int
    reps: int
    refstore: Op
    raw: Op
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"refstore": [], "raw": []})

    def mbps(self, side: str) -> list[float]:
        return [sample.mbps for sample in self.samples[side]]

    def cpu(self, side: str) -> list[float]:
        return [sample.cpu_ms_per_mb for sample in self.samples[side]]


@dataclass(frozen=True)
class RssScenario:
    name: str
    side: str


@dataclass
class RssResult:
    scenario: RssScenario
    baseline_rss: int
    peak_rss: int
    seconds: float
    nbytes: int

    @property
    def growth(self) -> int:
        return self.peak_rss - self.baseline_rss


# -- report formatting ---------------------------------------------------------


def fmt_size(size: int) -> str:
    if size >= GiB and size % GiB == 0:
        return f"{size // GiB} GiB"
    if size >= MiB:
        return f"{size / MiB:g} MiB"
    return f"{size / 1024:g} KiB"


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else float("inf")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def emit(line: str = "") -> None:
    print(line, flush=True)


# -- machine description ---------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def minio_server_version() -> str:
    binary = ensure_minio()
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"
    runtime = next(
        (line.strip() for line in result.stdout.splitlines() if line.startswith("Runtime")), ""
    )
    return f"{first}; {runtime}; pinned module version {MINIO_VERSION}"


def git_revision() -> str:
    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    revision = run("rev-parse", "--short", "HEAD") or "unknown"
    dirty = (
        " (work tree has uncommitted changes)" if run("status", "--porcelain", "refstore") else ""
    )
    return revision + dirty


def print_header(params: Params, quick: bool, tmp_root: Path) -> None:
    emit("refstore library benchmark: RefStore vs raw minio-py on one local MinIO server")
    emit("=" * 78)
    emit(f"date            {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    emit(f"mode            {'quick (smoke run)' if quick else 'full'}")
    emit(f"machine         {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}")
    emit(f"python          {platform.python_version()} ({platform.python_implementation()})")
    emit(f"minio-py        {metadata.version('minio')}, urllib3 {metadata.version('urllib3')}")
    emit(f"MinIO server    {minio_server_version()}")
    emit(f"refstore        git {git_revision()}")
    emit(f"temp dir        {tmp_root} (MinIO data and source files, single drive)")
    emit("parameters")
    emit("  per side and round:")
    emit(
        f"  small objects {fmt_size(params.small_size)}, uploads x{params.small_upload_reps}, "
        f"downloads x{params.small_download_reps}"
    )
    emit(
        f"  large objects {fmt_size(params.large_size)}, uploads x{params.large_upload_reps}, "
        f"downloads x{params.large_download_reps} of each kind"
    )
    emit(f"  rounds        {params.rounds}, sides interleaved, order alternating each round;")
    emit("                each timed batch is preceded by one untimed repetition per side")
    emit(f"  RSS object    {fmt_size(params.rss_size)}, one fresh subprocess per case")
    emit("  RefStore      default config (part_size 8 MiB, max_concurrency 32)")
    emit("  raw           minio.Minio(endpoint, key, secret, secure=False), defaults")
    emit(
        f"  targets       throughput ratio RefStore/raw >= {THROUGHPUT_TARGET:.2f}; "
        f"RSS growth <= {fmt_size(RSS_TARGET)}"
    )
    emit("  units         MB = 10^6 bytes; MiB = 2^20 bytes")
    emit()


# -- setup -------------------------------------------------------------------------


def write_random_file(path: Path, size: int) -> None:
    block = 16 * MiB
    with path.open("wb") as out:
        remaining = size
        while remaining:
            n = min(block, remaining)
            out.write(os.urandom(n))
            remaining -= n


def store_config(server: MinioServer) -> dict[str, Any]:
    config = dict(server.config())
    config["default_bucket"] = BUCKET
    return config


def raw_client(server: MinioServer) -> Minio:
    return Minio(server.endpoint, server.access_key, server.secret_key, secure=False)


def open_workspace(root: Path, params: Params) -> Workspace:
    server = MinioServer(root / "minio-data").start()
    store = RefStore(store_config(server))
    store.init_buckets()
    client = raw_client(server)
    large_file = root / "large.bin"
    rss_file = root / "rss.bin"
    write_random_file(large_file, params.large_size)
    write_random_file(rss_file, params.rss_size)
    (root / "out").mkdir()
    return Workspace(
        root, server, store, client, os.urandom(params.small_size), large_file, rss_file
    )


def seed_objects(ws: Workspace, params: Params) -> None:
    """Objects both sides download: the same keys, written once by raw minio-py."""
    for i in range(SMALL_SEEDS):
        ws.client.put_object(BUCKET, small_key(i), io.BytesIO(ws.small_data), len(ws.small_data))
    ws.client.fput_object(BUCKET, LARGE_KEY, str(ws.large_file))
    ws.client.fput_object(BUCKET, RSS_KEY, str(ws.rss_file))


def purge_minio_trash(server: MinioServer) -> None:
    """Free the space of overwritten objects now rather than at MinIO's next trash sweep.

    MinIO moves replaced object data to ``.minio.sys/tmp/.trash`` and deletes it
    minutes later; without this the repeated large uploads fill tens of GiB.
    """
    trash = server.data_dir / ".minio.sys" / "tmp" / ".trash"
    if not trash.is_dir():
        return
    for entry in trash.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def small_key(i: int) -> str:
    return f"seed/small/{i % SMALL_SEEDS}.bin"


LARGE_KEY = "seed/large.bin"
RSS_KEY = "seed/rss.bin"


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


# -- transfer operations --------------------------------------------------------------


def drain_refstore(store: RefStore, key: str) -> int:
    total = 0
    with store.open(uri(key)) as stream:
        for chunk in stream:
            total += len(chunk)
    return total


def drain_raw(client: Minio, key: str) -> int:
    response = client.get_object(BUCKET, key)
    total = 0
    try:
        for chunk in response.stream(CHUNK):
            total += len(chunk)
    finally:
        response.close()
        response.release_conn()
    return total


def expect(nbytes: int, size: int, what: str) -> int:
    if nbytes != size:
        raise RuntimeError(f"{what}: moved {nbytes} bytes, expected {size}")
    return nbytes


def small_upload_case(ws: Workspace, params: Params) -> Case:
    data = ws.small_data

    def ref(i: int) -> int:
        ws.store.upload_file(data, f"{i}.bin", path="ref/small")
        return len(data)

    def raw(i: int) -> int:
        ws.client.put_object(BUCKET, f"raw/small/{i}.bin", io.BytesIO(data), len(data))
        return len(data)

    return Case("upload bytes", params.small_size, params.small_upload_reps, ref, raw)


def small_download_case(ws: Workspace, params: Params) -> Case:
    size = params.small_size

    def ref(i: int) -> int:
        return expect(drain_refstore(ws.store, small_key(i)), size, "refstore open")

    def raw(i: int) -> int:
        return expect(drain_raw(ws.client, small_key(i)), size, "raw get_object")

    return Case("download stream", size, params.small_download_reps, ref, raw)


def large_upload_case(ws: Workspace, params: Params) -> Case:
    path = ws.large_file

    def ref(i: int) -> int:
        ws.store.upload_from_local(path, path="ref/large")
        return params.large_size

    def raw(i: int) -> int:
        ws.client.fput_object(BUCKET, f"raw/large/{path.name}", str(path))
        return params.large_size

    return Case("upload file", params.large_size, params.large_upload_reps, ref, raw)


def large_stream_download_case(ws: Workspace, params: Params) -> Case:
    size = params.large_size

    def ref(i: int) -> int:
        return expect(drain_refstore(ws.store, LARGE_KEY), size, "refstore open")

    def raw(i: int) -> int:
        return expect(drain_raw(ws.client, LARGE_KEY), size, "raw get_object")

    return Case("download stream", size, params.large_download_reps, ref, raw)


def large_file_download_case(ws: Workspace, params: Params) -> Case:
    size = params.large_size
    target = ws.out_dir / "large.out"

    def finish(what: str) -> int:
        nbytes = target.stat().st_size
        target.unlink()
        return expect(nbytes, size, what)

    def ref(i: int) -> int:
        ws.store.download_to_local(uri(LARGE_KEY), target)
        return finish("refstore download_to_local")

    def raw(i: int) -> int:
        ws.client.fget_object(BUCKET, LARGE_KEY, str(target))
        return finish("raw fget_object")

    return Case("download file", size, params.large_download_reps, ref, raw)


def throughput_cases(ws: Workspace, params: Params) -> list[Case]:
    return [
        small_upload_case(ws, params),
        small_download_case(ws, params),
        large_upload_case(ws, params),
        large_stream_download_case(ws, params),
        large_file_download_case(ws, params),
    ]


# -- throughput ------------------------------------------------------------------------


def timed_batch(op: Op, reps: int) -> Sample:
    start, cpu_start = time.perf_counter(), time.process_time()
    nbytes = sum(op(i) for i in range(reps))
    cpu = time.process_time() - cpu_start
    return Sample(mbps(nbytes, time.perf_counter() - start), cpu * 1000 / (nbytes / MB))


def ordered_sides(case: Case, round_index: int) -> list[tuple[str, Op]]:
    sides = [("refstore", case.refstore), ("raw", case.raw)]
    return sides[::-1] if round_index % 2 else sides


def run_round(cases: list[Case], round_index: int) -> None:
    """Each case: one untimed repetition per side, then both sides timed, order alternating."""
    for case in cases:
        sides = ordered_sides(case, round_index)
        for _side, op in sides:
            op(0)
        for side, op in sides:
            case.samples[side].append(timed_batch(op, case.reps))


def run_throughput(ws: Workspace, cases: list[Case], rounds: int) -> None:
    for r in range(rounds):
        start = time.perf_counter()
        run_round(cases, r)
        purge_minio_trash(ws.server)
        print(
            f"  round {r + 1}/{rounds} done in {time.perf_counter() - start:.1f}s",
            file=sys.stderr,
            flush=True,
        )


def paired_ratios(case: Case) -> list[float]:
    pairs = zip(case.mbps("refstore"), case.mbps("raw"), strict=True)
    return [ref / raw for ref, raw in pairs]


def paired_ratio(case: Case) -> float:
    return statistics.median(paired_ratios(case))


def quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.2f}-{high:.2f}"


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def print_throughput(cases: list[Case]) -> None:
    emit("1. Throughput (MB/s, median of rounds; min-max in brackets)")
    emit("-" * 78)
    emit(
        f"{'object':>9}  {'operation':<16}{'RefStore':>18}{'raw minio-py':>18}"
        f"{'ratio':>7}{'ratio IQR':>11}  verdict"
    )
    for case in cases:
        ref, raw = case.mbps("refstore"), case.mbps("raw")
        ratio = paired_ratio(case)
        emit(
            f"{fmt_size(case.size):>9}  {case.name:<16}"
            f"{statistics.median(ref):>8.1f} [{spread(ref):>7}]"
            f"{statistics.median(raw):>8.1f} [{spread(raw):>7}]"
            f"{ratio:>7.3f}{quartiles(paired_ratios(case)):>11}  "
            f"{verdict(ratio >= THROUGHPUT_TARGET)}"
        )
    emit("ratio = median over rounds of RefStore/raw within the round (both sides of a")
    emit("  round ran back to back, so load drifts on the shared machine cancel out);")
    emit("  ratio IQR = interquartile range of those per-round ratios.")
    emit("operations: upload bytes = upload_file(bytes) vs put_object(BytesIO, length);")
    emit("  upload file = upload_from_local vs fput_object; download stream = iterate")
    emit("  store.open(uri) vs get_object().stream(1 MiB); download file = download_to_local")
    emit("  vs fget_object. Downloads read the same objects on both sides.")
    emit()
    print_cpu(cases)


def print_cpu(cases: list[Case]) -> None:
    emit("   Client CPU per MB moved (ms, this process incl. minio-py's upload threads;")
    emit("   median of rounds; less sensitive to other load than throughput)")
    emit(f"{'object':>9}  {'operation':<16}{'RefStore':>10}{'raw':>10}{'ratio':>8}")
    for case in cases:
        ref, raw = statistics.median(case.cpu("refstore")), statistics.median(case.cpu("raw"))
        emit(f"{fmt_size(case.size):>9}  {case.name:<16}{ref:>10.3f}{raw:>10.3f}{ref / raw:>8.3f}")
    emit()


# -- memory ------------------------------------------------------------------------------


RSS_SCENARIOS = [
    RssScenario("upload file", "refstore"),
    RssScenario("upload file", "raw"),
    RssScenario("upload pipe", "refstore"),
    RssScenario("upload pipe", "raw"),
    RssScenario("upload generator", "refstore"),
    RssScenario("download file", "refstore"),
    RssScenario("download file", "raw"),
    RssScenario("download stream", "refstore"),
    RssScenario("download stream", "raw"),
]


def proc_status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def open_pipe(path: Path) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    """A non-seekable stream of unknown length carrying the file's bytes."""
    proc = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    return proc, cast(BinaryIO, proc.stdout)


def refstore_transfer(scenario: str, config: dict[str, Any], source: Path, out: Path) -> Transfer:
    store = RefStore(config)
    store.init_buckets()

    def stored_size(object_uri: str) -> int:
        return int(store.get_file_info(object_uri)["size"])

    def run() -> int:
        if scenario == "upload file":
            return stored_size(store.upload_from_local(source, path="rss/refstore"))
        if scenario == "upload pipe":
            proc, stream = open_pipe(source)
            object_uri = store.upload_file(stream, "pipe.bin", path="rss/refstore")
            proc.wait()
            return stored_size(object_uri)
        if scenario == "upload generator":
            chunks = file_chunks(source)
            return stored_size(store.upload_file(chunks, "generator.bin", path="rss/refstore"))
        if scenario == "download file":
            store.download_to_local(uri(RSS_KEY), out)
            return out.stat().st_size
        return drain_refstore(store, RSS_KEY)

    return run


def raw_transfer(scenario: str, config: dict[str, Any], source: Path, out: Path) -> Transfer:
    settings = config["minio"]
    client = Minio(
        settings["endpoint"], settings["access_key"], settings["secret_key"], secure=False
    )
    client.bucket_exists(BUCKET)

    def stored_size(key: str) -> int:
        return int(client.stat_object(BUCKET, key).size or 0)

    def run() -> int:
        if scenario == "upload file":
            client.fput_object(BUCKET, "rss/raw/file.bin", str(source))
            return stored_size("rss/raw/file.bin")
        if scenario == "upload pipe":
            proc, stream = open_pipe(source)
            part_size = RAW_PART_SIZE_UNKNOWN_LENGTH
            client.put_object(BUCKET, "rss/raw/pipe.bin", stream, -1, part_size=part_size)
            proc.wait()
            return stored_size("rss/raw/pipe.bin")
        if scenario == "download file":
            client.fget_object(BUCKET, RSS_KEY, str(out))
            return out.stat().st_size
        return drain_raw(client, RSS_KEY)

    return run


def child_main(spec: str) -> int:
    """Set up one side in this fresh process, then measure one transfer and print JSON."""
    args = json.loads(spec)
    prepare = refstore_transfer if args["side"] == "refstore" else raw_transfer
    run = prepare(args["scenario"], args["config"], Path(args["source"]), Path(args["out"]))
    baseline = proc_status_kib("VmRSS") * 1024
    reset_peak_rss()
    start = time.perf_counter()
    nbytes = run()
    seconds = time.perf_counter() - start
    peak = proc_status_kib("VmHWM") * 1024
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds, "nbytes": nbytes}))
    return 0


def run_rss_scenario(ws: Workspace, scenario: RssScenario) -> RssResult:
    out = ws.out_dir / "rss.out"
    spec = {
        "scenario": scenario.name,
        "side": scenario.side,
        "config": store_config(ws.server),
        "source": str(ws.rss_file),
        "out": str(out),
    }
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--rss-child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    out.unlink(missing_ok=True)
    if result.returncode != 0:
        raise RuntimeError(f"RSS child {scenario} failed:\n{result.stderr}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return RssResult(scenario, data["baseline"], data["peak"], data["seconds"], data["nbytes"])


def prime_file_writes(ws: Workspace) -> None:
    """Write and delete one large file, untimed, before a case that writes one.

    On this kind of VM the first large file written after a pause is several
    times slower (fresh guest pages); the next writer reuses the freed pages.
    """
    target = ws.out_dir / "prime.out"
    ws.client.fget_object(BUCKET, RSS_KEY, str(target))
    target.unlink()


def run_rss(ws: Workspace, size: int) -> list[RssResult]:
    results = []
    for scenario in RSS_SCENARIOS:
        if scenario.name == "download file":
            prime_file_writes(ws)
        result = run_rss_scenario(ws, scenario)
        purge_minio_trash(ws.server)
        expect(result.nbytes, size, f"RSS {scenario.side} {scenario.name}")
        print(
            f"  RSS {scenario.side} {scenario.name}: +{result.growth / MiB:.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    return results


def print_rss(results: list[RssResult], size: int) -> None:
    emit(f"2. Peak RSS growth streaming a {fmt_size(size)} object (fresh subprocess per case)")
    emit("-" * 78)
    emit(f"{'case':<18}{'side':<10}{'baseline':>10}{'peak':>10}{'growth':>10}{'MB/s':>8}  verdict")
    for result in results:
        is_refstore = result.scenario.side == "refstore"
        mark = verdict(result.growth <= RSS_TARGET) if is_refstore else "(reference)"
        emit(
            f"{result.scenario.name:<18}{result.scenario.side:<10}"
            f"{result.baseline_rss / MiB:>7.1f}MiB{result.peak_rss / MiB:>7.1f}MiB"
            f"{result.growth / MiB:>7.1f}MiB{mbps(result.nbytes, result.seconds):>8.1f}  {mark}"
        )
    emit("baseline = VmRSS after imports, client creation and one bucket request;")
    emit("peak = VmHWM after clear_refs=5 and the transfer; growth = peak - baseline.")
    emit("cases: upload file = upload_from_local vs fput_object;")
    emit("  upload pipe = a `cat` pipe (non-seekable, unknown length) to upload_file vs")
    emit(f"    put_object(length=-1, part_size={fmt_size(RAW_PART_SIZE_UNKNOWN_LENGTH)});")
    emit("  upload generator = upload_file(generator of 1 MiB chunks), RefStore only;")
    emit("  download file = download_to_local vs fget_object (each after one untimed")
    emit("    large file write in the parent, see prime_file_writes);")
    emit("  download stream = iterate store.open(uri) vs get_object().stream(1 MiB).")
    emit("Uploads are checked by the stored object's size, downloads by bytes received.")
    emit("MB/s here is one unrepeated run, for orientation only.")
    emit()


# -- summary ---------------------------------------------------------------------------------


def print_summary(cases: list[Case], rss: list[RssResult]) -> None:
    slow = [f"{fmt_size(c.size)} {c.name}" for c in cases if paired_ratio(c) < THROUGHPUT_TARGET]
    heavy = [
        r.scenario.name for r in rss if r.scenario.side == "refstore" and r.growth > RSS_TARGET
    ]
    emit("3. Summary")
    emit("-" * 78)
    emit(
        f"throughput  {verdict(not slow)}"
        + (f" (below {THROUGHPUT_TARGET:.2f}: {', '.join(slow)})" if slow else "")
    )
    emit(
        f"memory      {verdict(not heavy)}"
        + (f" (over {fmt_size(RSS_TARGET)}: {', '.join(heavy)})" if heavy else "")
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def benchmark(params: Params, quick: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="refstore-bench-"))
    ws: Workspace | None = None
    try:
        print_header(params, quick, root)
        print("preparing data and server...", file=sys.stderr, flush=True)
        ws = open_workspace(root, params)
        seed_objects(ws, params)
        cases = throughput_cases(ws, params)
        run_throughput(ws, cases, params.rounds)
        print_throughput(cases)
        rss = run_rss(ws, params.rss_size)
        print_rss(rss, params.rss_size)
        print_summary(cases, rss)
    finally:
        if ws is not None:
            ws.store.close()
            ws.server.close()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        return child_main(args.rss_child)
    benchmark(Params.for_run(args.quick), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
