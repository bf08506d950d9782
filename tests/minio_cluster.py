"""A distributed (erasure coded) MinIO on one machine, behind an nginx load balancer.

Each node runs in a network namespace of its own on one bridge (netns.BridgeNetwork), since
MinIO refuses loopback endpoints in distributed mode here; every node has its own directory
(the namespaces share one filesystem). The gateway reaches one endpoint only, so nginx on
127.0.0.1 spreads requests over the nodes and routes around a dead one (passive failover:
a refused or timed-out connection is passed to the next node).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from minio import Minio
from netns import BridgeNetwork
from servers import (
    STOP_TIMEOUT,
    NginxServer,
    _http_status,
    _tail,
    _terminate,
    ensure_minio,
    ensure_nginx,
)

NODE_PORT = 9000
CONSOLE_PORT = 9001
START_TIMEOUT = 90.0
PROBE_BUCKET = "refstore-cluster-probe"

_UPSTREAM = """\
upstream minio_cluster {{
{servers}
    keepalive 32;
}}

server {{
    listen 127.0.0.1:{{port}};
    ignore_invalid_headers off;
    client_max_body_size 0;
    proxy_buffering off;
    proxy_request_buffering off;

    location / {{
        proxy_pass http://minio_cluster;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_connect_timeout 1s;
        proxy_send_timeout 120s;
        proxy_read_timeout 120s;
        proxy_next_upstream error timeout http_503;
        proxy_next_upstream_tries {nodes};
        proxy_next_upstream_timeout 10s;
    }}
}}
"""


def nginx_block(addresses: list[str], port: int = NODE_PORT) -> str:
    """The nginx ``upstream`` + ``server`` blocks balancing over ``addresses``.

    A request whose node refused the connection, did not accept it within 1 s or answered
    503 (MinIO's SlowDownWrite/SlowDownRead: that node lacks quorum in its view, which
    happens for a moment around a node's death or return) goes to the next node, unless
    nginx already streamed part of its body there (uploads are not buffered). Nodes are
    never marked down (max_fails=0): a live node's 503 would otherwise take it out too, and
    with two nodes dead every node is out and nginx answers 502 itself; a dead node's
    refused connection costs well under a millisecond.
    """
    servers = "\n".join(f"    server {address}:{port} max_fails=0;" for address in addresses)
    return _UPSTREAM.format(servers=servers, nodes=len(addresses))


class MinioCluster:
    """``nodes`` MinIO servers forming one erasure-coded deployment, and nginx in front.

        ``endpoint``/``url``/``config()`` address the load balancer (127.0.0.1); ``node_url(i)``
        a node directly (1-based). ``kill(i)`` SIGKILLs a node, ``start_node(i)`` starts it again
        on its own directory, ``cut(i)``/``mend(i)`` take a running node off the network and back,
    ``restore()`` undoes all of that and ``wait_healthy()`` waits until the cluster is whole.
    """

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 4,
        access_key: str = "refstore-test",
        secret_key: str = "refstore-test-secret",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.nodes = nodes
        self._access_key = access_key
        self._secret_key = secret_key
        self.network: BridgeNetwork | None = None
        self.nginx: NginxServer | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._cut: set[int] = set()
        self._log_dir: Path | None = None
        self._binary: Path | None = None
        self.start_seconds: float | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self.nginx is None or self.nginx.port is None:
            raise RuntimeError("the MinIO cluster is not started; call start() first")
        return f"127.0.0.1:{self.nginx.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    def _network(self) -> BridgeNetwork:
        if self.network is None:
            raise RuntimeError("the MinIO cluster is not started; call start() first")
        return self.network

    def node_endpoint(self, node: int) -> str:
        return f"{self._network().addresses[node - 1]}:{NODE_PORT}"

    def node_url(self, node: int) -> str:
        return f"http://{self.node_endpoint(node)}"

    def config(self) -> dict[str, Any]:
        """Library config pointing at the load balancer."""
        return {
            "minio": {
                "endpoint": self.endpoint,
                "access_key": self._access_key,
                "secret_key": self._secret_key,
                "secure": False,
            }
        }

    def log_path(self, node: int) -> Path:
        """Node ``node``'s combined stdout/stderr (kept across restarts until close())."""
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="refstore-minio-cluster-log-"))
        return self._log_dir / f"node{node}.log"

    def running(self, node: int) -> bool:
        proc = self._procs.get(node)
        return proc is not None and proc.poll() is None

    # -- nodes -----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # Only what MinIO needs: no proxies or MINIO_* settings of the caller leak in.
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.data_dir),
            "MINIO_ROOT_USER": self._access_key,
            "MINIO_ROOT_PASSWORD": self._secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            # Distributed mode refuses drives on the root disk unless told it is a test.
            "MINIO_CI_CD": "1",
            "MINIO_PROMETHEUS_AUTH_TYPE": "public",
        }

    def _argv(self, node: int) -> list[str]:
        assert self._binary is not None
        network = self._network()
        drives = [
            f"http://{address}:{NODE_PORT}{self.data_dir / f'n{i}'}"
            for i, address in enumerate(network.addresses, start=1)
        ]
        address = network.addresses[node - 1]
        return [
            str(self._binary),
            "server",
            "--address",
            f"{address}:{NODE_PORT}",
            "--console-address",
            f"{address}:{CONSOLE_PORT}",
            "--quiet",
            *drives,
        ]

    def start_node(self, node: int) -> None:
        """Start node ``node`` (again) without waiting for it; see wait_healthy()."""
        if self.running(node):
            return
        argv = self._argv(node)
        with open(self.log_path(node), "ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            self._procs[node] = self._network().popen(
                node, argv, env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def kill(self, node: int) -> None:
        """SIGKILL node ``node`` now (a crash) and wait until it is gone."""
        proc = self._procs.pop(node, None)
        if proc is not None:
            _terminate(proc, signal.SIGKILL, STOP_TIMEOUT)

    def cut(self, node: int) -> None:
        """Cut node ``node`` off the network: it runs on, but nobody reaches it (a partition)."""
        self._network().set_link(node, up=False)
        self._cut.add(node)

    def mend(self, node: int) -> None:
        """Join a node that was cut off to the network again."""
        self._network().set_link(node, up=True)
        self._cut.discard(node)

    def restore(self, timeout: float = START_TIMEOUT) -> float:
        """Mend every cut, start every killed node, and wait until the cluster is whole."""
        for node in sorted(self._cut):
            self.mend(node)
        for node in range(1, self.nodes + 1):
            self.start_node(node)
        return self.wait_healthy(timeout)

    def node_healthy(self, node: int) -> bool:
        """Whether node ``node`` sees every drive: the cluster would keep write quorum even
        without it (plain /minio/health/cluster answers 200 as soon as 3 of 4 drives are
        up, while a restarted node's drive is still offline in the others' view)."""
        url = f"{self.node_url(node)}/minio/health/cluster?maintenance=true"
        return _http_status(url, timeout=1.0)[0] == 200

    def drives_holding(self, bucket: str, key: str) -> list[int]:
        """The nodes whose drive holds a shard of ``bucket/key`` (its xl.meta), read from disk."""
        return [
            node
            for node in range(1, self.nodes + 1)
            if (self.data_dir / f"n{node}" / bucket / key / "xl.meta").is_file()
        ]

    def node_client(self, node: int) -> Minio:
        """minio-py straight to node ``node`` (bypassing nginx), bounded and never retrying."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=10.0), retries=urllib3.Retry(total=0)
        )
        return Minio(
            self.node_endpoint(node),
            access_key=self._access_key,
            secret_key=self._secret_key,
            secure=False,
            http_client=http,
        )

    def node_writable(self, node: int) -> bool:
        """Whether a small write through node ``node`` succeeds now and reaches every drive
        (write quorum is three of four: a node that still counts a rejoined drive offline
        writes without it)."""
        key = f"node{node}/{time.monotonic_ns()}"
        try:
            client = self.node_client(node)
            if not client.bucket_exists(PROBE_BUCKET):
                client.make_bucket(PROBE_BUCKET)
            client.put_object(PROBE_BUCKET, key, io.BytesIO(b"probe"), 5)
            whole = len(self.drives_holding(PROBE_BUCKET, key)) == self.nodes
            client.remove_object(PROBE_BUCKET, key)
        except Exception:  # any failure means "not yet"
            return False
        return whole

    def _logs(self) -> str:
        return "\n".join(
            f"--- node {node} ({self.log_path(node)}):\n{_tail(self.log_path(node), 15)}"
            for node in range(1, self.nodes + 1)
        )

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> float:
        """Wait until every node sees every drive and takes a write, and the load balancer
        answers healthy; return the seconds waited.

        Raises:
            RuntimeError: a node exited or the cluster was not whole in time (with the logs).
        """
        start = time.monotonic()
        deadline = start + timeout
        pending = set(range(1, self.nodes + 1))
        while True:
            for node in sorted(pending):
                proc = self._procs.get(node)
                if proc is None or proc.poll() is not None:
                    code = "not started" if proc is None else f"exited with code {proc.returncode}"
                    raise RuntimeError(f"MinIO cluster node {node} {code}:\n{self._logs()}")
                if self.node_healthy(node) and self.node_writable(node):
                    pending.discard(node)
            if not pending and _http_status(f"{self.url}/minio/health/cluster")[0] == 200:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"MinIO cluster not healthy after {timeout:.0f}s (nodes still waiting: "
                    f"{sorted(pending) or 'none; the load balancer is not'}):\n{self._logs()}"
                )
            time.sleep(0.2)

    # -- the whole cluster -----------------------------------------------------------------

    def start(self) -> MinioCluster:
        """Make the network, start every node and nginx, and wait until the cluster is whole.

        Raises:
            RuntimeError: saying what is missing (root, iproute2, the MinIO binary, nginx) or
                which node failed, with its log.
        """
        if self.network is not None:
            return self
        began = time.monotonic()
        self._binary = ensure_minio()
        ensure_nginx()
        _live.add(self)
        try:
            self.network = BridgeNetwork(self.nodes)
            for node in range(1, self.nodes + 1):
                (self.data_dir / f"n{node}").mkdir(parents=True, exist_ok=True)
                self.start_node(node)
            self.nginx = NginxServer(nginx_block(self.network.addresses)).start()
            self.wait_healthy()
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def close(self) -> None:
        """Stop nginx and the nodes; delete the network and the logs."""
        if self.nginx is not None:
            self.nginx.close()
            self.nginx = None
        for node in list(self._procs):
            proc = self._procs.pop(node)
            with contextlib.suppress(ProcessLookupError):
                _terminate(proc, signal.SIGTERM, STOP_TIMEOUT)
        if self.network is not None:
            self.network.close()
            self.network = None
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
        _live.discard(self)

    def __enter__(self) -> MinioCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MinioCluster(nodes={self.nodes}, data_dir={str(self.data_dir)!r})"


_live: set[MinioCluster] = set()


@atexit.register
def _close_all() -> None:
    for cluster in list(_live):
        cluster.close()
