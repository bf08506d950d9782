"""The ``refstore`` command end to end, in subprocesses, as scripts and people run it.

Every transfer and listing test runs on three targets with the same commands: a real
gateway process on real MinIO (``--gateway``), that MinIO directly and the local
backend directly (``--config``)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import secrets
import select
import struct
import subprocess
import sys
import termios
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from gateway_helpers import unique
from gateway_process import ADMIN_TOKEN, GatewayProcess
from relay import HoldingRelay
from servers import free_port

BUCKET = unique("cli")
READER_KEY = f"reader-{secrets.token_hex(8)}"
TENANT_KEY = f"tenant-{secrets.token_hex(8)}"
AUTH = {
    "mode": "keys",
    "admin_tokens": [ADMIN_TOKEN],
    "api_keys": [
        {"key": READER_KEY, "project": "reader", "buckets": [BUCKET], "actions": ["read", "list"]},
        {"key": TENANT_KEY, "project": "tenant", "buckets": [BUCKET], "prefix": "tenant/"},
    ],
}
MiB = 1024 * 1024
TARGETS = ["gateway", "minio-direct", "local-direct"]


@dataclass
class Cli:
    """Runs ``refstore`` against one target, with a clean environment."""

    env: dict[str, str]
    cwd: Path
    target: str = "gateway"

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        expect: int | None = 0,
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [sys.executable, "-m", "refstore.cli", *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            timeout=300,
        )
        if expect is not None:
            assert result.returncode == expect, (
                f"refstore {' '.join(args)} exited {result.returncode}, expected {expect}\n"
                f"stdout: {result.stdout.decode(errors='replace')}\n"
                f"stderr: {result.stderr.decode(errors='replace')}"
            )
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run("--json", *args, **kwargs).stdout)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REFSTORE_")}


@pytest.fixture(scope="module")
def gateway(minio_server: Any) -> Iterator[GatewayProcess]:
    settings = {**minio_server.config(), "default_bucket": BUCKET, "auth": AUTH}
    with GatewayProcess(settings) as process:
        gateway_cli(process, Path.cwd()).run("buckets", "create", BUCKET)
        yield process


@pytest.fixture(scope="module")
def config_files(minio_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-config")
    files = {
        "minio-direct": {**minio_server.config(), "default_bucket": BUCKET},
        "local-direct": {"local": {"root": str(folder / "data")}, "default_bucket": BUCKET},
    }
    paths = {}
    for name, settings in files.items():
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(settings))
        Cli({**clean_env(), "REFSTORE_CONFIG": str(paths[name])}, folder).run(
            "buckets", "create", BUCKET
        )
    return paths


def gateway_cli(gateway: GatewayProcess, cwd: Path, key: str = ADMIN_TOKEN) -> Cli:
    env = {**clean_env(), "REFSTORE_GATEWAY_URL": gateway.url, "REFSTORE_API_KEY": key}
    return Cli(env, cwd)


@pytest.fixture(params=TARGETS)
def cli(
    request: pytest.FixtureRequest,
    gateway: GatewayProcess,
    config_files: dict[str, Path],
    tmp_path: Path,
) -> Cli:
    if request.param == "gateway":
        return gateway_cli(gateway, tmp_path)
    env = {**clean_env(), "REFSTORE_CONFIG": str(config_files[request.param])}
    return Cli(env, tmp_path, request.param)


@pytest.fixture
def admin_cli(gateway: GatewayProcess, tmp_path: Path) -> Cli:
    return gateway_cli(gateway, tmp_path)


def make_tree(root: Path) -> dict[str, bytes]:
    """A directory tree with nested folders, an empty file, odd names and a multi-MiB file."""
    files = {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub/b.bin": secrets.token_bytes(300_000),
        "sub/deeper/ünï cödé.txt": b"non-ASCII name\n",
        "big/large.bin": secrets.token_bytes(9 * MiB + 123),
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def tree_digest(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# -- help ---------------------------------------------------------------------------


def test_help_lists_every_command_the_targets_and_the_exit_codes(tmp_path: Path) -> None:
    out = Cli(clean_env(), tmp_path).run("--help").stdout.decode()
    for word in ("serve", "upload", "download", "ls", "rm", "info", "presign", "buckets"):
        assert f"\n    {word}" in out
    for word in ("mapping", "status", "--gateway", "--config", "--json", "REFSTORE_GATEWAY_URL"):
        assert word in out
    for code in ("0  success", "2  usage", "3  not found", "4  permission", "5  unavailable"):
        assert code in out


def test_command_help_explains_its_arguments(tmp_path: Path) -> None:
    out = Cli(clean_env(), tmp_path).run("upload", "--help").stdout.decode()
    assert "- for stdin" in out and "s3://bucket/folder/" in out and "--gateway" in out


def test_no_target_is_a_usage_error_that_says_what_to_pass(tmp_path: Path) -> None:
    result = Cli(clean_env(), tmp_path).run("ls", expect=2)
    assert b"--gateway URL" in result.stderr and b"--config FILE" in result.stderr
    assert result.stdout == b""


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    assert b"--frobnicate" in Cli(clean_env(), tmp_path).run("ls", "--frobnicate", expect=2).stderr


# -- transfers on every target ---------------------------------------------------------


def test_recursive_upload_and_download_are_byte_identical_without_progress_output(
    cli: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    files = make_tree(source)
    folder = f"s3://{BUCKET}/{unique('tree')}/"
    upload = cli.run("upload", str(source), folder)
    assert upload.stderr == b""  # not a terminal: no progress bars, no chatter
    assert upload.stdout.decode().count("upload: ") == len(files)

    listed = cli.json("ls", "-r", folder)
    assert sorted(entry["object_name"].split("/", 1)[1] for entry in listed) == sorted(files)

    download = cli.run("download", "-r", folder, str(tmp_path / "copy"))
    assert download.stderr == b""
    assert tree_digest(tmp_path / "copy") == tree_digest(source)


@pytest.mark.parametrize("parallel", [1, 3])
def test_tree_transfers_move_parallel_files_at_once(
    gateway: GatewayProcess, tmp_path: Path, parallel: int
) -> None:
    """Through a relay that holds each request 0.2 s, as a distant gateway would."""
    source = tmp_path / "source"
    for i in range(9):
        (source / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (source / f"d{i % 3}" / f"f{i}.bin").write_bytes(secrets.token_bytes(1000 + i))
    folder = f"s3://{BUCKET}/{unique('parallel')}/"
    with HoldingRelay(gateway.url, 0.2) as relay:
        cli = gateway_cli(gateway, tmp_path)
        cli.env["REFSTORE_GATEWAY_URL"] = relay.url
        cli.run("upload", "--parallel", str(parallel), str(source), folder)
        uploads_at_once = relay.most_in_flight
        relay.reset()
        cli.run("download", "-r", "-P", str(parallel), folder, str(tmp_path / "copy"))
        downloads_at_once = relay.most_in_flight
    assert (uploads_at_once, downloads_at_once) == (parallel, parallel)
    assert tree_digest(tmp_path / "copy") == tree_digest(source)


def test_an_empty_directory_uploads_nothing_and_says_so(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    folder = f"s3://{BUCKET}/{unique('empty')}/"
    result = cli.run("--json", "upload", str(tmp_path / "empty"), folder)
    assert json.loads(result.stdout) == []
    assert b"nothing to upload" in result.stderr


def test_stdin_to_an_object_and_back_to_stdout(cli: Cli) -> None:
    data = secrets.token_bytes(3 * MiB + 17)
    uri = f"s3://{BUCKET}/{unique('pipe')}/stream.bin"
    uploaded = cli.json("upload", "-", uri, stdin=data)
    assert uploaded[0]["uri"].endswith("/stream.bin") and uploaded[0]["size"] == len(data)
    result = cli.run("download", uri, "-")
    assert result.stdout == data
    assert result.stderr == b""


def test_file_to_a_folder_keeps_its_name_and_to_a_key_takes_the_key(
    cli: Cli, tmp_path: Path
) -> None:
    local = tmp_path / "report.pdf"
    local.write_bytes(b"%PDF-1.7 fake")
    folder = f"s3://{BUCKET}/{unique('docs')}"
    out = cli.run("upload", str(local), folder + "/").stdout.decode()
    assert f"{folder}/report.pdf" in out
    cli.run("upload", str(local), folder + "/renamed.pdf")
    info = cli.json("info", folder + "/renamed.pdf")
    assert info["size"] == len(local.read_bytes())
    assert info["content_type"] == "application/pdf"

    (tmp_path / "into").mkdir()
    cli.run("download", folder + "/report.pdf", str(tmp_path / "into"))
    assert (tmp_path / "into" / "report.pdf").read_bytes() == local.read_bytes()
    cli.run("download", folder + "/renamed.pdf", str(tmp_path / "named.bin"))
    assert (tmp_path / "named.bin").read_bytes() == local.read_bytes()


def upload_files(cli: Cli, tmp_path: Path, files: dict[str, bytes]) -> str:
    """Upload ``files`` (relative path -> bytes) in one command; returns their folder URI."""
    root = tmp_path / unique("files")
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    folder = f"s3://{BUCKET}/{unique('folder')}"
    cli.run("upload", str(root), folder + "/")
    return folder


def test_ls_shows_folders_unless_recursive(cli: Cli, tmp_path: Path) -> None:
    folder = upload_files(cli, tmp_path, {"top.txt": b"1", "inner/deep.txt": b"22"})
    shallow = cli.run("ls", folder + "/").stdout.decode().splitlines()
    assert any(line.endswith(f"{folder}/top.txt") and " 1 " in line for line in shallow)
    assert any("PRE" in line and line.endswith(f"{folder}/inner/") for line in shallow)
    assert not any("deep.txt" in line for line in shallow)
    deep = cli.run("ls", "-r", folder + "/").stdout.decode()
    assert f"{folder}/inner/deep.txt" in deep and "PRE" not in deep


def test_rm_of_many_objects_needs_yes_when_it_cannot_ask(cli: Cli, tmp_path: Path) -> None:
    folder = upload_files(cli, tmp_path, {f"{n}.txt": str(n).encode() for n in range(12)})
    refused = cli.run("rm", "-r", folder, expect=2)
    assert b"--yes" in refused.stderr
    assert len(cli.json("ls", "-r", folder + "/")) == 12  # nothing was deleted

    result = cli.json("rm", "-r", folder, "--yes")
    assert len(result["deleted"]) == 12 and result["failed"] == []
    assert cli.json("ls", "-r", folder + "/") == []


def test_rm_of_listed_objects(cli: Cli, tmp_path: Path) -> None:
    folder = upload_files(cli, tmp_path, {"one.txt": b"1", "two.txt": b"2"})
    out = cli.run("rm", f"{folder}/one.txt", f"{folder}/two.txt").stdout.decode()
    assert out.count("delete: ") == 2
    cli.run("info", f"{folder}/one.txt", expect=3)


def test_presigned_url_fetches_the_object(cli: Cli, gateway: GatewayProcess) -> None:
    uri = f"s3://{BUCKET}/{unique('presign')}/p.txt"
    cli.run("upload", "-", uri, stdin=b"presigned bytes")
    url = cli.run("presign", uri, "--expiry", "120").stdout.decode().strip()
    if cli.target == "local-direct":
        # Local-backend links are HMAC-signed for a gateway on that backend to serve
        # (checked by the gateway tests); here there is no gateway to fetch from.
        assert "/presigned/" in url and "signature=" in url
        return
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"presigned bytes"


def test_status_says_the_target_answers(cli: Cli) -> None:
    status = cli.json("status")
    assert status["status"] == "connected" and status["default_bucket"] == BUCKET


# -- errors and exit codes ----------------------------------------------------------


def test_missing_object_exits_3_and_leaves_no_file(cli: Cli, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/{unique('missing')}/nothing.txt"
    result = cli.run("download", uri, str(tmp_path / "out.txt"), expect=3)
    assert b"nothing.txt" in result.stderr
    assert not (tmp_path / "out.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp file either
    assert cli.run("info", uri, expect=3).stdout == b""


def test_json_errors_are_machine_readable(cli: Cli) -> None:
    uri = f"s3://{BUCKET}/{unique('missing')}/x"
    result = cli.run("--json", "info", uri, expect=3)
    error = json.loads(result.stderr)
    assert error["code"] == "object_not_found" and error["error"] == "ObjectNotFoundError"


@pytest.mark.parametrize(
    "args",
    [
        ("info", "http://not-s3/key"),
        ("info", "s3://Bad_Bucket/key"),
        ("upload", "-", "s3://bucket/../escape"),
        ("upload", "-", "s3://bucket/folder/"),
        ("download", "s3://bucket"),
    ],
)
def test_invalid_locations_exit_2_before_any_io(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli.run(*args, expect=2)
    assert result.stderr.startswith(f"refstore {args[0]}: ".encode())


def test_missing_local_source_exits_3_and_uploads_nothing(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    folder = f"s3://{BUCKET}/{unique('partial')}/"
    result = cli.run("upload", str(tmp_path / "real.txt"), str(tmp_path / "nope"), folder, expect=3)
    assert b"nope" in result.stderr
    assert cli.json("ls", "-r", folder) == []


def test_permission_errors_exit_4(gateway: GatewayProcess, tmp_path: Path) -> None:
    reader = gateway_cli(gateway, tmp_path, READER_KEY)
    reader.run("upload", "-", f"s3://{BUCKET}/r/x", stdin=b"x", expect=4)
    tenant = gateway_cli(gateway, tmp_path, TENANT_KEY)
    tenant.run("upload", "-", f"s3://{BUCKET}/tenant/mine.txt", stdin=b"mine")
    tenant.run("download", f"s3://{BUCKET}/tenant/mine.txt", "-")
    tenant.run("upload", "-", f"s3://{BUCKET}/tenant-b/theirs.txt", stdin=b"x", expect=4)
    tenant.run("buckets", "create", unique("nope"), expect=4)
    result = gateway_cli(gateway, tmp_path, "wrong-key").run("ls", f"s3://{BUCKET}", expect=4)
    assert b"request id" in result.stderr
    assert ADMIN_TOKEN.encode() not in result.stderr and b"wrong-key" not in result.stderr


def test_unreachable_gateway_exits_5(tmp_path: Path) -> None:
    cli = Cli({**clean_env(), "REFSTORE_GATEWAY_URL": f"http://127.0.0.1:{free_port()}"}, tmp_path)
    result = cli.run("--timeout", "2", "ls", f"s3://{BUCKET}", expect=5)
    assert b"cannot reach the gateway" in result.stderr


# -- administration through the gateway ----------------------------------------------


def test_buckets_create_list_and_remove(admin_cli: Cli) -> None:
    name = unique("clib")
    admin_cli.run("buckets", "create", name)
    assert name in admin_cli.run("buckets", "ls").stdout.decode().split()
    admin_cli.run("upload", "-", f"s3://{name}/k.txt", stdin=b"k")
    assert b"not empty" in admin_cli.run("buckets", "rm", name, expect=1).stderr
    admin_cli.run("buckets", "rm", name, "--force")
    assert name not in [bucket["name"] for bucket in admin_cli.json("buckets", "ls")]


def test_mapping_set_with_versions(admin_cli: Cli) -> None:
    before = admin_cli.json("mapping", "get")
    generation = 1000 + secrets.randbelow(1000)
    try:
        changed = admin_cli.json(
            "mapping", "set", "--enable", "--map", f"logs={BUCKET}", "--version", str(generation)
        )
        assert changed["enable_bucket_mapping"] is True
        assert changed["bucket_map"] == {"logs": BUCKET}
        stale = admin_cli.run(
            "mapping", "set", "--no-enable", "--clear", "--version", str(generation - 1), expect=1
        )
        assert b"older" in stale.stderr
        assert admin_cli.json("mapping", "get")["bucket_map"] == {"logs": BUCKET}
        shown = admin_cli.run("mapping", "get").stdout.decode()
        assert f"logs -> {BUCKET}" in shown and "enabled: yes" in shown
    finally:
        admin_cli.run(
            "mapping",
            "set",
            "--enable" if before["enable_bucket_mapping"] else "--no-enable",
            "--clear",
            "--version",
            str(generation + 1),
        )


def test_mapping_set_needs_something_to_set(admin_cli: Cli) -> None:
    assert b"nothing to set" in admin_cli.run("mapping", "set", expect=2).stderr


# -- progress on a terminal -----------------------------------------------------------


def test_progress_bar_is_drawn_when_stderr_is_a_terminal(admin_cli: Cli, tmp_path: Path) -> None:
    local = tmp_path / "bar.bin"
    local.write_bytes(secrets.token_bytes(16 * MiB))
    leader, follower = pty.openpty()
    # A new pty is 0x0; tqdm (like a person) needs a terminal with some width.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [sys.executable, "-m", "refstore.cli", "upload", str(local), f"s3://{BUCKET}/bar/"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=follower, env=admin_cli.env, cwd=tmp_path
    ) as process:
        os.close(follower)
        drawn = b""
        while select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command closed its end
                break
            if not chunk:
                break
            drawn += chunk
        os.close(leader)
        assert process.stdout is not None
        assert b"s3://" in process.stdout.read()
        assert process.wait(timeout=120) == 0
    assert b"bar.bin" in drawn and b"%" in drawn and b"16.0M" in drawn


def test_a_reader_that_stops_early_gets_no_traceback(admin_cli: Cli) -> None:
    uri = f"s3://{BUCKET}/{unique('head')}/big.bin"
    admin_cli.run("upload", "-", uri, stdin=secrets.token_bytes(8 * MiB))
    command = [sys.executable, "-m", "refstore.cli", "download", uri, "-"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=admin_cli.env
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert len(process.stdout.read(10)) == 10
        process.stdout.close()  # like `| head -c 10`
        errors = process.stderr.read()
        assert process.wait(timeout=60) == 1
    assert b"Traceback" not in errors and errors == b""
