"""MinIO-only behaviour: credentials, outages, a server killed mid-upload, reverse proxies."""

import inspect
import io
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from minio import Minio
from servers import MinioServer, NginxServer, free_port

from refstore import AuthenticationError, ConnectionError, RefStore
from refstore.backends.minio import MinioBackend

MiB = 1024 * 1024


def fast_failing(config, **minio_overrides):
    config = {**config, "retry": {"max_retries": 2, "base_delay": 0.05, "max_delay": 0.1}}
    config["minio"] = {**config["minio"], **minio_overrides}
    return config


def test_wrong_credentials_raise_authentication_error(minio_config):
    minio_config["minio"]["secret_key"] = "definitely-wrong"
    with RefStore(minio_config) as store, pytest.raises(AuthenticationError):
        store.list_files(logic_bucket="any-bucket")


def test_unreachable_server_raises_connection_error_after_retries(minio_config):
    config = fast_failing(minio_config, endpoint=f"127.0.0.1:{free_port()}")
    with RefStore(config) as store:
        retries = []
        store._retry.retry_on = lambda exc: retries.append(exc) or True
        with pytest.raises(ConnectionError):
            store.file_exists("s3://some-bucket/key.txt")
        assert len(retries) == 2  # two retries after the first attempt


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers (a hung backend)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_hung_server_times_out_within_the_configured_bound(minio_config, silent_server):
    config = fast_failing(minio_config, endpoint=f"127.0.0.1:{silent_server}", read_timeout=0.5)
    with RefStore(config) as store:
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            store.download_file("s3://some-bucket/key.txt")
        # 3 attempts x 0.5 s read timeout + short backoff; nowhere near minio-py's 300 s
        assert time.monotonic() - started < 5


def test_file_exists_raises_when_it_cannot_know(minio_config):
    config = fast_failing(minio_config, endpoint=f"127.0.0.1:{free_port()}")
    with RefStore(config) as store, pytest.raises(ConnectionError):
        store.file_exists("s3://some-bucket/key.txt")


class TestServerKilledMidUpload:
    @pytest.fixture
    def server(self, tmp_path):
        with MinioServer(tmp_path / "data") as server:
            yield server

    def test_caller_gets_connection_error_and_nothing_is_left_behind(self, server):
        config = fast_failing(server.config(), read_timeout=5)
        config["part_size"] = 5 * MiB
        with RefStore(config) as store:
            store.init_buckets()
            sent = 0

            def body() -> Iterator[bytes]:
                nonlocal sent
                chunk = os.urandom(MiB)
                for _ in range(256):
                    if sent == 40 * MiB:
                        server.kill()
                    sent += len(chunk)
                    yield chunk

            with pytest.raises(ConnectionError):
                store.upload_file(body(), "big.bin", path="fault")
            assert sent < 256 * MiB

            server.restart()
            uri = "s3://default/fault/big.bin"
            assert store.file_exists(uri) is False
            raw = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
            leftovers = raw._list_multipart_uploads("default", prefix="fault/").uploads
            assert leftovers == []
            assert (
                store.upload_file(b"after restart", "ok.txt", path="fault")
                == "s3://default/fault/ok.txt"
            )
            assert store.download_file("s3://default/fault/ok.txt") == b"after restart"

    def test_download_cut_mid_stream_raises_and_leaves_no_file(self, server, tmp_path):
        with RefStore(fast_failing(server.config())) as store:
            store.init_buckets()
            uri = store.upload_file(io.BytesIO(os.urandom(64 * MiB)), "d.bin", path="fault")
            target = tmp_path / "out" / "d.bin"
            target.parent.mkdir()
            received = []

            def progress(n):
                received.append(n)
                if len(received) == 2:
                    server.kill()

            with pytest.raises(ConnectionError):
                store.download_to_local(uri, target, progress=progress)
            assert list(target.parent.iterdir()) == []


def test_64_concurrent_multipart_uploads_keep_their_guards_apart(minio_config, bucket_name):
    """Each multipart upload registers a guard (to stop reading once a part fails) and
    drops it when it ends, while 63 others register and drop theirs and the guards in
    flight are looked at from another thread."""
    uploads = 64
    config = {
        **minio_config,
        "default_bucket": bucket_name,
        "max_concurrency": uploads,
        "part_size": 5 * MiB,  # minio-py's smallest: each upload is one part and one byte
    }
    part = os.urandom(5 * MiB)
    with RefStore(config) as store:
        store.init_buckets()
        backend = store.backend
        assert isinstance(backend, MinioBackend)
        start = threading.Barrier(uploads + 1)
        done = threading.Event()
        failures: list[BaseException] = []
        seen: set[str] = set()

        def upload(n: int) -> None:
            body = io.BytesIO(part + bytes([n]))
            start.wait()
            try:
                backend.put_object(
                    bucket_name, f"guards/{n}", body, -1, content_type="x/y", metadata={}
                )
            except BaseException as exc:  # collected, asserted below
                failures.append(exc)

        def look() -> None:
            start.wait()
            try:
                while not done.is_set():
                    for upload_id, _guard in backend.client.guards.items():
                        seen.add(upload_id)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=upload, args=(n,)) for n in range(uploads)]
        looker = threading.Thread(target=look)
        for thread in [*threads, looker]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        looker.join()
        assert failures == []
        assert len(seen) > 1  # the looker did overlap uploads in flight
        assert len(backend.client.guards) == 0
        listed = {obj.key: obj.size for obj in backend.list_objects(bucket_name, "guards/")}
        assert listed == {f"guards/{n}": len(part) + 1 for n in range(uploads)}
        with backend.open_object(bucket_name, "guards/7", offset=len(part)) as tail:
            assert tail.read() == bytes([7])


def _parameters(function: object) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults (annotations aside: minio-py's are strings)."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


_MINIO_HOOKS = [
    "_create_multipart_upload",
    "_upload_part",
    "_abort_multipart_upload",
    "_put_object",
    "_complete_multipart_upload",
]


def test_the_private_minio_methods_the_backend_overrides_have_the_signatures_it_expects():
    """``minio`` is pinned to the major version whose private methods the backend
    overrides; a release that changes them must fail here, loudly."""
    from minio import Minio as SDK

    from refstore.backends.minio import _Minio

    overridden = sorted(
        name
        for name in vars(_Minio)
        if name.startswith("_") and not name.startswith("__") and hasattr(SDK, name)
    )
    assert overridden == sorted(_MINIO_HOOKS)
    expected = {
        "_create_multipart_upload": ["self", "bucket_name", "object_name", "headers"],
        "_upload_part": [
            "self",
            "bucket_name",
            "object_name",
            "data",
            "headers",
            "upload_id",
            "part_number",
        ],
        "_abort_multipart_upload": ["self", "bucket_name", "object_name", "upload_id"],
        "_put_object": ["self", "bucket_name", "object_name", "data", "headers", "query_params"],
        "_complete_multipart_upload": [
            "self",
            "bucket_name",
            "object_name",
            "upload_id",
            "parts",
            "ssec",
        ],
    }
    for name in overridden:
        assert _parameters(getattr(_Minio, name)) == _parameters(getattr(SDK, name)), name
        assert [p[0] for p in _parameters(getattr(SDK, name))] == expected[name], name
    # put_object still goes through these hooks (parts in workers via _upload_part_task),
    # and the client keeps its urllib3 pool where from_client takes it.
    assert set(_MINIO_HOOKS) | {"_upload_part_task"} <= set(SDK.put_object.__code__.co_names)
    assert [name for name, _, _ in _parameters(SDK._upload_part_task)] == ["self", "args"]
    assert "_upload_part" in SDK._upload_part_task.__code__.co_names
    assert "_put_object" in SDK._upload_part.__code__.co_names  # parts carry their CRC32C
    assert SDK("127.0.0.1:9", "a", "b", secure=False)._http is not None


SEED_NGINX_BLOCK = """
server {{
    listen {{port}};
    server_name 127.0.0.1;
    location /cdip-file-system/ {{
        proxy_pass http://{minio}/;
        proxy_set_header Host {minio};
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 300;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        chunked_transfer_encoding off;
    }}
}}
"""

HOST_PRESERVING_BLOCK = """
server {{
    listen {{port}};
    location / {{
        proxy_pass http://{minio};
        proxy_set_header Host $http_host;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
"""


def put(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(request) as response:
        return int(response.status)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url) as response:
        return bytes(response.read())


class TestPresignedThroughNginx:
    def test_public_url_with_path_prefix_works_through_the_seed_nginx_config(
        self, minio_server, minio_config, bucket_name
    ):
        with NginxServer(SEED_NGINX_BLOCK.format(minio=minio_server.endpoint)) as nginx:
            config = {
                **minio_config,
                "default_bucket": bucket_name,
                "public_url": f"{nginx.url}/cdip-file-system/",
            }
            with RefStore(config) as store:
                store.init_buckets()
                uri = store.upload_file(b"through the proxy", "p.txt", path="proxied")
                url = store.get_presigned_url(uri, expiry_seconds=120)
                assert url.startswith(f"{nginx.url}/cdip-file-system/{bucket_name}/proxied/p.txt?")
                assert get(url) == b"through the proxy"

                put_uri = f"s3://{bucket_name}/proxied/uploaded.txt"
                assert put(store.get_presigned_url(put_uri, 120, "PUT"), b"put via proxy") == 200
                assert store.download_file(put_uri) == b"put via proxy"

    def test_public_endpoint_signs_for_a_host_preserving_proxy(
        self, minio_server, minio_config, bucket_name
    ):
        with NginxServer(HOST_PRESERVING_BLOCK.format(minio=minio_server.endpoint)) as nginx:
            config = {**minio_config, "default_bucket": bucket_name, "public_endpoint": nginx.url}
            with RefStore(config) as store:
                store.init_buckets()
                uri = store.upload_file(b"signed for the proxy", "e.txt", path="direct")
                url = store.get_presigned_url(uri, expiry_seconds=120)
                assert url.startswith(f"{nginx.url}/{bucket_name}/direct/e.txt?")
                assert get(url) == b"signed for the proxy"
                put_uri = f"s3://{bucket_name}/direct/put.txt"
                assert put(store.get_presigned_url(put_uri, 120, "PUT"), b"direct put") == 200
                assert store.download_file(put_uri) == b"direct put"

    def test_tampered_presigned_url_is_rejected(self, minio_config, bucket_name):
        with RefStore({**minio_config, "default_bucket": bucket_name}) as store:
            store.init_buckets()
            uri = store.upload_file(b"x", "t.txt", path="p")
            url = store.get_presigned_url(uri, 60).replace("/p/t.txt", "/p/other.txt")
            with pytest.raises(urllib.error.HTTPError) as info:
                get(url)
            info.value.close()
            assert info.value.code == 403


def _read_timeout() -> Exception:
    import urllib3

    return urllib3.exceptions.ReadTimeoutError(None, "/bucket/key", "Read timed out.")  # type: ignore[arg-type]


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_write_that_timed_out_waiting_for_its_answer_has_an_unknown_outcome(wrapped):
    import urllib3

    from refstore import errors
    from refstore.backends.minio import translate_error

    timeout = _read_timeout()
    raised = urllib3.exceptions.MaxRetryError(None, "/b/k", timeout) if wrapped else timeout  # type: ignore[arg-type]
    assert type(translate_error(raised, "b", "k", write=True)) is errors.OutcomeUnknownError
    # A read, or a write cut off while sending, did not happen: "unreachable".
    assert type(translate_error(raised, "b", "k")) is errors.ConnectionError
    cut_off = urllib3.exceptions.ProtocolError("Connection aborted.", TimeoutError("timed out"))
    assert type(translate_error(cut_off, "b", "k", write=True)) is errors.ConnectionError


def test_only_a_single_put_or_a_completion_may_have_stored():
    from refstore.backends.minio import _UploadGuard

    single = _UploadGuard()
    assert single.may_have_stored
    creating = _UploadGuard()
    creating.multipart = True  # failed creating the upload: no upload id
    assert not creating.may_have_stored
    part_failed = _UploadGuard()
    part_failed.multipart, part_failed.upload_id = True, "id"
    part_failed.failure = _read_timeout()
    assert not part_failed.may_have_stored
    completing = _UploadGuard()
    completing.multipart, completing.upload_id = True, "id"
    assert completing.may_have_stored
