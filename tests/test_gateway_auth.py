"""The auth scope matrix, through a real ``refstore serve`` on MinIO and on the local
backend: project keys are held to their buckets, key prefix and actions whatever the
route (URIs, ``path``, ``..`` tricks, sibling prefixes); admin endpoints need an admin
token; tokens never reach the log; ``auth.mode: none`` is explicit and logged."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from gateway_helpers import (
    BACKENDS,
    Gateway,
    assert_error,
    backend_settings,
    multipart_body,
    running_gateway,
    unique,
)

SHARED = unique("shared-bucket")
OTHER = unique("other-bucket")
ALL_ACTIONS = ["read", "write", "delete", "list", "presign"]
TOKENS = {
    name: f"tok-{name}-{secrets.token_hex(12)}"
    for name in ("admin", "tenant-a", "tenant-a-ro", "tenant-ab", "unknown")
}


def api_key(name: str, prefix: str, actions: list[str]) -> dict[str, Any]:
    return {
        "key": TOKENS[name],
        "project": name,
        "buckets": [SHARED],
        "prefix": prefix,
        "actions": actions,
    }


AUTH = {
    "mode": "keys",
    "admin_tokens": [TOKENS["admin"]],
    "api_keys": [
        api_key("tenant-a", "tenant-a/", ALL_ACTIONS),
        api_key("tenant-a-ro", "tenant-a/", ["read", "list"]),
        api_key("tenant-ab", "tenant-ab/", ALL_ACTIONS),
    ],
}


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A keys-mode gateway; its default bucket is in no project key's scope."""
    settings = backend_settings(request.param, request, tmp_path_factory)
    settings.update(default_bucket=unique("default"), auth=AUTH)
    with running_gateway(request.param, settings, TOKENS["admin"]) as gw:
        gw.create_bucket(SHARED)
        gw.create_bucket(OTHER)
        for tenant in ("tenant-a", "tenant-ab", "tenant-b"):
            gw.put(SHARED, f"{tenant}/own.txt", tenant.encode())
        yield gw


@pytest.fixture(scope="module")
def clients(gateway: Gateway) -> Iterator[dict[str | None, httpx.Client]]:
    """A client per token name, and one without a key (None)."""
    made = {name: gateway.client(token) for name, token in TOKENS.items()}
    made[None] = gateway.client()
    yield made
    for client in made.values():
        client.close()


# -- the operations of the matrix ---------------------------------------------------------


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _url_path(key: str) -> str:
    """The key in a URL path; '..' percent-encoded so the client does not resolve it."""
    return "/".join("%2E%2E" if part == ".." else quote(part) for part in key.split("/"))


def _upload(client: httpx.Client, bucket: str, key: str, data: bytes) -> httpx.Response:
    path, _, filename = key.rpartition("/")
    fields = {"logic_bucket": bucket, "path": path}
    return client.post("/upload", data=fields, files={"file": (filename, data, "text/plain")})


Call = Callable[[httpx.Client, str, str, bytes], httpx.Response]
OPERATIONS: dict[str, tuple[str, Call]] = {
    # name: (action, call(client, bucket, key, new bytes))
    "download": ("read", lambda c, b, k, _: c.get("/download", params={"uri": _uri(b, k)})),
    "info": ("read", lambda c, b, k, _: c.get("/info", params={"uri": _uri(b, k)})),
    "get-files": ("read", lambda c, b, k, _: c.get(f"/files/{b}/{_url_path(k)}")),
    "upload": ("write", _upload),
    "put-files": ("write", lambda c, b, k, d: c.put(f"/files/{b}/{_url_path(k)}", content=d)),
    "delete": (
        "delete",
        lambda c, b, k, _: c.request("DELETE", "/delete", json={"uris": [_uri(b, k)]}),
    ),
    "list": (
        "list",
        lambda c, b, k, _: c.get(
            "/list", params={"logic_bucket": b, "prefix": k.rpartition("/")[0] + "/"}
        ),
    ),
    "presign": ("presign", lambda c, b, k, _: c.get("/presigned-url", params={"uri": _uri(b, k)})),
}


@dataclass(frozen=True)
class Target:
    """Where a request points (bucket, key) and the object it would really touch."""

    bucket: str
    key: str
    real_bucket: str
    real_key: str


def target(where: str, test_id: str) -> Target:
    name = f"{test_id}/file.txt"
    if where == "other-bucket":
        return Target(OTHER, f"tenant-a/{name}", OTHER, f"tenant-a/{name}")
    if where == "dotdot":
        return Target(SHARED, f"tenant-a/../tenant-b/{name}", SHARED, f"tenant-b/{name}")
    if where == "dotdot-bucket":
        return Target(SHARED, f"tenant-a/../../{OTHER}/{name}", OTHER, name)
    return Target(SHARED, f"{where}/{name}", SHARED, f"{where}/{name}")


@dataclass(frozen=True)
class Case:
    token: str | None  # a TOKENS name, or None for no key
    where: str  # tenant-a | tenant-ab | tenant-b | other-bucket | dotdot | dotdot-bucket
    outcome: str  # ok | forbidden (403) | unauthenticated (401) | refused (400 or 403)
    read_only_outcome: str | None = None  # outcome for write/delete/presign if different


CASES = {
    "in-scope": Case("tenant-a", "tenant-a", "ok"),
    "other-bucket": Case("tenant-a", "other-bucket", "forbidden"),
    "other-prefix": Case("tenant-a", "tenant-b", "forbidden"),
    "sibling-prefix": Case("tenant-a", "tenant-ab", "forbidden"),
    "dotdot": Case("tenant-a", "dotdot", "refused"),
    "dotdot-out-of-bucket": Case("tenant-a", "dotdot-bucket", "refused"),
    "no-key": Case(None, "tenant-a", "unauthenticated"),
    "bad-key": Case("unknown", "tenant-a", "unauthenticated"),
    "read-only-key": Case("tenant-a-ro", "tenant-a", "ok", read_only_outcome="forbidden"),
    "sibling-key-own-prefix": Case("tenant-ab", "tenant-ab", "ok"),
    "sibling-key-on-tenant-a": Case("tenant-ab", "tenant-a", "forbidden"),
}


def _check_done(gw: Gateway, op: str, response: httpx.Response, spot: Target, data: bytes) -> None:
    """The operation succeeded, and did what it says."""
    assert response.status_code == 200, response.text
    uri = _uri(spot.real_bucket, spot.real_key)
    if op in ("download", "get-files"):
        assert response.content == data
    elif op == "info":
        assert response.json()["exists"] is True
        assert response.json()["info"]["size"] == len(data)
    elif op in ("upload", "put-files"):
        assert response.json()["uri"] == uri
        assert gw.read(spot.real_bucket, spot.real_key) == b"new " + data
    elif op == "delete":
        assert response.json()["deleted"] == [uri]
        assert gw.read(spot.real_bucket, spot.real_key) is None
    elif op == "list":
        assert [f["object_name"] for f in response.json()["files"]] == [spot.real_key]
    elif op == "presign":
        assert response.json()["uri"] == uri
        assert response.json()["url"].startswith("http")


def _check_refused(
    gw: Gateway, op: str, response: httpx.Response, spot: Target, data: bytes, outcome: str
) -> None:
    """The operation was refused with the outcome's status, and touched nothing."""
    if outcome == "unauthenticated":
        assert_error(response, 401, "authentication_failed")
        assert response.headers["www-authenticate"] == "Bearer"
    elif outcome == "forbidden":
        assert_error(response, 403, "permission_denied")
    elif op == "delete" and response.status_code == 200:
        # batch delete reports an invalid URI as failed instead of refusing the batch
        assert response.json()["deleted"] == [] and len(response.json()["failed"]) == 1
    else:
        assert response.status_code in (400, 403), response.text
        assert_error(response, response.status_code)
    assert data not in response.content
    assert gw.read(spot.real_bucket, spot.real_key) == data, "the object was changed"


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("op", list(OPERATIONS))
def test_scope_matrix(gateway, clients, op, case_name):
    case = CASES[case_name]
    action, call = OPERATIONS[op]
    spot = target(case.where, unique("t"))
    data = f"original bytes of {spot.real_key}".encode()
    gateway.put(spot.real_bucket, spot.real_key, data)

    response = call(clients[case.token], spot.bucket, spot.key, b"new " + data)

    outcome = case.outcome
    if case.read_only_outcome and action not in ("read", "list"):
        outcome = case.read_only_outcome
    if outcome == "ok":
        _check_done(gateway, op, response, spot, data)
    else:
        _check_refused(gateway, op, response, spot, data, outcome)


def test_a_batch_delete_with_one_uri_out_of_scope_deletes_nothing(gateway, clients):
    mine = target("tenant-a", unique("t"))
    theirs = target("tenant-b", unique("t"))
    for spot in (mine, theirs):
        gateway.put(spot.real_bucket, spot.real_key, b"keep")
    uris = [_uri(mine.bucket, mine.key), _uri(theirs.bucket, theirs.key)]
    response = clients["tenant-a"].request("DELETE", "/delete", json={"uris": uris})
    assert_error(response, 403, "permission_denied")
    assert gateway.read(mine.real_bucket, mine.real_key) == b"keep"
    assert gateway.read(theirs.real_bucket, theirs.real_key) == b"keep"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_presigning_out_of_scope_is_refused_for_either_method(gateway, clients, method):
    spot = target("tenant-b", unique("t"))
    params = {"uri": _uri(spot.bucket, spot.key), "method": method}
    assert_error(clients["tenant-a"].get("/presigned-url", params=params), 403)


def test_a_scoped_key_uploading_without_path_stays_under_its_prefix(gateway, clients):
    today = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    response = _upload_form(clients["tenant-a"], (("logic_bucket", SHARED),), b"no path")
    assert response.status_code == 200, response.text
    uri = response.json()["uri"]
    assert re.fullmatch(rf"s3://{SHARED}/tenant-a/{today}/[0-9a-f]{{32}}\.txt", uri), uri
    assert gateway.read(SHARED, uri.removeprefix(f"s3://{SHARED}/")) == b"no path"


Fields = tuple[tuple[str, str], ...]


def _upload_form(
    client: httpx.Client, fields: Fields, data: bytes, fields_after: Fields = ()
) -> httpx.Response:
    """A multipart upload with ``fields`` before the file part and ``fields_after`` after it."""
    parts = [*fields, ("file", ("form.txt", data, "text/plain")), *fields_after]
    body, content_type = multipart_body(parts)
    return client.post("/upload", content=body, headers={"Content-Type": content_type})


def test_a_scoped_key_may_send_its_fields_after_the_file(gateway, clients):
    path = f"tenant-a/{unique('late')}"
    fields = (("logic_bucket", SHARED), ("path", path))
    response = _upload_form(clients["tenant-a"], (), b"late fields", fields_after=fields)
    assert response.status_code == 200, response.text
    assert response.json()["uri"] == f"s3://{SHARED}/{path}/form.txt"
    assert gateway.keys(SHARED, f"{path}/") == [f"{path}/form.txt"]


def test_a_scoped_key_cannot_escape_its_prefix_with_a_late_path(gateway, clients):
    escape = f"tenant-b/{unique('late-escape')}"
    everything_before = gateway.keys(SHARED)
    response = _upload_form(
        clients["tenant-a"],
        (("logic_bucket", SHARED),),
        b"escaping",
        fields_after=(("path", escape),),
    )
    assert_error(response, 403, "permission_denied")
    assert gateway.keys(SHARED) == everything_before, "a refused upload left an object behind"


@pytest.mark.parametrize("prefix", ["", "tenant", "tenant-a"])
def test_a_scoped_key_listing_a_wider_prefix_sees_only_its_own(gateway, clients, prefix):
    test_id = unique("t")
    for where in ("tenant-a", "tenant-ab", "tenant-b"):
        gateway.put(SHARED, f"{where}/{test_id}.txt", b"x")
    gateway.put(SHARED, f"{test_id}-top-level.txt", b"x")
    response = clients["tenant-a"].get("/list", params={"logic_bucket": SHARED, "prefix": prefix})
    assert response.status_code == 200, response.text
    names = [f["object_name"] for f in response.json()["files"]]
    assert f"tenant-a/{test_id}.txt" in names
    assert [name for name in names if not name.startswith("tenant-a/")] == []


def test_a_scoped_key_lists_nothing_of_another_bucket(gateway, clients):
    gateway.put(OTHER, f"tenant-a/{unique('t')}.txt", b"x")
    response = clients["tenant-a"].get("/list", params={"logic_bucket": OTHER})
    assert_error(response, 403, "permission_denied")


# -- admin endpoints ----------------------------------------------------------------------


def _bucket_exists(gw: Gateway, name: str) -> bool:
    response = gw.admin.get(f"/gateway/buckets/{name}")
    assert response.status_code == 200, response.text
    exists: bool = response.json()["exists"]
    return exists


def _generation(gw: Gateway) -> int:
    generation: int = gw.admin.get("/gateway/bucket-mapping").json()["generation"]
    return generation


@dataclass(frozen=True)
class AdminCall:
    """An admin-only request, and what it changes: state(gateway, name) before/after."""

    method: str
    url: str
    body: dict[str, Any] | None = None
    state: Callable[[Gateway, str], Any] | None = None


ADMIN_CALLS = {
    "get-config": AdminCall("GET", "/gateway/config"),
    "list-buckets": AdminCall("GET", "/gateway/buckets"),
    "describe-bucket": AdminCall("GET", "/gateway/buckets/{name}"),
    "create-bucket": AdminCall("POST", "/gateway/buckets", {"name": "{name}"}, _bucket_exists),
    "delete-bucket": AdminCall(
        "DELETE", "/gateway/buckets/{name}?force=true", None, _bucket_exists
    ),
    "get-mapping": AdminCall("GET", "/gateway/bucket-mapping"),
    "put-mapping": AdminCall(
        "PUT",
        "/gateway/bucket-mapping",
        {"enable_bucket_mapping": False, "bucket_map": {}},
        lambda gw, _: _generation(gw),
    ),
}
WHO = {"admin": 200, "tenant-a": 403, "tenant-a-ro": 403, None: 401, "unknown": 401}


def _fill(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, name) for k, v in value.items()}
    return value.replace("{name}", name) if isinstance(value, str) else value


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("call_name", list(ADMIN_CALLS))
def test_admin_endpoints_need_an_admin_token(gateway, clients, call_name, who):
    call = ADMIN_CALLS[call_name]
    name = unique("admin-bkt")
    if call_name != "create-bucket":
        gateway.create_bucket(name)
        gateway.put(name, "a.txt", b"a")
    before = call.state(gateway, name) if call.state else None

    response = clients[who].request(call.method, _fill(call.url, name), json=_fill(call.body, name))

    status = WHO[who]
    if status == 200:
        assert response.status_code == 200, response.text
        if call.state:
            assert call.state(gateway, name) != before, "the admin call changed nothing"
    else:
        assert_error(response, status)
        if call.state:
            assert call.state(gateway, name) == before, "a refused call changed state"
    for token in TOKENS.values():
        assert token not in response.text


@pytest.mark.parametrize(
    ("who", "status"), [("tenant-a", 200), ("tenant-a-ro", 200), (None, 401), ("unknown", 401)]
)
def test_gateway_status_needs_any_valid_key(gateway, clients, who, status):
    response = clients[who].get("/gateway/status")
    assert response.status_code == status, response.text


def test_no_token_ever_reaches_the_log(gateway, clients):
    spot = target("tenant-a", unique("t"))
    gateway.put(spot.bucket, spot.key, b"logged?")
    for client in clients.values():
        for op in ("download", "put-files", "list"):
            OPERATIONS[op][1](client, spot.bucket, spot.key, b"x")
        client.get("/gateway/config")
    log = gateway.log()
    assert '"principal": "tenant-a"' in log, "the access log names the project instead"
    leaked = [name for name, token in TOKENS.items() if token in log]
    assert leaked == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_auth_mode_none_lets_anyone_in_and_says_so(request, tmp_path_factory, backend):
    settings = backend_settings(backend, request, tmp_path_factory)
    settings["auth"] = {"mode": "none"}
    with running_gateway(backend, settings, admin_token="") as gw, gw.client() as anonymous:
        bucket = unique("open")
        assert anonymous.post("/gateway/buckets", json={"name": bucket}).status_code == 200
        uploaded = anonymous.put(f"/files/{bucket}/anyone.txt", content=b"open")
        assert uploaded.status_code == 200, uploaded.text
        assert anonymous.get(f"/files/{bucket}/anyone.txt").content == b"open"
        assert anonymous.get("/gateway/config").json()["auth_mode"] == "none"
        warnings = [e for e in gw.log_entries() if e["level"] == "warning"]
        assert any("'none'" in e["message"] for e in warnings), gw.log()
