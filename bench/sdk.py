"""Benchmark the gateway SDK against raw httpx and raw minio-py, in one run.

Run by hand from the repository root (it starts its own MinIO and gateway)::

    python bench/sdk.py [--quick] [--output bench/results/sdk.txt]

Prints, and saves to ``--output``:

1. SDK (``GatewayClient``, proxied) upload/download of 256 MiB vs raw httpx streaming
   against the same gateway (target: within 5%).
2. Direct mode vs proxied mode vs raw minio-py (target: direct >= 0.9x minio-py).
3. Client peak RSS downloading 1 GiB to disk, each case in a fresh subprocess
   (peak reset through /proc/self/clear_refs, read from VmHWM; target: <= 64 MiB growth).
4. ``AsyncGatewayClient``: 100 concurrent 4 KiB uploads vs 100 sequential ones
   (target: >= 5x).

Sides are interleaved (order alternating each round) and medians reported, since
the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
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

REPO = Path(__file__).resolve().parent.parent
for _entry in (REPO / "tests", REPO):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

import httpx  # noqa: E402
import psutil  # noqa: E402
from gateway_process import ADMIN_TOKEN, GatewayProcess  # noqa: E402
from minio import Minio  # noqa: E402
from relay import HoldingRelay  # noqa: E402
from servers import MinioServer  # noqa: E402

from refstore.gateway import AsyncGatewayClient, GatewayClient  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1_000_000
BUCKET = "bench"
CHUNK = MiB
SDK_TARGET = 0.95
DIRECT_TARGET = 0.90
RSS_TARGET = 64 * MiB
CONCURRENCY_TARGET = 5.0
DISTANT_HOLD = 0.010


@dataclass(frozen=True)
class Params:
    size: int
    rounds: int
    direct_rounds: int
    rss_size: int
    small_count: int
    small_size: int
    small_rounds: int

    @classmethod
    def for_run(cls, quick: bool) -> Params:
        if quick:
            return cls(32 * MiB, 3, 2, 128 * MiB, 100, 4096, 3)
        return cls(256 * MiB, 9, 9, GiB, 100, 4096, 9)


@dataclass
class Bench:
    params: Params
    root: Path
    minio: MinioServer
    gateway: GatewayProcess
    raw_minio: Minio
    source: Path
    lines: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        """Where downloads go (emptied between repetitions)."""
        path = self.root / "out"
        path.mkdir(exist_ok=True)
        return path

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


@dataclass
class Samples:
    """Per round: wall-clock MB/s, and this process's CPU ms per MB moved (less
    sensitive to other load on a shared machine)."""

    mbps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def clean(directory: Path) -> None:
    """Remove the previous downloads (untimed), so every download writes a new file.

    Replacing an existing file by rename makes ext4 (auto_da_alloc) allocate and start
    flushing the new file's blocks inside ``rename``: about 0.5 ms/MB here, paid by
    an atomic temp-file-and-rename download (ours) but not by a delete-then-rename
    one (minio-py's ``fget_object``) or a download written in place (raw httpx).
    """
    for path in directory.iterdir():
        path.unlink()
    os.sync()


def interleave(
    rounds: int, sides: dict[str, Callable[[], int]], before: Callable[[], None] | None = None
) -> dict[str, Samples]:
    """Every side twice per round in mirrored order (A B C C B A, so a load drift
    during the round weighs on all sides alike), after one untimed warm-up each;
    ``before`` runs (untimed) before each repetition. One sample per side and round."""
    names = list(sides)
    for name in names:
        if before is not None:
            before()
        sides[name]()
    results = {name: Samples() for name in names}
    for index in range(rounds):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        seconds = dict.fromkeys(names, 0.0)
        cpu_seconds = dict.fromkeys(names, 0.0)
        moved = dict.fromkeys(names, 0.0)
        for name in order + order[::-1]:
            if before is not None:
                before()
            started, cpu = time.perf_counter(), time.process_time()
            moved[name] += sides[name]() / MB
            seconds[name] += time.perf_counter() - started
            cpu_seconds[name] += time.process_time() - cpu
        for name in names:
            results[name].mbps.append(moved[name] / seconds[name])
            results[name].cpu.append(cpu_seconds[name] * 1000 / moved[name])
    return results


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} [{min(values):.0f}-{max(values):.0f}]"


def cpu(samples: Samples) -> str:
    return f"{statistics.median(samples.cpu):.3f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- 1. SDK vs raw httpx ---------------------------------------------------------------


def sdk_vs_httpx(bench: Bench) -> None:
    size, url = bench.params.size, bench.gateway.url
    out = bench.out
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with (
        GatewayClient(url, api_key=ADMIN_TOKEN, direct_threshold=None, timeout=120) as sdk,
        httpx.Client(base_url=url, headers=auth, timeout=120) as raw,
    ):
        uri = sdk.upload_from_local(bench.source, BUCKET, "sdk-vs-httpx")["uri"]

        def sdk_upload() -> int:
            return int(sdk.upload_from_local(bench.source, BUCKET, "sdk-up")["size"])

        def raw_upload() -> int:
            response = raw.put(
                f"/files/{BUCKET}/raw-up/{bench.source.name}",
                content=file_chunks(bench.source),
                headers={"Content-Length": str(size)},
            )
            response.raise_for_status()
            return int(response.json()["size"])

        def sdk_download() -> int:
            sdk.download_to_local(uri, out / "sdk.bin", raise_errors=True)
            return size

        def raw_download() -> int:
            with (
                raw.stream("GET", "/download", params={"uri": uri}) as response,
                (out / "raw.bin").open("wb") as target,
            ):
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    target.write(chunk)
            return size

        rounds = bench.params.rounds
        up = interleave(rounds, {"sdk": sdk_upload, "httpx": raw_upload}, before=os.sync)
        down = interleave(
            rounds, {"sdk": sdk_download, "httpx": raw_download}, before=lambda: clean(out)
        )
    bench.say(f"1. GatewayClient (proxied) vs raw httpx streaming, {size // MiB} MiB object")
    bench.say("-" * 78)
    bench.say("operation        GatewayClient MB/s    raw httpx MB/s   ratio  verdict")
    for name, result in (("upload file", up), ("download to disk", down)):
        ratio = median_ratio(result["sdk"].mbps, result["httpx"].mbps)
        bench.say(
            f"{name:<16} {spread(result['sdk'].mbps):>21} {spread(result['httpx'].mbps):>17}"
            f"   {ratio:5.3f}  {verdict(ratio >= SDK_TARGET)}"
        )
    bench.say("client CPU ms/MB  (median)             GatewayClient  raw httpx")
    for name, result in (("upload file", up), ("download to disk", down)):
        bench.say(f"  {name:<38} {cpu(result['sdk']):>11} {cpu(result['httpx']):>10}")
    bench.say(
        "sdk: upload_from_local(path, bucket, path) -> PUT /files/{bucket}/{key}, and\n"
        "  download_to_local (temp file + rename); raw: httpx.Client.put(content=1 MiB\n"
        "  chunks of the file, Content-Length) and client.stream('GET', '/download')\n"
        "  written with iter_bytes(). Same gateway, same object; downloads write new\n"
        "  files (see clean() in this script); dirty pages are synced (untimed) before\n"
        "  every repetition; each round runs sdk, raw, raw, sdk (order alternating);\n"
        f"  ratio = median of per-round sdk/raw over {bench.params.rounds} rounds; "
        f"target >= {SDK_TARGET}."
    )
    bench.say()


# -- 2. direct vs proxied vs minio-py --------------------------------------------------


def direct_vs_proxied(bench: Bench) -> None:
    size, url = bench.params.size, bench.gateway.url
    out = bench.out
    with GatewayClient(url, api_key=ADMIN_TOKEN, timeout=120) as sdk:
        uri = sdk.upload_from_local(bench.source, BUCKET, "direct-vs", direct=True)["uri"]
        key = uri.split("/", 3)[3]

        def upload(direct: bool) -> Callable[[], int]:
            def run() -> int:
                prefix = "direct-up" if direct else "proxied-up"
                return int(
                    sdk.upload_from_local(bench.source, BUCKET, prefix, direct=direct)["size"]
                )

            return run

        def download(direct: bool) -> Callable[[], int]:
            def run() -> int:
                sdk.download_to_local(uri, out / "d.bin", raise_errors=True, direct=direct)
                return size

            return run

        def minio_upload() -> int:
            bench.raw_minio.fput_object(BUCKET, "minio-up/big.bin", str(bench.source))
            return size

        def minio_download() -> int:
            bench.raw_minio.fget_object(BUCKET, key, str(out / "m.bin"))
            return size

        rounds = bench.params.direct_rounds
        up = interleave(
            rounds,
            {"direct": upload(True), "proxied": upload(False), "minio-py": minio_upload},
            before=os.sync,
        )
        down = interleave(
            rounds,
            {"direct": download(True), "proxied": download(False), "minio-py": minio_download},
            before=lambda: clean(out),
        )
    bench.say(f"2. Direct mode vs proxied mode vs raw minio-py, {size // MiB} MiB object")
    bench.say("-" * 78)
    bench.say(
        "operation     direct MB/s       proxied MB/s      minio-py MB/s   direct/minio  verdict"
    )
    for name, result in (("upload", up), ("download", down)):
        direct, proxied, raw = (result[k] for k in ("direct", "proxied", "minio-py"))
        ratio = median_ratio(direct.mbps, raw.mbps)
        bench.say(
            f"{name:<10} {spread(direct.mbps):>16} {spread(proxied.mbps):>18}"
            f" {spread(raw.mbps):>18}   {ratio:10.3f}  {verdict(ratio >= DIRECT_TARGET)}"
        )
        bench.say(
            f"{'':<10} client CPU ms/MB: direct {cpu(direct)}, proxied {cpu(proxied)}, "
            f"minio-py {cpu(raw)}; proxied/minio-py {median_ratio(proxied.mbps, raw.mbps):.3f}"
        )
    bench.say(
        "direct: upload_from_local / download_to_local with direct=True (presigned PUT\n"
        "  via httpx, presigned GET via urllib3, plus the /presigned-url call, and /info\n"
        "  after an upload); proxied: direct=False (through the gateway); minio-py:\n"
        "  Minio(...).fput_object / fget_object with defaults (parallel 5 MiB parts up).\n"
        "  Each round runs the sides in mirrored order (A B C C B A); uploads read the\n"
        "  same local file, downloads write new files; the gateway\n"
        "  and MinIO share the machine's cores with the client; target direct/minio\n"
        f"  >= {DIRECT_TARGET}."
    )
    bench.say()


# -- 3. peak RSS -----------------------------------------------------------------------

RSS_CHILD = r"""
import json, re, sys, time, asyncio
sys.path[:0] = {paths!r}
from refstore.gateway import AsyncGatewayClient, GatewayClient

def status(field):
    text = open("/proc/self/status").read()
    return int(re.search(field + r":\s+(\d+) kB", text).group(1)) * 1024

uri, target, mode = {uri!r}, {target!r}, {mode!r}
direct = mode.endswith("direct")
kwargs = dict(api_key={token!r}, timeout=120, direct_threshold=1 if direct else None)
if mode.startswith("async"):
    async def main():
        async with AsyncGatewayClient({url!r}, **kwargs) as client:
            await client.get_file_info(uri)
            baseline = status("VmRSS")
            open("/proc/self/clear_refs", "w").write("5")
            started = time.perf_counter()
            await client.download_to_local(uri, target, raise_errors=True)
            return baseline, time.perf_counter() - started
    baseline, seconds = asyncio.run(main())
else:
    with GatewayClient({url!r}, **kwargs) as client:
        client.get_file_info(uri)
        baseline = status("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")
        started = time.perf_counter()
        client.download_to_local(uri, target, raise_errors=True)
        seconds = time.perf_counter() - started
print(json.dumps({{"baseline": baseline, "peak": status("VmHWM"), "seconds": seconds}}))
"""


def peak_rss(bench: Bench) -> None:
    size = bench.params.rss_size
    big = bench.root / "rss-source.bin"
    with big.open("wb") as out:
        block = os.urandom(CHUNK)
        for _ in range(size // CHUNK):
            out.write(block)
    with GatewayClient(bench.gateway.url, api_key=ADMIN_TOKEN, timeout=300) as sdk:
        uri = sdk.upload_from_local(big, BUCKET, "rss", direct=True)["uri"]
    big.unlink()
    bench.say(f"3. Client peak RSS downloading {size // MiB} MiB to disk (fresh subprocess each)")
    bench.say("-" * 78)
    bench.say("case                    baseline       peak     growth      MB/s  verdict")
    for mode in ("sync proxied", "sync direct", "async proxied", "async direct"):
        target = bench.out / "rss.bin"
        code = RSS_CHILD.format(
            paths=[str(REPO)],
            uri=uri,
            target=str(target),
            mode=mode.replace(" ", "-"),
            token=ADMIN_TOKEN,
            url=bench.gateway.url,
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"RSS child ({mode}) failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        growth = result["peak"] - result["baseline"]
        assert target.stat().st_size == size
        target.unlink()
        bench.say(
            f"{mode:<20} {result['baseline'] / MiB:8.1f}MiB {result['peak'] / MiB:8.1f}MiB"
            f" {growth / MiB:8.1f}MiB {size / MB / result['seconds']:9.1f}  "
            f"{verdict(growth <= RSS_TARGET)}"
        )
    bench.say(
        "baseline = VmRSS after imports, client creation and one request; the peak is\n"
        "  reset (/proc/self/clear_refs = 5) just before download_to_local and read\n"
        f"  from VmHWM after it; target growth <= {RSS_TARGET // MiB} MiB."
    )
    bench.say()


# -- 4. concurrent small uploads ---------------------------------------------------------


@dataclass
class Rounds:
    """Wall times of one case's rounds, and the CPU they cost per upload."""

    uploads: int
    sequential: list[float] = field(default_factory=list)
    concurrent: list[float] = field(default_factory=list)
    cpu_ms: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"sequential": {}, "concurrent": {}}
    )

    @contextlib.contextmanager
    def timed(self, kind: str, processes: dict[str, psutil.Process]) -> Iterator[None]:
        """Time one round of ``kind`` and add the CPU each process spent in it."""
        cpu_before = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
        started = time.perf_counter()
        yield
        getattr(self, kind).append(time.perf_counter() - started)
        spent = self.cpu_ms[kind]
        for name, process in processes.items():
            ms = (sum(process.cpu_times()[:2]) - cpu_before[name]) * 1000 / self.uploads
            spent[name] = spent.get(name, 0.0) + ms

    def cpu_per_upload(self, kind: str) -> dict[str, float]:
        rounds = len(getattr(self, kind))
        return {name: ms / rounds for name, ms in self.cpu_ms[kind].items()}

    def speedup(self) -> float:
        pairs = zip(self.sequential, self.concurrent, strict=True)
        return statistics.median(a / b for a, b in pairs)

    def ceiling(self, cores: int) -> float:
        """The best speedup the machine allows: a concurrent round cannot take less
        wall time than its CPU time spread over every core."""
        cpu_seconds = sum(self.cpu_per_upload("concurrent").values()) / 1000 * self.uploads
        return statistics.median(self.sequential) / (cpu_seconds / cores)


def concurrency(bench: Bench) -> None:
    count, small, rounds = (
        bench.params.small_count,
        bench.params.small_size,
        bench.params.small_rounds,
    )
    data = os.urandom(small)
    cores = os.cpu_count() or 1
    client = psutil.Process()
    minio = psutil.Process(bench.minio.pid)
    through_gateway = {"client": client, "gateway": psutil.Process(bench.gateway.pid)}
    through_gateway["MinIO"] = minio

    async def sdk_rounds(max_connections: int, url: str = bench.gateway.url) -> Rounds:
        result = Rounds(count)
        async with AsyncGatewayClient(
            url, api_key=ADMIN_TOKEN, max_connections=max_connections
        ) as sdk:

            async def sequential(tag: str) -> None:
                for i in range(count):
                    await sdk.upload_file(data, f"{i}.bin", BUCKET, f"seq/{tag}")

            async def concurrent(tag: str) -> None:
                uploads = (
                    sdk.upload_file(data, f"{i}.bin", BUCKET, f"con/{tag}") for i in range(count)
                )
                results = await asyncio.gather(*uploads)
                assert all(r["size"] == small for r in results)

            await concurrent("warmup")  # opens the pool's connections
            await sequential("warmup")
            for index in range(rounds):
                order = [("sequential", sequential), ("concurrent", concurrent)]
                for kind, step in order[:: -1 if index % 2 else 1]:
                    with result.timed(kind, through_gateway):
                        await step(str(index))
        return result

    def minio_rounds(threads: int) -> Rounds:
        """The storage's own ceiling: minio-py straight to MinIO, no gateway."""
        from concurrent.futures import ThreadPoolExecutor

        def put(name: str) -> None:
            bench.raw_minio.put_object(BUCKET, name, io.BytesIO(data), len(data))

        result = Rounds(count)
        direct = {"client": client, "MinIO": minio}
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, [f"mc/w/{i}" for i in range(count)]))
            for index in range(rounds):
                with result.timed("sequential", direct):
                    for i in range(count):
                        put(f"ms/{index}/{i}")
                with result.timed("concurrent", direct):
                    list(pool.map(put, [f"mc/{index}/{i}" for i in range(count)]))
        return result

    with HoldingRelay(bench.gateway.url, DISTANT_HOLD) as distant:
        cases = [
            ("AsyncGatewayClient, max_connections=16 (default)", "SDK, 16", sdk_rounds(16)),
            ("AsyncGatewayClient, max_connections=100", "SDK, 100", sdk_rounds(100)),
            (
                f"same, default, gateway {DISTANT_HOLD * 1000:.0f} ms away (relay)",
                "distant",
                sdk_rounds(16, distant.url),
            ),
            ("reference: minio-py straight to MinIO, 16 threads", "minio-py", None),
        ]
        results = [asyncio.run(run) if run else minio_rounds(16) for _, _, run in cases]
    bench.say(f"4. {count} uploads of {small // 1024} KiB: concurrent vs sequential")
    bench.say("-" * 96)
    bench.say(
        "case                                               sequential  concurrent"
        "  speedup  ceiling  verdict"
    )
    for index, ((name, _, _), result) in enumerate(zip(cases, results, strict=True)):
        speedup = result.speedup()
        judged = verdict(speedup >= CONCURRENCY_TARGET) if index == 0 else "(reference)"
        seq_ms = statistics.median(result.sequential) * 1000
        con_ms = statistics.median(result.concurrent) * 1000
        bench.say(
            f"{name:<50} {seq_ms:7.0f} ms {con_ms:7.0f} ms  {speedup:6.2f}x"
            f"  {result.ceiling(cores):6.2f}x  {judged}"
        )
    bench.say("CPU per upload, sequential rounds | concurrent rounds:")
    for (_, label, _), result in zip(cases, results, strict=True):
        parts = []
        for kind in ("sequential", "concurrent"):
            spent = result.cpu_per_upload(kind)
            parts.append(
                ", ".join(f"{part} {ms:.2f}" for part, ms in spent.items())
                + f" = {sum(spent.values()):.2f} ms"
            )
        bench.say(f"  {label:<9} " + " | ".join(parts))
    bench.say(
        "upload_file(4 KiB bytes, name, bucket, path) -> PUT /files/{bucket}/{key};\n"
        f"  concurrent = asyncio.gather of {count} on one client; times are medians of\n"
        f"  {rounds} rounds (order alternating), speedup the median per-round ratio;\n"
        f"  target >= {CONCURRENCY_TARGET:.0f}x. ceiling = median sequential time / (CPU of a\n"
        f"  concurrent round / {cores} cores): no client can beat it, since the concurrent\n"
        "  round cannot finish before the client, gateway and MinIO have had that CPU.\n"
        "  A sequential round is itself CPU-bound when its time is close to its CPU\n"
        "  (nothing to overlap), so the ceiling is about the core count.\n"
        f"  distant: the same client through tests/relay.py, which holds each request\n"
        f"  {DISTANT_HOLD * 1000:.0f} ms before passing it on, as a network between client and\n"
        "  gateway would: the waiting the client overlaps (the relay runs in the client's\n"
        "  process, so its CPU counts as the client's)."
    )
    bench.say()


# -- main ------------------------------------------------------------------------------


def header(bench: Bench, quick: bool) -> None:
    rev = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    title = "refstore gateway SDK benchmark: GatewayClient / AsyncGatewayClient"
    bench.say(title)
    bench.say("=" * 78)
    bench.say(f"date            {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    bench.say(f"mode            {'quick' if quick else 'full'}")
    bench.say(
        f"machine         {os.cpu_count()} CPUs, {platform.platform()} (shared; medians used)"
    )
    bench.say(f"python          {platform.python_version()} ({platform.python_implementation()})")
    bench.say(
        f"httpx           {metadata.version('httpx')}, httpcore {metadata.version('httpcore')}, "
        f"minio-py {metadata.version('minio')}"
    )
    bench.say(f"refstore        git {rev or 'unknown'}")
    bench.say(
        "setup           one MinIO (single drive, 127.0.0.1) and one `refstore serve`\n"
        "                (1 worker) in front of it, both started by this script;\n"
        "                client, gateway and MinIO share the machine"
    )
    bench.say("units           MB = 10^6 bytes; MiB = 2^20 bytes")
    bench.say()


SECTIONS: list[Callable[[Bench], None]] = [sdk_vs_httpx, direct_vs_proxied, peak_rss, concurrency]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "sdk.txt")
    parser.add_argument(
        "--only",
        type=int,
        choices=range(1, len(SECTIONS) + 1),
        action="append",
        metavar="N",
        help="run only section N (repeatable); results are saved only when all run",
    )
    args = parser.parse_args()
    chosen = sorted(set(args.only or range(1, len(SECTIONS) + 1)))
    params = Params.for_run(args.quick)
    with tempfile.TemporaryDirectory(prefix="refstore-sdk-bench-") as tmp:
        root = Path(tmp)
        with MinioServer(root / "minio") as minio:
            settings = {**minio.config(), "default_bucket": BUCKET}
            with GatewayProcess(settings) as gateway:
                raw_minio = Minio(minio.endpoint, minio.access_key, minio.secret_key, secure=False)
                source = root / "source.bin"
                source.write_bytes(os.urandom(params.size))
                bench = Bench(params, root, minio, gateway, raw_minio, source)
                header(bench, args.quick)
                for number in chosen:
                    SECTIONS[number - 1](bench)
    if not args.quick and len(chosen) == len(SECTIONS):
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(bench.lines) + "\n")
        print(f"saved to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
