"""Session fixtures backed by a real MinIO server."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from servers import MinioServer  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (still part of the default run)")


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO server for the whole session; failing to start is an error, never a skip."""
    server = MinioServer(tmp_path_factory.mktemp("minio-data"))
    try:
        server.start()
    except RuntimeError as err:
        server.close()
        pytest.fail(f"could not start MinIO: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def minio_config(minio_server: MinioServer) -> dict[str, Any]:
    """A fresh copy of the library config for the session MinIO server."""
    return copy.deepcopy(minio_server.config())
