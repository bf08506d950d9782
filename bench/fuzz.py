"""The gateway against its own OpenAPI document, at length: tests/test_schemathesis.py's
checks (no 5xx, documented statuses and content types, bodies matching their schemas)
with many more generated requests per operation.

Run by hand from the repository root::

    python bench/fuzz.py [--examples N] [--seed S] [--backend local|minio] [--out FILE]

Starts one MinIO server and a ``refstore serve`` per backend (local and MinIO), and
writes the number of cases run per operation, the failing answers by kind (each with
the first request that got it) and the outcome to bench/results/fuzz.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import library as lib  # bench/library.py: sys.path for tests/ and the repo
import schemathesis
from gateway_helpers import running_gateway, unique
from hypothesis import __version__ as hypothesis_version
from servers import MinioServer
from test_schemathesis import EXCLUDED_PATHS, FuzzOutcome, fuzz, seed_anchors

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.txt"


def backend_section(backend: str, server: MinioServer, tmp: Path) -> dict[str, Any]:
    if backend == "minio":
        return {"minio": dict(server.config()["minio"])}
    return {"local": {"root": str(tmp / "local")}}


def run(backend: str, server: MinioServer, tmp: Path, examples: int, seed: int) -> FuzzOutcome:
    settings = {**backend_section(backend, server, tmp), "default_bucket": unique("fuzz")}
    with running_gateway(backend, settings) as gateway:
        return fuzz(gateway.url, examples, seed_anchors(gateway), seed=seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=400, help="per operation (400)")
    parser.add_argument("--seed", type=int, default=20261203, help="hypothesis seed")
    parser.add_argument("--backend", choices=["local", "minio"], action="append")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"report file ({RESULTS})")
    args = parser.parse_args()
    backends = args.backend or ["local", "minio"]
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"# bench/fuzz.py  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    emit(f"# {platform.node()}: {os.cpu_count()} cores, {lib.cpu_model()}")
    emit(f"# revision {lib.git_revision()}; python {platform.python_version()}")
    emit(f"# schemathesis {schemathesis.__version__}, hypothesis {hypothesis_version}")
    emit(
        f"# up to {args.examples} examples per operation, seed {args.seed}; "
        f"not fuzzed: {', '.join(EXCLUDED_PATHS)}"
    )
    outcomes: dict[str, FuzzOutcome] = {}
    with (
        tempfile.TemporaryDirectory(prefix="refstore-fuzz-") as tmp,
        MinioServer(Path(tmp) / "minio") as server,
    ):
        for backend in backends:
            outcomes[backend] = run(backend, server, Path(tmp), args.examples, args.seed)
            emit()
            emit(f"## {backend} backend")
            emit(outcomes[backend].report())
    emit()
    total = sum(outcome.total for outcome in outcomes.values())
    failing = {b: len(o.failures) for b, o in outcomes.items() if o.failures}
    verdict = "PASS" if not failing else "FAIL"
    kinds = ", ".join(f"{b} {n}" for b, n in failing.items()) or "none"
    emit(f"outcome: {verdict}: {total} cases run; kinds of failing answers: {kinds}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
