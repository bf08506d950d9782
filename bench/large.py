"""Benchmark large uploads: upload sessions vs minio-py vs one stream, resuming, checksums.

Run by hand from the repository root (it starts its own MinIO and gateway)::

    python bench/large.py [--quick] [--output bench/results/large.txt]

Prints, and saves to ``--output``, against the same MinIO in one run:

1. A 1 GiB upload: ``upload_large`` (an upload session, 4 parallel parts straight to
   MinIO through presigned part URLs) vs minio-py's ``fput_object`` vs the SDK's single
   stream through the gateway (target: sessions >= 0.9x minio-py).
2. An upload killed (SIGKILL) at 50 % and run again: the bytes sent twice
   (target: <= parallel x part size).
3. The cost of checksums on a 1 GiB round trip through the library (upload, then
   download to a file): the default (CRC32C and SHA-256 computed, the CRC32C recorded by
   MinIO and verified on the download) vs ``checksums: false`` (target: >= 0.85x), and
   CRC32C alone (``sha256: false``).

Sides are interleaved (mirrored order each round) and medians reported, since the
machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _entry in (REPO / "tests", REPO, BENCH):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

from gateway_process import ADMIN_TOKEN, GatewayProcess  # noqa: E402
from minio import Minio  # noqa: E402
from sdk import Samples, clean, cpu, interleave, median_ratio, spread, verdict  # noqa: E402
from sdk_helpers import upload_killed_at  # noqa: E402
from servers import MinioServer  # noqa: E402

from refstore import RefStore  # noqa: E402
from refstore.gateway import GatewayClient  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1_000_000
BUCKET = "bench"
PARALLEL = 4
PART = 16 * MiB
DEFAULT_SIDE = "default (CRC32C + SHA-256)"
CRC_SIDE = "sha256: false (CRC32C)"
OFF_SIDE = "checksums: false"
SESSION_TARGET = 0.90
CHECKSUM_TARGET = 0.85


@dataclass(frozen=True)
class Params:
    size: int
    rounds: int

    @classmethod
    def for_run(cls, quick: bool) -> Params:
        return cls(128 * MiB, 1) if quick else cls(GiB, 3)


@dataclass
class Bench:
    params: Params
    root: Path
    minio: MinioServer
    gateway: GatewayProcess
    source: Path
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def client(self, session_threshold: int | None = None) -> GatewayClient:
        return GatewayClient(
            self.gateway.url,
            api_key=ADMIN_TOKEN,
            timeout=300,
            session_threshold=session_threshold,
        )


def table(bench: Bench, results: dict[str, Samples]) -> None:
    """One line per side: throughput and this process's CPU per MB."""
    bench.say("-" * 78)
    bench.say(f"{'side':34} {'MB/s median [min-max]':>24} {'client CPU ms/MB':>17}")
    for name, samples in results.items():
        bench.say(f"{name:34} {spread(samples.mbps):>24} {cpu(samples):>17}")


# -- 1. sessions vs minio-py vs one stream ------------------------------------------------


def sessions_vs_minio(bench: Bench) -> None:
    size = bench.params.size
    minio = bench.minio
    raw = Minio(minio.endpoint, minio.access_key, minio.secret_key, secure=False)
    state = bench.root / "state"
    with bench.client() as sdk:

        def sessions() -> int:
            result = sdk.upload_large(
                bench.source,
                f"s3://{BUCKET}/large/session.bin",
                parallel=PARALLEL,
                part_size=PART,
                state_dir=state,
            )
            return int(result["size"] or 0)

        def minio_py() -> int:
            raw.fput_object(BUCKET, "large/minio-py.bin", str(bench.source))
            return size

        def one_stream() -> int:
            with bench.source.open("rb") as file:
                return int(sdk.upload_to(f"s3://{BUCKET}/large/stream.bin", file)["size"] or 0)

        sides: dict[str, Callable[[], int]] = {
            "upload_large (4 parts, direct)": sessions,
            "minio-py fput_object": minio_py,
            "SDK single stream (gateway)": one_stream,
        }
        results = interleave(bench.params.rounds, sides)
    ratio = median_ratio(
        results["upload_large (4 parts, direct)"].mbps, results["minio-py fput_object"].mbps
    )
    bench.say(f"1. Upload of {size // MiB} MiB: sessions vs minio-py vs one stream")
    table(bench, results)
    bench.say(
        f"sessions / minio-py (median of per-round ratios): {ratio:.2f}x "
        f"(target >= {SESSION_TARGET}x) {verdict(ratio >= SESSION_TARGET)}"
    )
    bench.say(
        "minio-py: fput_object with its defaults (parts of 5 MiB here, 3 in parallel);\n"
        f"sessions: {PARALLEL} parts of {PART // MiB} MiB in flight, each with its CRC32C,\n"
        "  presigned by the gateway and sent straight to MinIO; one stream: upload_to\n"
        "  through the gateway (which computes CRC32C and SHA-256 on the way)."
    )
    bench.say()


# -- 2. resuming after a kill ---------------------------------------------------------------


def resume_after_kill(bench: Bench) -> None:
    size = bench.params.size
    uri = f"s3://{BUCKET}/large/resumed.bin"
    state = bench.root / "resume-state"
    reported = upload_killed_at(
        bench.gateway.url,
        ADMIN_TOKEN,
        bench.source,
        uri,
        state,
        part_size=PART,
        parallel=PARALLEL,
        at=size // 2,
    )
    found: list[tuple[int, int]] = []
    sent = [0]
    with bench.client() as sdk:
        sdk.upload_large(
            bench.source,
            uri,
            part_size=PART,
            parallel=PARALLEL,
            state_dir=state,
            progress=lambda n: sent.__setitem__(0, sent[0] + n),
            on_resume=lambda parts, stored: found.append((parts, stored)),
        )
    parts, stored = found[0] if found else (0, 0)  # (none stored yet: all in flight)
    second = sent[0] - stored  # bytes the second run put on the wire
    twice = reported + second - size
    limit = PARALLEL * PART
    bench.say(f"2. An upload of {size // MiB} MiB killed (SIGKILL) at 50 %, then run again")
    bench.say("-" * 78)
    bench.say(f"sent before the kill      {reported / MiB:9.1f} MiB")
    bench.say(f"found stored on resuming  {stored / MiB:9.1f} MiB ({parts} parts of {PART // MiB})")
    bench.say(f"sent by the second run    {second / MiB:9.1f} MiB")
    bench.say(
        f"sent twice                {twice / MiB:9.1f} MiB (target <= parallel x part size = "
        f"{limit // MiB} MiB) {verdict(twice <= limit)}"
    )
    bench.say("(the parts in flight at the kill are the ones sent again)")
    bench.say()


# -- 3. the cost of checksums -------------------------------------------------------------


def checksum_cost(bench: Bench) -> None:
    size = bench.params.size
    out = bench.root / "out"
    out.mkdir(exist_ok=True)
    base = {**bench.minio.config(), "default_bucket": BUCKET, "part_size": PART}
    with (
        RefStore(base) as checked,
        RefStore({**base, "sha256": False}) as crc_only,
        RefStore({**base, "checksums": False}) as unchecked,
    ):

        def round_trip(store: RefStore, name: str) -> Callable[[], int]:
            def run() -> int:
                uri = f"s3://{BUCKET}/large/{name}.bin"
                with bench.source.open("rb") as file:
                    store.upload_to(uri, file)
                store.download_to_local(uri, out / f"{name}.bin")
                return 2 * size

            return run

        sides = {
            DEFAULT_SIDE: round_trip(checked, "checked"),
            CRC_SIDE: round_trip(crc_only, "crc-only"),
            OFF_SIDE: round_trip(unchecked, "unchecked"),
        }
        results = interleave(bench.params.rounds, sides, before=lambda: clean(out))
        info = checked.get_file_info(f"s3://{BUCKET}/large/checked.bin")["checksums"]
    ratio = median_ratio(results[DEFAULT_SIDE].mbps, results[OFF_SIDE].mbps)
    crc_ratio = median_ratio(results[CRC_SIDE].mbps, results[OFF_SIDE].mbps)
    bench.say(f"3. Round trip of {size // MiB} MiB through the library (upload, download to file)")
    table(bench, results)
    bench.say(
        f"default / off (median of per-round ratios): {ratio:.2f}x "
        f"(target >= {CHECKSUM_TARGET}x) {verdict(ratio >= CHECKSUM_TARGET)}"
    )
    bench.say(f"sha256: false / off: {crc_ratio:.2f}x")
    bench.say(f"recorded for the (multipart) object: {sorted(info)}")
    bench.say(
        "MB/s counts both directions. The upload computes CRC32C and SHA-256 while\n"
        "  streaming, each part goes with its CRC32C (MinIO checks it and records the\n"
        "  object's), and the download is checked against it before the file is renamed\n"
        "  into place. A multipart object's SHA-256 is answered, not recorded: S3\n"
        "  metadata is fixed when the upload starts."
    )
    bench.say()


def header(bench: Bench, quick: bool) -> None:
    rev = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    bench.say("refstore large-object benchmark: upload sessions, resuming, checksums")
    bench.say("=" * 78)
    bench.say(f"date            {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    bench.say(f"mode            {'quick' if quick else 'full'} ({bench.params.rounds} rounds)")
    bench.say(
        f"machine         {os.cpu_count()} CPUs, {platform.platform()} (shared; medians used)"
    )
    bench.say(f"python          {platform.python_version()}")
    bench.say(
        f"libraries       minio-py {metadata.version('minio')}, httpx "
        f"{metadata.version('httpx')}, crc32c {metadata.version('crc32c')}"
    )
    bench.say(f"refstore        git {rev or 'unknown'}")
    bench.say(
        "setup           one MinIO (single drive, 127.0.0.1) and one `refstore serve`\n"
        "                (1 worker) in front of it, started by this script; client,\n"
        "                gateway and MinIO share the machine's cores and disk"
    )
    bench.say("units           MB = 10^6 bytes; MiB = 2^20 bytes")
    bench.say()


SECTIONS: list[Callable[[Bench], None]] = [sessions_vs_minio, resume_after_kill, checksum_cost]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB, one round")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "large.txt")
    args = parser.parse_args()
    params = Params.for_run(args.quick)
    with tempfile.TemporaryDirectory(prefix="refstore-large-bench-") as tmp:
        root = Path(tmp)
        with MinioServer(root / "minio") as minio:
            settings = {**minio.config(), "default_bucket": BUCKET}
            with GatewayProcess(settings) as gateway:
                source = root / "source.bin"
                with source.open("wb") as file:
                    for _ in range(params.size // (16 * MiB)):
                        file.write(os.urandom(16 * MiB))
                bench = Bench(params, root, minio, gateway, source)
                header(bench, args.quick)
                with bench.client() as admin:
                    admin.create_bucket(BUCKET)
                for section in SECTIONS:
                    section(bench)
    if not args.quick:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(bench.lines) + "\n")
        print(f"saved to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
