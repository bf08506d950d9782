"""AsyncRefStore: the same behaviour as RefStore, without blocking the event loop."""

import asyncio
import io
import os
import threading
import time

import pytest

from refstore import AsyncRefStore, ObjectNotFoundError

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
