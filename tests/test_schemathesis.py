"""The gateway answers as its OpenAPI document says: schemathesis generates requests from
``/openapi.json`` of a real ``refstore serve`` (local backend and MinIO) and checks every
answer: no 5xx, a documented status, a documented content type and a body that matches
the declared schema.

The run here is bounded for CI: a fixed number of derandomized examples per operation,
no shrinking (every failing answer is recorded with the request that got it, and the
operation goes on to its other examples, so one run shows every kind of failure).
``bench/fuzz.py`` runs the same :func:`fuzz` with many more examples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from gateway_helpers import BACKENDS, Gateway, backend_settings, running_gateway, unique
from gateway_process import ADMIN_TOKEN
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 40
"""Generated requests per operation in the bounded run (fewer where the operation's
inputs run out first)."""

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

EXCLUDED_PATHS = ("/upload-from-url",)
"""Left out of fuzzing: ``/upload-from-url`` would fetch the generated URLs, and a test
may reach only addresses on this machine (which the route refuses as private)."""

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SEED_KEY = "seed/hello.txt"


@dataclass(frozen=True)
class Anchors:
    """Things for generated requests to name, so that they get past the 400s of random
    names: the default bucket, an object in it, a spare bucket for the fuzzed bucket
    deletes, and a bucket that does not exist (named by reads and deletes only, as
    uploads create their bucket)."""

    bucket: str
    key: str
    spare_bucket: str
    missing_bucket: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def fixed(self, operation: Any) -> list[dict[str, Any]]:
        """Sets of parameters of ``operation`` to fix, as ``as_strategy`` keyword arguments."""
        method = operation.method.upper()
        variants = [self._fixed(operation, self.bucket, self.key, method == "GET")]
        if method in ("GET", "DELETE"):
            variants.append(self._fixed(operation, self.missing_bucket, self.key, True))
        return [variant for variant in variants if variant]

    def _fixed(self, operation: Any, bucket: str, key: str, reads: bool) -> dict[str, Any]:
        path: dict[str, str] = {}
        query: dict[str, str] = {}
        fixed: dict[str, Any] = {}
        if "bucket" in operation.path_parameters:
            path["bucket"] = bucket
        if "key" in operation.path_parameters and reads:
            path["key"] = key
        if "name" in operation.path_parameters:
            path["name"] = bucket if reads else self.spare_bucket
        if "uri" in operation.query:
            query["uri"] = f"s3://{bucket}/{key}"
        if "logic_bucket" in operation.query:
            query["logic_bucket"] = bucket
        if operation.path == "/delete":
            fixed["body"] = {"uris": [f"s3://{bucket}/{key}-gone"]}
        fixed.update({"path_parameters": path, "query": query})
        return {name: values for name, values in fixed.items() if values}

    def explicit(self, operation: Any) -> list[Any]:
        """Requests that generation reaches rarely or never: conditional and range reads
        of the object (their headers are not declared parameters), and presigned links
        whose signature is not ASCII."""
        if operation.path == "/presigned/{bucket}/{key}":
            link = {"bucket": self.bucket, "key": self.key}
            query = {"expires": "0", "signature": "\u00e9"}
            return [operation.Case(path_parameters=link, query=query)]
        if operation.method.upper() != "GET":
            return []
        if operation.path == "/download":
            where: dict[str, Any] = {"query": {"uri": self.uri}}
        elif operation.path == "/files/{bucket}/{key}":
            where = {"path_parameters": {"bucket": self.bucket, "key": self.key}}
        else:
            return []
        headers = [{"Range": "bytes=0-1"}, {"Range": "bytes=100-200"}, {"If-None-Match": "*"}]
        return [operation.Case(headers={**ADMIN, **extra}, **where) for extra in headers]


@dataclass
class Failure:
    """One kind of failing answer of one operation: how often, and the first one seen."""

    count: int
    example: str


@dataclass
class FuzzOutcome:
    """What a run did: requests sent per operation, and the failing answers."""

    cases: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def record(self, operation: str, kind: str, example: str) -> None:
        found = self.failures.setdefault((operation, kind), Failure(0, example))
        found.count += 1

    def report(self) -> str:
        failing = sum(failure.count for failure in self.failures.values())
        lines = [
            f"{self.total} cases over {len(self.cases)} operations in {self.seconds:.1f} s; "
            f"{failing} failing answers of {len(self.failures)} kinds"
        ]
        lines += [f"  {label}: {count}" for label, count in self.cases.items()]
        for (operation, kind), failure in self.failures.items():
            lines += ["", f"FAILED {operation}: {kind} ({failure.count} cases)", failure.example]
        return "\n".join(lines)


def load_schema(url: str) -> Any:
    """The gateway's OpenAPI document as a schemathesis schema, less the excluded paths."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30)
    return schema.exclude(path=list(EXCLUDED_PATHS))


def case_strategy(operation: Any, anchors: Anchors | None) -> st.SearchStrategy[Any]:
    """Cases of an operation: valid and invalid requests as the admin (also naming the
    anchors, where it has such parameters), and valid ones with a generated token."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE, headers=ADMIN),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=ADMIN),
        operation.as_strategy(GenerationMode.POSITIVE),
    ]
    for fixed in anchors.fixed(operation) if anchors is not None else []:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode, headers=ADMIN, **fixed))
    return st.one_of(strategies)


def fuzz(
    url: str, examples: int, anchors: Anchors | None = None, *, seed: int | None = None
) -> FuzzOutcome:
    """Send up to ``examples`` generated requests to each operation of the gateway at
    ``url`` and check every answer; derandomized unless ``seed`` is given."""
    outcome = FuzzOutcome()
    started = time.monotonic()
    for result in load_schema(url).get_all_operations():
        fuzz_operation(url, result.ok(), examples, anchors, outcome, seed)
    outcome.seconds = time.monotonic() - started
    return outcome


def fuzz_operation(
    url: str,
    operation: Any,
    examples: int,
    anchors: Anchors | None,
    outcome: FuzzOutcome,
    seed: int | None,
) -> None:
    label = operation.label
    outcome.cases[label] = 0

    @settings(
        max_examples=examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=case_strategy(operation, anchors))
    def generated(case: Any) -> None:
        check(url, label, case, outcome)

    if seed is not None:
        generated = hypothesis.seed(seed)(generated)
    generated()
    for case in anchors.explicit(operation) if anchors is not None else []:
        check(url, label, case, outcome)


def check(url: str, label: str, case: Any, outcome: FuzzOutcome) -> None:
    """Send ``case`` and record what fails in its answer."""
    outcome.cases[label] += 1
    try:
        response = case.call(base_url=url, timeout=30)
    except requests.RequestException as exc:
        outcome.record(label, f"no answer ({type(exc).__name__})", str(exc))
        return
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        for failure in group.exceptions:
            kind = f"{failure.title}, status {response.status_code}"
            outcome.record(label, kind, str(group))


def seed_anchors(gateway: Gateway) -> Anchors:
    """Create the anchors' buckets and object through the gateway's own API."""
    bucket = gateway.process.settings["default_bucket"]
    spare = unique("fuzz-spare")
    gateway.create_bucket(bucket)
    gateway.create_bucket(spare)
    gateway.put(bucket, SEED_KEY, b"hello\n", "text/plain")
    return Anchors(bucket, SEED_KEY, spare, missing_bucket=unique("fuzz-missing"))


@pytest.fixture(params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    settings_ = dict(backend_settings(request.param, request, tmp_path_factory))
    settings_["default_bucket"] = unique("fuzz")
    with running_gateway(request.param, settings_) as gateway:
        yield gateway


def test_gateway_answers_as_its_openapi_document_says(gateway: Gateway) -> None:
    outcome = fuzz(gateway.url, EXAMPLES_PER_OPERATION, seed_anchors(gateway))
    # Operations without parameters run out of inputs at once; the others must not.
    assert outcome.total >= EXAMPLES_PER_OPERATION * (len(outcome.cases) - 4), outcome.report()
    assert not outcome.failures, outcome.report()
