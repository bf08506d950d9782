"""What `import refstore` and `import refstore.gateway` cost: median of N -X importtime runs.

Usage: python bench/imports.py [--runs 20] [module ...]
Prints, per module, the median cumulative import time of the module itself (microseconds as
reported by -X importtime, shown in ms) and which of the heavy parts it loaded.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

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


def cumulative_us(module: str) -> tuple[int, set[str]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    total = 0
    loaded: set[str] = set()
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in HEAVY:
            loaded.add(name)
        if name == module:
            total = int(cumulative)
    return total, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("modules", nargs="*", default=["refstore", "refstore.gateway"])
    args = parser.parse_args()
    for module in args.modules:
        runs = [cumulative_us(module) for _ in range(args.runs)]
        median_ms = statistics.median(t for t, _ in runs) / 1000
        loaded = sorted(set().union(*(names for _, names in runs)))
        print(
            f"import {module:<20} median {median_ms:6.1f} ms over {args.runs} runs; "
            f"loads: {', '.join(loaded) or '-'}"
        )


if __name__ == "__main__":
    main()
