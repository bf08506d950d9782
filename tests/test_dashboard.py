"""The Grafana dashboard of the Helm chart queries only metrics a live gateway exports.

Every PromQL expression of the dashboard (panel targets and template variables) is reduced to
the metric names it selects; each must be the name of a sample that a real ``refstore serve``
exposes on /metrics after some traffic (histograms as ``_bucket``/``_sum``/``_count``, counters
with ``_total``: what Prometheus stores, not the family name).
"""

from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_process import ADMIN_TOKEN, GatewayProcess
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy/helm/refstore/dashboards/refstore-gateway.json"
)

# PromQL words that look like metric names: aggregations, keywords, literals.
_NOT_METRICS = {
    "and", "atan2", "avg", "bool", "bottomk", "by", "count", "count_values", "end", "group",
    "group_left", "group_right", "ignoring", "inf", "limit_ratio", "limitk", "max", "min",
    "nan", "offset", "on", "or", "quantile", "start", "stddev", "stdvar", "sum", "topk",
    "unless", "without",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")
_TEMPLATE_FUNCTION = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _VARIABLES.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        called = text[match.end() :].lstrip().startswith("(")
        if not called and name not in _NOT_METRICS:
            names.add(name)
    return names


def template_query_names(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus variable query (``label_values(expr, label)``,
    ``query_result(expr)``; ``label_names()`` and ``metrics(re)`` select none)."""
    call = _TEMPLATE_FUNCTION.match(query)
    if call is None:
        return metric_names(query)
    function, arguments = call.groups()
    if function == "label_values":
        expr, _, _label = arguments.rpartition(",")
        return metric_names(expr) if expr else set()
    if function == "query_result":
        return metric_names(arguments)
    return set()


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(where, query, metric names) for every query of the dashboard."""
    found = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f"panel {panel['title']!r} target {target.get('refId')}"
                found.append((where, target["expr"], metric_names(target["expr"])))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            text = query.get("query", "") if isinstance(query, dict) else query
            found.append((f"variable ${variable['name']}", text, template_query_names(text)))
    return found


def missing_metrics(dashboard: dict[str, Any], exported: set[str]) -> dict[str, set[str]]:
    """For each query using a metric not in ``exported``: where it is -> the unknown names."""
    return {
        f"{where}: {query}": unknown
        for where, query, names in dashboard_queries(dashboard)
        if (unknown := names - exported)
    }


def _request(url: str, method: str = "GET", data: bytes | None = None) -> int:
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


def _sample_names(gateway: GatewayProcess) -> set[str]:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Sample names on /metrics of real gateways after traffic: one on the local backend
    (uploads, downloads, listings, a 404) and one whose MinIO does not answer (backend errors,
    backend down), so that every labelled metric has samples."""
    root = tmp_path_factory.mktemp("dashboard-store")
    with GatewayProcess({"local": {"root": str(root)}}) as local:
        assert _request(f"{local.url}/files/default/docs/a.txt", "PUT", b"hello") == 200
        assert _request(f"{local.url}/files/default/docs/a.txt") == 200
        assert _request(f"{local.url}/list?bucket=default&prefix=docs") == 200
        assert _request(f"{local.url}/files/default/missing.txt") == 404
        names = _sample_names(local)
    unreachable = {
        "endpoint": f"127.0.0.1:{free_port()}",
        "access_key": "refstore",
        "secret_key": "not-a-real-secret",
        "connect_timeout": 1,
    }
    with GatewayProcess({"minio": unreachable}) as down:
        assert _request(f"{down.url}/gateway/status") == 503
        names |= _sample_names(down)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_dashboard_query_uses_metrics_the_gateway_exports(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10
    assert all(names for _, _, names in queries), "a query whose metric names were not found"
    assert missing_metrics(dashboard, exported) == {}


def test_every_exported_refstore_metric_has_a_panel(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    used = set().union(*(names for _, _, names in dashboard_queries(dashboard)))
    families = {
        re.sub(r"_(total|bucket|sum|count|created)$", "", name)
        for name in exported
        if not name.endswith("_created")
    }
    unused = {f for f in families if not any(u.startswith(f) for u in used)}
    assert unused == set()


def test_a_made_up_metric_name_is_caught(dashboard: dict[str, Any], exported: set[str]) -> None:
    broken = copy.deepcopy(dashboard)
    target = broken["panels"][0]["targets"][0]
    target["expr"] = 'sum(rate(refstore_made_up_total{pod=~"$pod"}[$__rate_interval]))'
    missing = missing_metrics(broken, exported)
    assert list(missing.values()) == [{"refstore_made_up_total"}]


@pytest.mark.parametrize(
    "expr",
    [
        # A histogram is stored as _bucket/_sum/_count, a counter with _total.
        "histogram_quantile(0.9, rate(refstore_http_request_duration_seconds[5m]))",
        "rate(refstore_http_requests[5m])",
        "refstore_backend_errors",
    ],
)
def test_a_family_name_without_its_sample_suffix_is_caught(
    dashboard: dict[str, Any], exported: set[str], expr: str
) -> None:
    broken = copy.deepcopy(dashboard)
    broken["panels"][0]["targets"][0]["expr"] = expr
    assert len(missing_metrics(broken, exported)) == 1


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le, route) (rate(a_bucket{route=~"$route", x="sum(y)"}[$__rate_interval]))',
            {"a_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) / sum(rate(b_total[5m] offset 1h)) > bool 0.5",
            {"a_total", "b_total"},
        ),
        ("max(g) - min(g) or on(pod) vector(0)", {"g"}),
        ("count without (instance) (up{job='x'}) * 1e3", {"up"}),
        ("histogram_quantile(0.99, sum(rate(h_bucket[1m:10s])) by (le))", {"h_bucket"}),
        ("a_total unless ignoring(status) group_left(pod) b_total", {"a_total", "b_total"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("label_values(refstore_backend_up, namespace)", {"refstore_backend_up"}),
        ('label_values(a{namespace=~"$namespace"}, pod)', {"a"}),
        ("label_values(namespace)", set()),
        ("query_result(sum by (pod) (a_total))", {"a_total"}),
        ("label_names()", set()),
    ],
)
def test_metric_names_of_grafana_variable_queries(query: str, names: set[str]) -> None:
    assert template_query_names(query) == names
