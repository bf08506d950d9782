"""Load with and without slow uploaders beside it, through a real gateway on one MinIO.

Run by hand from the repository root::

    python bench/reliability.py [--quick] [--tree DIR] [--out FILE]

Starts one MinIO server and one gateway (``refstore serve``, MinIO backend, default limits)
and runs tests/loadgen.py's mixed load (64 clients: uploads of 4 KiB..4 MiB, downloads
checked by SHA-256, info, list) in rounds, alternately alone and with 32 slow uploaders
(4 MiB at 512 KiB/s each, a key of their own). Rounds alternate so that drifts of a shared machine
fall on both sides; the report gives each round and the ratio of the medians of the fast
operations' p99 (target: under 2x), errors and mismatches (target: zero), and every object
read back by SHA-256.

``--tree DIR`` runs the gateway from another source tree (e.g. a ``git worktree`` of an
older commit), to compare before and after a change in one run of this script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import library as lib  # bench/library.py: sys.path for tests/ and the repo
from gateway_process import ADMIN_TOKEN, GatewayProcess
from loadgen import LoadPlan, LoadResult, describe, run_load
from servers import MinioServer

SLOW_KEY = "bench-slow-uploaders"
TARGET_P99_GROWTH = 2.0


def gateway_settings(server: MinioServer) -> dict[str, object]:
    return {
        **server.config(),
        "default_bucket": "load",
        "auth": {
            "mode": "keys",
            "admin_tokens": [ADMIN_TOKEN],
            "api_keys": [{"key": SLOW_KEY, "project": "slow", "buckets": ["load"]}],
        },
    }


def run_round(url: str, plan: LoadPlan) -> LoadResult:
    return asyncio.run(run_load(url, ADMIN_TOKEN, plan, slow_token=SLOW_KEY))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 short rounds per side")
    parser.add_argument("--tree", type=Path, help="run the gateway from this source tree")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--slow", type=int, default=32, help="slow uploaders (default 32)")
    args = parser.parse_args()
    rounds, seconds = (2, 10.0) if args.quick else (3, 20.0)
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"# bench/reliability.py  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    machine = f"{platform.node()}: {os.cpu_count()} cores, {lib.cpu_model()}"
    emit(f"# {machine}; revision {lib.git_revision()}")
    emit(f"# gateway from {args.tree or 'this tree'}; {rounds} rounds x {seconds:.0f} s per side")
    env = {"PYTHONPATH": str(args.tree.resolve())} if args.tree else None
    alone: list[LoadResult] = []
    beside: list[LoadResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="refstore-reliability-") as tmp,
        MinioServer(Path(tmp) / "minio") as server,
        GatewayProcess(gateway_settings(server), env=env) as gateway,
    ):
        for i in range(rounds):
            for slow in [0, args.slow] if i % 2 == 0 else [args.slow, 0]:
                plan = LoadPlan(clients=args.clients, seconds=seconds, slow_uploaders=slow)
                result = run_round(gateway.url, plan)
                (beside if slow else alone).append(result)
                emit(f"round {i + 1}, {'with' if slow else 'without'} slow uploaders:")
                emit(describe(result))
    emit()
    emit(summarise(alone, beside))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


def summarise(alone: list[LoadResult], beside: list[LoadResult]) -> str:
    def median(results: list[LoadResult], name: str) -> float:
        return statistics.median(r.summary()[name] for r in results)

    out = ["summary (medians of the rounds):"]
    for name in ("get_p50_ms", "get_p99_ms", "info_p50_ms", "info_p99_ms", "ops_per_s"):
        a, b = median(alone, name), median(beside, name)
        out.append(f"  {name:12} without {a:8.1f}  with {b:8.1f}  ratio {b / a:5.2f}")
    growth = max(
        median(beside, "get_p99_ms") / median(alone, "get_p99_ms"),
        median(beside, "info_p99_ms") / median(alone, "info_p99_ms"),
    )
    errors = sum(r.total_errors for r in alone + beside)
    mismatches = sum(r.mismatches for r in alone + beside)
    verified = sum(r.verified for r in alone + beside)
    verdict = "met" if growth < TARGET_P99_GROWTH and errors == 0 and mismatches == 0 else "MISSED"
    out.append(
        f"  p99 growth of GET 4 KiB / info with slow uploaders: {growth:.2f}x "
        f"(target < {TARGET_P99_GROWTH:g}x); errors {errors}, mismatches {mismatches}, "
        f"objects verified {verified}: target {verdict}"
    )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
