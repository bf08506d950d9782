"""The sync and async faces of each API offer the same members with the same parameters.

Each async class is compared with its sync twin: every public method, property and
attribute by name, and every method by its parameters (names, kinds, defaults and
annotations). The differences a face may have are the documented ones below; anything
else fails with the member it is about.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from refstore.aio import AsyncBucketManager, AsyncObjectStream, AsyncRefStore
from refstore.backends import ObjectStream
from refstore.buckets import BucketManager
from refstore.gateway import AsyncGatewayClient, GatewayClient
from refstore.gateway._async_client import AsyncDownloadStream
from refstore.gateway._sync_client import DownloadStream
from refstore.store import RefStore

# Async name -> sync name (the conventions scripts/unasync.py applies to the SDK).
RENAMED = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "aclose": "close",
    "aread": "read",
    "aiter_bytes": "iter_bytes",
}
# Dunders that belong to a face's public surface; other dunders and _private names do not.
PUBLIC_DUNDERS = {"__init__", *RENAMED, *RENAMED.values()}
# Widening the async face may make: async iterables accepted where the sync face takes data.
ASYNC_WIDENING = " | AsyncIterable[bytes]"


@dataclass
class Faces:
    """A sync class and its async twin, and what may differ between them."""

    sync: type
    async_: type
    sync_only: set[str] = field(default_factory=set)
    async_only: set[str] = field(default_factory=set)
    # Async methods that do no I/O, so they stay plain methods.
    no_io: set[str] = field(default_factory=set)
    # Optional constructor parameters only the async face has (after the sync ones).
    async_init_extras: tuple[str, ...] = ()
    # Compare the constructors (not for wrappers that users get from another call).
    compare_init: bool = True
    # Base classes whose members are protocol, not API (io.RawIOBase for ObjectStream):
    # left out, except as the twin of an async member (matched by name only).
    sync_protocol: tuple[type, ...] = ()


FACES = {
    "store": Faces(
        RefStore,
        AsyncRefStore,
        # The backend object is synchronous; the async face reaches it as ``.sync.backend``.
        sync_only={"backend"},
        async_only={"sync", "run_blocking", "max_concurrency", "with_executor"},
        no_io={
            "get_physical_bucket",
            "get_logical_bucket",
            "update_bucket_mapping",
            "verify_presigned_link",
        },
        async_init_extras=("executor", "max_concurrency"),
    ),
    "buckets": Faces(
        BucketManager,
        AsyncBucketManager,
        sync_only={"backend"},
        # It may own a thread pool, which the sync manager has no need of.
        async_only={"sync", "close", "__aenter__", "__aexit__"},
        async_init_extras=("executor",),
    ),
    "object stream": Faces(
        ObjectStream,
        AsyncObjectStream,
        compare_init=False,  # made by RefStore.open / AsyncRefStore.open
        sync_protocol=(io.RawIOBase,),
        # readinto/readable complete the io.RawIOBase protocol of the sync stream.
        sync_only={"readinto", "readable"},
    ),
    "gateway client": Faces(GatewayClient, AsyncGatewayClient),
    "gateway download stream": Faces(DownloadStream, AsyncDownloadStream, compare_init=False),
}


def normalise(annotation: Any) -> str:
    """An annotation as the sync face would spell it (``AsyncFoo`` -> ``Foo``)."""
    if annotation is inspect.Parameter.empty:
        return ""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return re.sub(r"\bAsync(?=[A-Z])", "", text)


def sync_name(name: str) -> str:
    return RENAMED.get(name, name)


def is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def members(
    cls: type, instance: object | None, protocol: tuple[type, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Public members of ``cls`` (and attributes of ``instance``), without ``object``'s;
    and, apart, those it inherits unchanged from a ``protocol`` base."""
    found: dict[str, Any] = {}
    inherited: dict[str, Any] = {}
    for name in dir(cls):
        if not is_public(name):
            continue
        value = inspect.getattr_static(cls, name)
        if value is getattr(object, name, None):
            continue
        if any(value is inspect.getattr_static(base, name, None) for base in protocol):
            inherited[name] = value
            continue
        found[name] = value
    if instance is not None:
        for name, value in vars(instance).items():
            if is_public(name):
                found.setdefault(name, value)
    return found, inherited


def is_method(value: Any) -> bool:
    return inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod))


def function(value: Any) -> Any:
    return value.__func__ if isinstance(value, (staticmethod, classmethod)) else value


def is_async(value: Any) -> bool:
    """A coroutine, async generator or async context manager function."""
    func = function(value)
    for candidate in (func, inspect.unwrap(func)):
        if inspect.iscoroutinefunction(candidate) or inspect.isasyncgenfunction(candidate):
            return True
    return False


def parameter_differences(
    name: str, sync_fn: Any, async_fn: Any, init_extras: tuple[str, ...] = ()
) -> list[str]:
    sync_params = list(inspect.signature(function(sync_fn)).parameters.values())
    async_params = list(inspect.signature(function(async_fn)).parameters.values())
    problems: list[str] = []
    if init_extras:
        extras = async_params[len(sync_params) :]
        async_params = async_params[: len(sync_params)]
        if [p.name for p in extras] != list(init_extras):
            problems.append(
                f"{name}: async-only parameters {[p.name for p in extras]},"
                f" documented {list(init_extras)}"
            )
        problems += [
            f"{name}: async-only parameter {p.name!r} needs a default"
            for p in extras
            if p.default is inspect.Parameter.empty
        ]
    if [(p.name, p.kind) for p in sync_params] != [(p.name, p.kind) for p in async_params]:
        return [
            *problems,
            f"{name}: parameters differ\n    sync:  {describe(sync_params)}"
            f"\n    async: {describe(async_params)}",
        ]
    for sp, ap in zip(sync_params, async_params, strict=True):
        if sp.default != ap.default:
            problems.append(f"{name}({sp.name}): default {sp.default!r} vs {ap.default!r}")
        sync_ann, async_ann = normalise(sp.annotation), normalise(ap.annotation)
        widened = (
            isinstance(ap.annotation, str)
            and isinstance(sp.annotation, str)
            and ap.annotation == sp.annotation + ASYNC_WIDENING
        )
        if sync_ann != async_ann and not widened:
            problems.append(f"{name}({sp.name}): annotation {sync_ann!r} vs {async_ann!r}")
    sync_ret = normalise(inspect.signature(function(sync_fn)).return_annotation)
    async_ret = normalise(inspect.signature(function(async_fn)).return_annotation)
    if name != "__init__" and sync_ret != async_ret:
        problems.append(f"{name}: returns {sync_ret!r} vs {async_ret!r}")
    return problems


def describe(params: list[inspect.Parameter]) -> str:
    return ", ".join(f"{p.name} [{p.kind.description}]" for p in params)


def face_differences(faces: Faces, sync_obj: object, async_obj: object) -> list[str]:
    sync_members, protocol_members = members(faces.sync, sync_obj, faces.sync_protocol)
    async_members, _ = members(faces.async_, async_obj)
    problems: list[str] = []
    twinned: set[str] = set()
    for name, value in sorted(async_members.items()):
        if name in faces.async_only:
            continue
        twin = sync_name(name)  # ``close`` kept beside ``aclose`` is compared the same way
        if twin in protocol_members:
            continue
        if twin not in sync_members:
            problems.append(f"{faces.async_.__name__}.{name} has no sync twin {twin!r}")
            continue
        twinned.add(twin)
        sync_value = sync_members[twin]
        if is_method(sync_value) != is_method(value):
            kinds = ("method" if is_method(v) else "attribute" for v in (sync_value, value))
            problems.append(f"{name}: sync {next(kinds)}, async {next(kinds)}")
            continue
        if not is_method(value):
            continue
        if name == "__init__":
            if faces.compare_init:
                problems += parameter_differences(name, sync_value, value, faces.async_init_extras)
            continue
        if name not in faces.no_io and name != "__aiter__" and not is_async(value):
            problems.append(f"{faces.async_.__name__}.{name} is not a coroutine function")
        problems += parameter_differences(name, sync_value, value)
    for name in sorted(set(sync_members) - twinned - faces.sync_only):
        problems.append(f"{faces.sync.__name__}.{name} has no async twin")
    for name in sorted(faces.async_only - set(async_members)):
        problems.append(f"documented async-only {name!r} is not on {faces.async_.__name__}")
    for name in sorted(faces.sync_only - set(sync_members)):
        problems.append(f"documented sync-only {name!r} is not on {faces.sync.__name__}")
    return problems


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[dict[str, tuple[object, object]]]:
    """One object of each face on the local backend (attributes set in ``__init__`` count)."""
    config = {"local": {"root": str(tmp_path / "store")}}
    sync_store = RefStore(config)
    async_store = AsyncRefStore(config)
    uri = sync_store.upload_file(b"faces", "faces.txt")
    sync_stream = sync_store.open(uri)
    async_stream = asyncio.run(async_store.open(uri))
    try:
        yield {
            "store": (sync_store, async_store),
            "buckets": (sync_store.bucket_manager, async_store.bucket_manager),
            "object stream": (sync_stream, async_stream),
        }
    finally:
        sync_stream.close()
        asyncio.run(async_stream.aclose())
        asyncio.run(async_store.aclose())
        sync_store.close()


@pytest.mark.parametrize("face", list(FACES))
def test_async_face_has_the_sync_face_members_and_parameters(
    face: str, instances: dict[str, tuple[object, object]]
) -> None:
    sync_obj, async_obj = instances.get(face, (None, None))
    problems = face_differences(FACES[face], sync_obj, async_obj)
    assert not problems, "\n".join(problems)


def test_a_changed_parameter_is_reported() -> None:
    class Sync:
        def put(self, key: str, data: bytes, *, length: int | None = None) -> str:
            return key

        def close(self) -> None: ...

    class AsyncTwin:
        async def put(self, key: str, data: bytes, **options: Any) -> str:
            return key

        async def aclose(self) -> None: ...

        async def extra(self) -> None: ...

    problems = face_differences(Faces(Sync, AsyncTwin), None, None)
    assert any(p.startswith("put: parameters differ") for p in problems)
    assert "AsyncTwin.extra has no sync twin 'extra'" in problems
    assert not any("close" in p for p in problems)


def test_a_sync_method_on_the_async_face_is_reported() -> None:
    class Sync:
        def ping(self) -> None: ...

    class AsyncTwin:
        def ping(self) -> None: ...

    assert face_differences(Faces(Sync, AsyncTwin), None, None) == [
        "AsyncTwin.ping is not a coroutine function"
    ]
