"""A gateway whose bucket mapping comes from the operator, through a real ``refstore serve``
on MinIO and on the local backend: it takes no traffic until the first versioned push
(``/ready`` 503 with a reason, object requests 503, ``/health`` 200), and the operator's
token may read and update the mapping and nothing else."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import (
    BACKENDS,
    Gateway,
    assert_error,
    backend_settings,
    running_gateway,
    unique,
)

ClientFactory = Callable[[str | None], httpx.Client]
ADMIN = f"admin-{secrets.token_hex(8)}"
OPERATOR = f"operator-{secrets.token_hex(8)}"
PROJECT = f"project-{secrets.token_hex(8)}"
PHYSICAL = unique("physical")
VERSION = {"source": "bucketmapping/ns/m", "uid": "u-1", "created": "2026-01-01T00:00:00Z"}


def push(client: httpx.Client, generation: int | None, logical: str = "data") -> httpx.Response:
    body: dict[str, Any] = {"enable_bucket_mapping": True, "bucket_map": {logical: PHYSICAL}}
    if generation is not None:
        body["version"] = {**VERSION, "generation": generation}
    return client.put("/gateway/bucket-mapping", json=body)


@pytest.fixture(params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    token_file = tmp_path_factory.mktemp("tokens") / "operator-token"
    token_file.write_text(f"{OPERATOR}\n")
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings["bucket_mapping_source"] = "operator"
    settings["auth"] = {
        "mode": "keys",
        "admin_tokens": [ADMIN],
        "mapping_tokens_file": str(token_file),
        "api_keys": [{"key": PROJECT, "project": "p", "buckets": ["data"]}],
    }
    with running_gateway(request.param, settings, ADMIN) as running:
        running.create_bucket(PHYSICAL)
        yield running


@pytest.fixture
def client(gateway: Gateway) -> Iterator[ClientFactory]:
    """Clients of the gateway for a token (None: no token), closed after the test."""
    opened: list[httpx.Client] = []

    def open_client(token: str | None) -> httpx.Client:
        opened.append(gateway.client(token))
        return opened[-1]

    yield open_client
    for each in opened:
        each.close()


def assert_awaiting_mapping(response: httpx.Response) -> None:
    detail = assert_error(response, 503, "backend_unavailable")
    assert "waiting for the operator" in detail
    assert response.headers["retry-after"]


def test_until_the_first_versioned_push_the_gateway_is_alive_but_not_ready(
    gateway: Gateway,
    client: ClientFactory,
) -> None:
    anonymous = client(None)
    assert anonymous.get("/health").status_code == 200
    ready = anonymous.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unconfigured"
    assert "waiting for the operator" in ready.json()["reason"]


def test_object_requests_are_refused_until_the_mapping_arrives(gateway: Gateway) -> None:
    admin = gateway.admin
    # Raw PUT and GET /files are answered by the fast path, the others by declared routes.
    assert_awaiting_mapping(admin.put("/files/data/a.txt", content=b"x"))
    assert_awaiting_mapping(admin.get("/files/data/a.txt"))
    assert_awaiting_mapping(admin.get("/download", params={"uri": "s3://data/a.txt"}))
    assert_awaiting_mapping(admin.get("/list", params={"logic_bucket": "data"}))
    assert_awaiting_mapping(admin.post("/upload", files={"file": ("a.txt", b"x")}))
    assert_awaiting_mapping(admin.get("/info", params={"uri": "s3://data/a.txt"}))
    # What the gateway itself is about still answers.
    assert admin.get("/gateway/status").status_code == 200
    assert admin.get("/gateway/bucket-mapping").json()["version"] is None
    assert push(admin, 1).status_code == 200
    assert gateway.keys(PHYSICAL) == []  # nothing was stored meanwhile


def test_a_push_without_a_version_does_not_make_it_ready(
    gateway: Gateway, client: ClientFactory
) -> None:
    assert push(gateway.admin, None).status_code == 200
    assert client(None).get("/ready").status_code == 503
    assert_awaiting_mapping(gateway.admin.put("/files/data/a.txt", content=b"x"))


def test_the_first_versioned_push_makes_it_ready_and_the_mapping_applies(
    gateway: Gateway, client: ClientFactory
) -> None:
    operator = client(OPERATOR)
    applied = push(operator, 1)
    assert applied.status_code == 200, applied.text
    assert applied.json()["version"]["generation"] == 1
    ready = client(None).get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    stored = gateway.admin.put("/files/data/a.txt", content=b"mapped")
    assert stored.status_code == 200, stored.text
    assert gateway.read(PHYSICAL, "a.txt") == b"mapped"
    assert push(operator, 0).status_code == 409  # older than what it holds


def test_the_mapping_token_may_read_and_update_the_mapping(
    gateway: Gateway, client: ClientFactory
) -> None:
    operator = client(OPERATOR)
    assert operator.get("/gateway/bucket-mapping").status_code == 200
    assert push(operator, 1).status_code == 200
    assert operator.get("/gateway/bucket-mapping").json()["version"]["generation"] == 1
    assert push(gateway.admin, 2).status_code == 200  # admins still may


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/gateway/status", {}),
        ("GET", "/gateway/config", {}),
        ("GET", "/gateway/buckets", {}),
        ("POST", "/gateway/buckets", {"json": {"name": "operator-made"}}),
        ("DELETE", f"/gateway/buckets/{PHYSICAL}", {}),
        ("PUT", f"/files/{PHYSICAL}/x.txt", {"content": b"x"}),
        ("GET", f"/files/{PHYSICAL}/a.txt", {}),
        ("GET", "/list", {"params": {"logic_bucket": PHYSICAL}}),
        ("POST", "/upload", {"files": {"file": ("x.txt", b"x")}}),
        ("DELETE", "/delete", {"json": {"uris": [f"s3://{PHYSICAL}/a.txt"]}}),
    ],
)
def test_the_mapping_token_may_do_nothing_else(
    gateway: Gateway, client: ClientFactory, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    assert push(gateway.admin, 1).status_code == 200
    gateway.put(PHYSICAL, "a.txt", b"keep")
    response = client(OPERATOR).request(method, path, **kwargs)
    detail = assert_error(response, 403, "permission_denied")
    assert "bucket-mapping" in detail
    assert gateway.read(PHYSICAL, "a.txt") == b"keep"
    assert gateway.keys(PHYSICAL) == ["a.txt"]


def test_project_keys_may_not_touch_the_mapping(gateway: Gateway, client: ClientFactory) -> None:
    project = client(PROJECT)
    assert_error(project.get("/gateway/bucket-mapping"), 403, "permission_denied")
    assert_error(push(project, 1), 403, "permission_denied")
    assert gateway.admin.get("/gateway/bucket-mapping").json()["version"] is None


def test_the_default_source_is_the_config_and_needs_no_push(tmp_path: Path) -> None:
    settings = {"local": {"root": str(tmp_path / "store")}}
    with running_gateway("local", settings) as running:
        with running.client() as anonymous:
            assert anonymous.get("/ready").status_code == 200
        assert running.admin.put("/files/default/a.txt", content=b"x").status_code == 200
