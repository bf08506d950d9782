"""A bounded run of the mixed load (tests/loadgen.py) beside slow uploaders: zero errors and
every stored byte read back intact. bench/reliability.py is the full run, with latencies."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import BACKENDS, backend_settings, running_gateway
from gateway_process import ADMIN_TOKEN
from loadgen import LoadPlan, describe, run_load

MiB = 1024 * 1024
SLOW_KEY = "load-test-slow-uploaders"


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_load_beside_slow_uploaders_loses_nothing(backend, request, tmp_path_factory):
    settings = {
        **backend_settings(backend, request, tmp_path_factory),
        "default_bucket": "load",
        "auth": {
            "mode": "keys",
            "admin_tokens": [ADMIN_TOKEN],
            "api_keys": [{"key": SLOW_KEY, "project": "slow", "buckets": ["load"]}],
        },
        # Few storage threads, so that uploads sharing them would show at once.
        "server": {"storage_threads": 4},
    }
    plan = LoadPlan(clients=16, seconds=6, slow_uploaders=8, slow_size=2 * MiB, max_size=MiB)
    with running_gateway(backend, settings) as gateway:
        result = asyncio.run(run_load(gateway.url, ADMIN_TOKEN, plan, slow_token=SLOW_KEY))
    report = describe(result)
    assert result.total_errors == 0, report
    assert result.mismatches == 0, report
    assert result.verified >= result.ops["upload"] > 0, report
    assert result.ops["download"] > 0 and result.ops["info"] > 0 and result.ops["list"] > 0
    assert result.slow_done >= plan.slow_uploaders and not result.slow_errors, report
    assert len(result.latency["get"]) > 10 and len(result.latency["info"]) > 10, report
