"""AsyncRefStore: the same behaviour as RefStore, without blocking the event loop."""

import asyncio
import io
import os
import socket
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

import refstore
from refstore import AsyncBucketManager, AsyncRefStore, ObjectNotFoundError, RetryHandler

MiB = 1024 * 1024


@pytest.fixture
def run():
    def runner(coro):
        return asyncio.run(coro)

    return runner


def test_seed_example_round_trip(backend_config, run):
    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            uri = await store.upload_file(b"Hello, Async RefStore!", "async_test.txt")
            assert await store.download_file(uri) == b"Hello, Async RefStore!"
            info = await store.get_file_info(uri)
            assert info["size"] == 22
            assert await store.file_exists(uri)
            assert [f["s3_uri"] for f in await store.list_files()] == [uri]
            assert (await store.delete_files([uri]))["deleted"] == [uri]
            with pytest.raises(ObjectNotFoundError):
                await store.download_file(uri)

    run(main())


def test_async_streaming_read_and_range(backend_config, run):
    data = os.urandom(3 * MiB + 5)

    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            uri = await store.upload_file(data, "s.bin", path="a")
            async with await store.open(uri, offset=MiB) as stream:
                chunks = [chunk async for chunk in stream]
            assert b"".join(chunks) == data[MiB:]
            parts = [c async for c in store.iter_file(uri, length=10)]
            assert b"".join(parts) == data[:10]

    run(main())


def test_async_iterable_body_is_streamed_as_it_arrives(backend_config, run):
    chunks = [os.urandom(MiB) for _ in range(7)]

    async def body():
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            uri = await store.upload_file(body(), "from-async.bin", path="a")
            assert await store.download_file(uri) == b"".join(chunks)

    run(main())


class BarrierBody(io.RawIOBase):
    """A body whose first read waits until ``barrier.parties`` uploads are reading at once."""

    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self._barrier = barrier
        self._sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._sent:
            return b""
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            self._barrier.wait(timeout=20)
        finally:
            with cls.lock:
                cls.in_flight -= 1
        self._sent = True
        return b"x" * 4096


def test_hundred_small_uploads_run_concurrently_within_the_bound(minio_config, run):
    """The barrier only opens when 16 uploads are in flight together; a serial
    implementation would time out on it."""
    limit = 16
    barrier = threading.Barrier(limit)

    async def main():
        async with AsyncRefStore(minio_config, max_concurrency=limit) as store:
            await store.init_buckets()
            uris = await asyncio.gather(
                *(
                    store.upload_file(BarrierBody(barrier), f"{i}.txt", path="many")
                    for i in range(96)
                )
            )
            assert len(set(uris)) == 96
            listed = await store.list_files(prefix="many/")
            assert len(listed) == 96

    run(main())
    assert BarrierBody.peak == limit


def test_event_loop_keeps_running_during_a_large_transfer(minio_config, tmp_path, run):
    data = os.urandom(64 * MiB)

    async def main():
        async with AsyncRefStore(minio_config) as store:
            await store.init_buckets()
            gaps = []
            done = asyncio.Event()

            async def ticker():
                last = time.monotonic()
                while not done.is_set():
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            uri = await store.upload_file(io.BytesIO(data), "big.bin", path="loop")
            await store.download_to_local(uri, tmp_path / "big.bin")
            done.set()
            await tick
            assert len(gaps) > 10
            assert max(gaps) < 0.5

    run(main())
    assert (tmp_path / "big.bin").read_bytes() == data


def test_upload_keywords_are_the_sync_ones(backend_config, run):
    """upload_file and upload_to take metadata, length and progress as RefStore does."""
    chunks = [b"a" * 1000, b"b" * 24]

    async def body():
        for chunk in chunks:
            yield chunk

    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            sent = []
            uri = await store.upload_file(
                body(),
                "kw.bin",
                path="kw",
                metadata={"owner": "team-a"},
                length=1024,
                progress=sent.append,
            )
            info = await store.get_file_info(uri)
            assert (info["size"], info["metadata"]) == (1024, {"owner": "team-a"})
            assert sum(sent) == 1024
            target = f"s3://{store.default_bucket}/kw/exact.txt"
            stored = await store.upload_to(
                target, b"exact", "text/plain", metadata={"owner": "team-b"}, length=5
            )
            assert stored.size == 5
            assert (await store.get_file_info(target))["metadata"] == {"owner": "team-b"}
            with pytest.raises(TypeError):
                await store.upload_file(b"x", "x.txt", no_such_option=True)

    run(main())


def test_iter_files_takes_the_sync_parameters_and_can_stop_early(backend_config, run):
    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            for name in ("a.txt", "b.txt", "c.txt"):
                await store.upload_file(b"x", name, path="it/deep")
            await store.upload_file(b"x", "top.txt", path="it")
            flat = [f async for f in store.iter_files(None, "it/", False)]
            assert sorted((f["object_name"], f["is_dir"]) for f in flat) == [
                ("it/deep/", True),
                ("it/top.txt", False),
            ]
            listing = store.iter_files(prefix="it/deep/", recursive=True)
            first = await anext(listing)
            await listing.aclose()
            assert first["object_name"].startswith("it/deep/")
            assert [f async for f in store.iter_files(prefix="it/deep/")] == await store.list_files(
                prefix="it/deep/"
            )

    run(main())


def test_stream_readall_and_read_none_return_the_rest(backend_config, run):
    async def main():
        async with AsyncRefStore(backend_config) as store:
            await store.init_buckets()
            uri = await store.upload_file(b"0123456789", "r.bin", path="r")
            async with await store.open(uri) as stream:
                assert await stream.read(3) == b"012"
                assert await stream.readall() == b"3456789"
            async with await store.open(uri, offset=4) as stream:
                assert await stream.read(None) == b"456789"

    run(main())


def test_store_settings_are_visible_on_both_faces(backend_config, run):
    backend_config["public_url"] = "https://files.example.org/storage"

    async def main():
        async with AsyncRefStore(backend_config) as store:
            assert store.public_url == store.sync.public_url == "https://files.example.org/storage"

    run(main())


def test_bucket_manager_takes_the_sync_parameters(backend_config, run):
    async def main():
        async with AsyncRefStore(backend_config) as store:
            retry = RetryHandler(max_retries=0)
            manager = AsyncBucketManager(store.sync.backend, retry)
            try:
                assert manager.sync.backend is store.sync.backend
                await manager.create_bucket("async-manager-bucket")
                assert await manager.bucket_exists("async-manager-bucket")
                assert await manager.delete_bucket("async-manager-bucket")
            finally:
                await manager.close()
            with pytest.raises(TypeError, match="retry"):
                AsyncBucketManager(store.sync.bucket_manager, retry)

    run(main())


def test_ping_answers_when_the_backend_does(backend_config, run):
    async def main():
        async with AsyncRefStore(backend_config) as store:
            assert await store.ping() is None

    run(main())


def test_ping_raises_connection_error_when_minio_is_down(run):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {"minio": {"endpoint": f"127.0.0.1:{port}", "access_key": "a", "secret_key": "b"}}

    async def main():
        async with AsyncRefStore(config) as store:
            with pytest.raises(refstore.ConnectionError):
                await store.ping()

    run(main())


def test_local_presigned_links_are_verified_without_awaiting(tmp_path, run):
    async def main():
        async with AsyncRefStore({"local": {"root": str(tmp_path / "store")}}) as store:
            await store.init_buckets()
            uri = await store.upload_file(b"link", "l.txt", path="links")
            link = urlsplit(await store.get_presigned_url(uri))
            bucket, key = unquote(link.path).split("/presigned/", 1)[1].split("/", 1)
            query = dict(parse_qsl(link.query))
            args = ("GET", bucket, key, query["expires"])
            assert store.verify_presigned_link(*args, query["signature"]) is None
            with pytest.raises(refstore.PermissionDeniedError):
                store.verify_presigned_link(*args, "0" * len(query["signature"]))

    run(main())
