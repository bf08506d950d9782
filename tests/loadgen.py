"""A mixed load against a running gateway, with slow uploaders beside it, that checks every
byte it stored: used by the bounded test (tests/test_load.py) and by bench/reliability.py.

``clients`` workers loop for ``seconds``: upload (sizes 4 KiB..4 MiB, log-uniform), download
(an object stored earlier, checked by SHA-256), info, list; a prober times the fast operations
(GET of a 4 KiB object, /info) on their own, so that their latency is not hidden behind the
mix. Meanwhile ``slow_uploaders`` send bodies at ``slow_rate`` bytes/s with a key of their own.
At the end every object the run stored is read back and compared by SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

KiB = 1024
MiB = 1024 * KiB
SMALL = 4 * KiB
PROBERS = 4
"""Concurrent probers timing the fast operations, each GET then /info, 20 ms apart."""
MIX = (("upload", 0.4), ("download", 0.3), ("info", 0.15), ("list", 0.15))


@dataclass(frozen=True)
class LoadPlan:
    clients: int = 64
    seconds: float = 30.0
    slow_uploaders: int = 0
    slow_rate: int = 512 * KiB
    slow_size: int = 4 * MiB
    min_size: int = 4 * KiB
    max_size: int = 4 * MiB
    bucket: str = "load"
    seed: int = 7


@dataclass
class LoadResult:
    plan: LoadPlan
    elapsed: float = 0.0
    ops: Counter[str] = field(default_factory=Counter)
    bytes_up: int = 0
    bytes_down: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    shed: int = 0
    mismatches: int = 0
    verified: int = 0
    slow_done: int = 0
    slow_errors: Counter[str] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=lambda: {"get": [], "info": []})

    def percentile(self, name: str, q: float) -> float:
        values = sorted(self.latency[name])
        if not values:
            return math.nan
        return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]

    @property
    def total_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        return {
            "ops_per_s": self.total_ops / self.elapsed if self.elapsed else 0.0,
            "mb_per_s": (self.bytes_up + self.bytes_down) / self.elapsed / 1e6
            if self.elapsed
            else 0.0,
            "get_p50_ms": self.percentile("get", 0.5) * 1000,
            "get_p99_ms": self.percentile("get", 0.99) * 1000,
            "info_p50_ms": self.percentile("info", 0.5) * 1000,
            "info_p99_ms": self.percentile("info", 0.99) * 1000,
            "probes": len(self.latency["get"]) + len(self.latency["info"]),
            "errors": self.total_errors,
            "shed": self.shed,
            "mismatches": self.mismatches,
            "verified": self.verified,
        }


async def _send(
    client: httpx.AsyncClient, result: LoadResult, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Send, and send again after Retry-After what the gateway refused for capacity (429,
    503 busy), as a well-behaved client does; such refusals are counted as shed."""
    while True:
        response = await client.request(method, url, **kwargs)
        refused = response.status_code == 429 or (
            response.status_code == 503 and response.json().get("code") == "busy"
        )
        if not refused:
            return response
        result.shed += 1
        await asyncio.sleep(min(float(response.headers.get("retry-after", "1")), 2.0))


def _size(rng: random.Random, plan: LoadPlan) -> int:
    return int(math.exp(rng.uniform(math.log(plan.min_size), math.log(plan.max_size))))


def _payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


async def run_load(
    url: str, token: str, plan: LoadPlan, slow_token: str | None = None
) -> LoadResult:
    """Run ``plan`` against the gateway at ``url`` (bearer ``token``; the slow uploaders
    use ``slow_token``, default ``token``)."""
    result = LoadResult(plan)
    stored: dict[str, str] = {}  # key -> SHA-256 of what the gateway said it stored
    limits = httpx.Limits(max_connections=plan.clients + 8, max_keepalive_connections=plan.clients)
    timeout = httpx.Timeout(120.0)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout, trust_env=False
    ) as client:
        probe_key = "probe/small.bin"
        probe = await client.put(f"/files/{plan.bucket}/{probe_key}", content=b"p" * SMALL)
        probe.raise_for_status()
        seed_keys = []
        for i in range(8):
            key = f"seed/{i}.bin"
            data = _payload(random.Random(i), SMALL * (i + 1))
            response = await client.put(f"/files/{plan.bucket}/{key}", content=data)
            response.raise_for_status()
            stored[key] = hashlib.sha256(data).hexdigest()
            seed_keys.append(key)

        deadline = time.monotonic() + plan.seconds
        slow_client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {slow_token or token}"},
            limits=httpx.Limits(max_connections=plan.slow_uploaders + 1),
            timeout=timeout,
            trust_env=False,
        )
        started = time.monotonic()
        async with slow_client:
            slow = [
                asyncio.create_task(_slow_uploader(slow_client, plan, i, deadline, result))
                for i in range(plan.slow_uploaders)
            ]
            tasks = [
                asyncio.create_task(_worker(client, plan, i, deadline, stored, result))
                for i in range(plan.clients)
            ]
            tasks += [
                asyncio.create_task(_prober(client, plan, probe_key, deadline, result))
                for _ in range(PROBERS)
            ]
            await asyncio.gather(*tasks)
            result.elapsed = time.monotonic() - started
            await asyncio.gather(*slow)  # the uploads in flight end whole
        await _verify(client, plan, stored, result)
    return result


async def _worker(
    client: httpx.AsyncClient,
    plan: LoadPlan,
    index: int,
    deadline: float,
    stored: dict[str, str],
    result: LoadResult,
) -> None:
    rng = random.Random(plan.seed * 1000 + index)
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    n = 0
    while time.monotonic() < deadline:
        op = rng.choices(names, weights)[0]
        try:
            if op == "upload":
                data = _payload(rng, _size(rng, plan))
                key = f"mix/{index}/{n}.bin"
                n += 1
                response = await _send(
                    client, result, "PUT", f"/files/{plan.bucket}/{key}", content=data
                )
                _check(response, op)
                if response.json()["size"] != len(data):
                    result.mismatches += 1
                stored[key] = hashlib.sha256(data).hexdigest()
                result.bytes_up += len(data)
            elif op == "download":
                key = rng.choice(sorted(stored))
                response = await _send(client, result, "GET", f"/files/{plan.bucket}/{key}")
                _check(response, op)
                if hashlib.sha256(response.content).hexdigest() != stored[key]:
                    result.mismatches += 1
                result.bytes_down += len(response.content)
            elif op == "info":
                key = rng.choice(sorted(stored))
                params = {"uri": f"s3://{plan.bucket}/{key}"}
                response = await _send(client, result, "GET", "/info", params=params)
                _check(response, op)
            else:
                params = {"logic_bucket": plan.bucket, "prefix": f"mix/{index}/"}
                response = await _send(client, result, "GET", "/list", params=params)
                _check(response, op)
            result.ops[op] += 1
        except (httpx.HTTPError, _Failed) as exc:
            result.errors[f"{op}: {exc}"[:120]] += 1


async def _prober(
    client: httpx.AsyncClient, plan: LoadPlan, key: str, deadline: float, result: LoadResult
) -> None:
    uri = f"s3://{plan.bucket}/{key}"
    while time.monotonic() < deadline:
        for name, request in (
            ("get", client.build_request("GET", f"/files/{plan.bucket}/{key}")),
            ("info", client.build_request("GET", "/info", params={"uri": uri})),
        ):
            started = time.perf_counter()
            try:
                response = await client.send(request)
                _check(response, name)
            except (httpx.HTTPError, _Failed) as exc:
                result.errors[f"probe {name}: {exc}"[:120]] += 1
                continue
            result.latency[name].append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def _slow_uploader(
    client: httpx.AsyncClient, plan: LoadPlan, index: int, deadline: float, result: LoadResult
) -> None:
    piece = max(1, plan.slow_rate // 10)

    async def trickle() -> AsyncIterator[bytes]:
        sent = 0
        while sent < plan.slow_size:
            size = min(piece, plan.slow_size - sent)
            yield b"s" * size
            sent += size
            await asyncio.sleep(0.1)

    n = 0
    while time.monotonic() < deadline:
        key = f"slow/{index}/{n}.bin"
        n += 1
        try:
            response = await client.put(
                f"/files/{plan.bucket}/{key}",
                content=trickle(),
                headers={"Content-Length": str(plan.slow_size)},
            )
            _check(response, "slow upload")
            result.slow_done += 1
        except (httpx.HTTPError, _Failed) as exc:
            result.slow_errors[str(exc)[:120]] += 1


async def _verify(
    client: httpx.AsyncClient, plan: LoadPlan, stored: dict[str, str], result: LoadResult
) -> None:
    semaphore = asyncio.Semaphore(16)

    async def check(key: str, digest: str) -> None:
        async with semaphore:
            response = await client.get(f"/files/{plan.bucket}/{key}")
            if response.status_code != 200 or hashlib.sha256(response.content).hexdigest() != (
                digest
            ):
                result.mismatches += 1
            else:
                result.verified += 1

    await asyncio.gather(*(check(key, digest) for key, digest in stored.items()))


class _Failed(Exception):
    pass


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise _Failed(f"{what}: HTTP {response.status_code} {response.text[:80]}")


def ratio(after: float, before: float) -> float:
    return after / before if before else math.nan


def describe(result: LoadResult) -> str:
    s = result.summary()
    plan = result.plan
    lines = [
        f"  {plan.clients} clients, {plan.slow_uploaders} slow uploaders "
        f"({plan.slow_rate // KiB} KiB/s each), {result.elapsed:.1f} s",
        f"  throughput: {s['ops_per_s']:.1f} ops/s, {s['mb_per_s']:.1f} MB/s "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result.ops.items()))})",
        f"  GET 4 KiB: p50 {s['get_p50_ms']:.1f} ms, p99 {s['get_p99_ms']:.1f} ms; "
        f"/info: p50 {s['info_p50_ms']:.1f} ms, p99 {s['info_p99_ms']:.1f} ms "
        f"({s['probes']} probes)",
        f"  errors: {s['errors']}, shed (429/503 busy, sent again): {s['shed']}, "
        f"mismatches: {s['mismatches']}, "
        f"objects read back by SHA-256: {s['verified']}",
    ]
    if plan.slow_uploaders:
        lines.append(
            f"  slow uploads completed: {result.slow_done}, "
            f"failed: {sum(result.slow_errors.values())}"
        )
    for error, count in result.errors.most_common(5):
        lines.append(f"    {count} x {error}")
    for error, count in result.slow_errors.most_common(3):
        lines.append(f"    slow: {count} x {error}")
    return "\n".join(lines)


__all__ = ["LoadPlan", "LoadResult", "describe", "ratio", "run_load"]
