"""What `import refstore` and `import refstore.gateway` cost: median of N -X importtime runs.

Usage: python bench/imports.py [--runs 20] [--before TREE] [module ...]

Prints, per module, the median cumulative import time of the module itself (as reported by
``python -X importtime``) and which of the heavy parts it loaded. With ``--before TREE`` (a
checkout of an earlier commit, e.g. made with ``git worktree add``) the same imports of that
tree run interleaved with this one's, and the ratio is printed: the machine's noise hits
both sides alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "refstore.store",
    "refstore.config",
    "refstore.backends",
    "minio",
    "httpx",
    "fastapi",
    "pydantic",
    "kopf",
)
REPO = Path(__file__).resolve().parent.parent


def cumulative_us(module: str, tree: Path) -> tuple[int, set[str]]:
    """One fresh interpreter importing ``module`` from ``tree``: its cumulative
    microseconds, and which of :data:`HEAVY` it loaded."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tree,
    ).stderr
    total = 0
    loaded: set[str] = set()
    for line in out.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in HEAVY:
            loaded.add(name)
        if name == module:
            total = int(cumulative)
    return total, loaded


def summary(runs: list[tuple[int, set[str]]]) -> tuple[float, str]:
    median_ms = statistics.median(t for t, _ in runs) / 1000
    loaded = sorted(set().union(*(names for _, names in runs)))
    return median_ms, ", ".join(loaded) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--before", type=Path, help="an earlier checkout to compare with")
    parser.add_argument("modules", nargs="*", default=["refstore", "refstore.gateway"])
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs per side")
    for module in args.modules:
        now: list[tuple[int, set[str]]] = []
        before: list[tuple[int, set[str]]] = []
        for _ in range(args.runs):
            now.append(cumulative_us(module, REPO))
            if args.before:
                before.append(cumulative_us(module, args.before.resolve()))
        now_ms, now_loaded = summary(now)
        print(f"import {module}")
        if args.before:
            before_ms, before_loaded = summary(before)
            print(f"  before  {before_ms:7.1f} ms   loads: {before_loaded}")
            print(f"  now     {now_ms:7.1f} ms   loads: {now_loaded}")
            print(f"  ratio   {now_ms / before_ms:7.2f}")
        else:
            print(f"  median  {now_ms:7.1f} ms   loads: {now_loaded}")


if __name__ == "__main__":
    main()
