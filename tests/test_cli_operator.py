"""``refstore operator`` refuses to start without what it needs, and says what to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_operator(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}
    return subprocess.run(
        [sys.executable, "-m", "refstore.cli", "operator", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_help_explains_the_options_and_environment() -> None:
    result = run_operator("--help")
    assert result.returncode == 0
    for word in ("--namespace", "--resync", "--liveness", "REFSTORE_OPERATOR_TOKEN", "KUBECONFIG"):
        assert word in result.stdout


def test_without_a_namespace_it_exits_2_and_says_how_to_give_one() -> None:
    result = run_operator()
    assert result.returncode == 2
    assert "--namespace" in result.stderr and "REFSTORE_OPERATOR_NAMESPACE" in result.stderr


def test_a_named_token_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "token"
    result = run_operator("--namespace", "ns", REFSTORE_OPERATOR_TOKEN_FILE=str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr and "no such file" in result.stderr
