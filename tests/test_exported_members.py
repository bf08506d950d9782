import subprocess
import sys

import pytest

import refstore

SEED_NAMES = {
    "RefStore",
    "AsyncRefStore",
    "BucketManager",
    "ConfigValidator",
    "ConfigError",
    "ConnectionError",
    "RefStoreError",
    "BucketNotFoundError",
    "FileNotFoundError",
    "URIParseError",
    "retry_with_backoff",
    "RetryHandler",
    "encode_uri",
    "decode_uri",
    "validate_uri",
    "get_bucket_from_uri",
    "get_object_name_from_uri",
    "get_file_extension",
    "normalize_uri",
    "join_uri",
    "get_parent_uri",
    "parse_filename",
}


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(refstore) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(refstore, name)).__name__ == "module"}
    assert set(refstore.__all__) - {"__version__"} == public - modules
    assert refstore.__all__ == sorted(refstore.__all__)


def test_every_name_the_seed_documents_is_exported():
    assert set(refstore.__all__) >= SEED_NAMES


def test_not_found_is_also_the_builtin_file_not_found():
    assert refstore.FileNotFoundError is refstore.ObjectNotFoundError
    assert issubclass(refstore.ObjectNotFoundError, FileNotFoundError)
    assert issubclass(refstore.ConnectionError, ConnectionError)
    assert issubclass(refstore.URIParseError, ValueError)


def test_importing_refstore_does_not_import_service_or_sdk_dependencies():
    code = (
        "import sys, refstore; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'starlette', 'httpx', 'kopf', 'uvicorn', 'prometheus_client', 'tqdm'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("refstore.operator.handlers", {"fastapi", "starlette", "uvicorn", "refstore.web"}),
        ("refstore.web.app", {"kopf", "refstore.operator"}),
        ("refstore.gateway", {"kopf", "fastapi", "refstore.operator", "refstore.web"}),
    ],
)
def test_layers_point_one_way(module: str, forbidden: set[str]) -> None:
    loaded = loaded_by_importing(module, sorted(forbidden))
    assert loaded == "[]", f"{module} imports {loaded}"


def loaded_by_importing(module: str, packages: list[str]) -> str:
    """Which of ``packages`` (or their modules) a fresh interpreter has loaded after
    ``import module``, as a printed sorted list."""
    code = (
        f"import sys, {module}; "
        f"print(sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') "
        f"for f in {packages!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


STORAGE_LAYER = ("refstore.store", "refstore.aio", "refstore.config", "refstore.backends", "minio")


@pytest.mark.parametrize("module", ["refstore", "refstore.gateway"])
def test_importing_refstore_or_the_sdk_does_not_load_the_storage_layer(module: str) -> None:
    """The SDK needs errors, keys, URIs and its own types; the store, its config and the
    backends load when ``refstore.RefStore`` (or another of them) is first used."""
    loaded = loaded_by_importing(module, list(STORAGE_LAYER))
    assert loaded == "[]", f"{module} loads {loaded}"


def test_the_lazy_names_resolve_to_the_classes_of_their_modules() -> None:
    from refstore.config import StoreConfig
    from refstore.store import RefStore
    from refstore.validator import ConfigValidator

    assert refstore.RefStore is RefStore
    assert refstore.StoreConfig is StoreConfig
    assert refstore.ConfigValidator is ConfigValidator
    with pytest.raises(AttributeError, match="no_such_name"):
        refstore.no_such_name  # noqa: B018


def test_no_module_of_refstore_imports_itself_back() -> None:
    """No import cycles, also none hidden in a function body or under TYPE_CHECKING."""
    import grimp

    graph = grimp.build_graph("refstore")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module in (imported, *_packages_of(imported)):
                continue  # a package's own modules may import from its __init__
            path = graph.find_shortest_chain(importer=imported, imported=module)
            if path and not set(path) & set(_packages_of(module)):
                cycles.append(" -> ".join((module, *path)))
    assert cycles == []


def _packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]
