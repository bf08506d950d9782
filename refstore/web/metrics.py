"""Prometheus metrics of one gateway (a registry per app, so tests can run many)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "refstore_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "refstore_http_request_duration_seconds",
            "Time to the end of the response, by route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.transfer_bytes = Counter(
            "refstore_transfer_bytes_total",
            "Object bytes moved through the gateway.",
            ["direction"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "refstore_backend_errors_total",
            "Failed backend operations by operation and error kind.",
            ["operation", "kind"],
            registry=self.registry,
        )
        self.backend_up = Gauge(
            "refstore_backend_up", "1 when the storage backend answers.", registry=self.registry
        )
        self.mapping_generation = Gauge(
            "refstore_bucket_mapping_generation",
            "Generation of the bucket mapping in use.",
            registry=self.registry,
        )
        self.open_downloads = Gauge(
            "refstore_open_downloads",
            "Object streams currently being sent to clients.",
            registry=self.registry,
        )
        self.uploads_in_progress = Gauge(
            "refstore_uploads_in_progress",
            "Uploads admitted and not finished (each holds an upload thread).",
            registry=self.registry,
        )
        # Counted on every transfer: the children are looked up once (labels() costs more
        # than the increment), which also shows both directions from the start.
        self.bytes_in = self.transfer_bytes.labels("in")
        self.bytes_out = self.transfer_bytes.labels("out")
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() costs more than the increment: look each up once
            children = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
            self._children[key] = children
        requests, duration = children
        requests.inc()
        duration.observe(time.perf_counter() - started)
