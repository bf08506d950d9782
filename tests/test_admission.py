"""The gateway's guards, in process: body pacing, upload slots, the bounded storage queue,
and which refusals the SDK sends again."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge
from starlette.requests import ClientDisconnect, Request

from refstore import errors
from refstore.gateway._core import refused_unacted
from refstore.web.admission import BoundedExecutor, UploadSlots
from refstore.web.transfer import BodyPace, paced_stream, pump


def request_with(messages: list[tuple[float, dict[str, Any]]]) -> Request:
    """A request whose receive() gives each message after its delay (then waits forever)."""
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if not pending:
            await asyncio.Event().wait()
        delay, message = pending.pop(0)
        await asyncio.sleep(delay)
        return message

    return Request({"type": "http", "method": "PUT", "headers": []}, receive)


def chunk(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


async def read_all(request: Request, pace: BodyPace) -> bytes:
    return b"".join([part async for part in paced_stream(request, pace)])


def test_a_body_that_keeps_coming_is_read_whole():
    request = request_with([(0.01, chunk(b"a")), (0.01, chunk(b"b")), (0.01, chunk(b"c", False))])
    assert asyncio.run(read_all(request, BodyPace(idle_timeout=1))) == b"abc"


def test_a_body_idle_past_the_timeout_is_refused():
    request = request_with([(0, chunk(b"first"))])
    started = asyncio.run(_timed(read_all(request, BodyPace(idle_timeout=0.3))))
    assert isinstance(started[0], errors.RequestTimeoutError)
    assert "body_idle_timeout" in str(started[0])
    assert 0.3 <= started[1] < 1.5


def test_a_trickle_under_the_minimum_rate_is_refused_at_the_end_of_its_window():
    # 10 bytes every 50 ms is 200 B/s: never idle for long, but under 1000 B/s.
    request = request_with([(0.05, chunk(b"x" * 10)) for _ in range(100)])
    pace = BodyPace(idle_timeout=5, min_rate=1000, window=0.5)
    error, elapsed = asyncio.run(_timed(read_all(request, pace)))
    assert isinstance(error, errors.RequestTimeoutError)
    assert "min_body_rate" in str(error)
    assert 0.5 <= elapsed < 2


def test_a_body_above_the_minimum_rate_passes():
    request = request_with(
        [(0.02, chunk(b"x" * 100)) for _ in range(30)] + [(0, chunk(b"", False))]
    )
    pace = BodyPace(idle_timeout=5, min_rate=1000, window=0.2)
    assert asyncio.run(read_all(request, pace)) == b"x" * 3000


def test_time_the_gateway_spends_on_storage_is_not_the_clients():
    """A consumer that takes long between chunks (storage back-pressure) does not make
    the client look idle or slow."""
    request = request_with([(0, chunk(b"x" * 100)) for _ in range(4)] + [(0, chunk(b"", False))])
    pace = BodyPace(idle_timeout=0.2, min_rate=10_000, window=0.1)

    async def slow_consumer() -> bytes:
        received = b""
        async for part in paced_stream(request, pace):
            received += part
            await asyncio.sleep(0.3)  # longer than the idle timeout
        return received

    assert asyncio.run(slow_consumer()) == b"x" * 400


def test_a_client_going_away_ends_the_body_with_client_disconnect():
    request = request_with([(0, chunk(b"x")), (0, {"type": "http.disconnect"})])
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_all(request, BodyPace(idle_timeout=1)))


def test_pump_gives_the_reader_error_to_the_upload_and_waits_for_it():
    seen: list[BaseException] = []

    async def body():
        yield b"x"
        raise errors.RequestTimeoutError("too slow")

    async def upload(chunks):
        try:
            async for _ in chunks:
                pass
        except BaseException as exc:
            seen.append(exc)
            raise
        return "stored"

    with pytest.raises(errors.RequestTimeoutError):
        asyncio.run(pump(body(), upload))
    assert len(seen) == 1 and isinstance(seen[0], errors.RequestTimeoutError)


def test_pump_stops_reading_when_the_upload_fails():
    read = []

    async def body():
        for i in range(100):
            read.append(i)
            yield b"x" * (1024 * 1024)

    async def upload(chunks):
        async for _ in chunks:
            raise errors.ConnectionError("storage went away")

    with pytest.raises(errors.ConnectionError):
        asyncio.run(pump(body(), upload))
    assert len(read) < 10  # the queue depth, not the whole body


def gauge() -> Gauge:
    return Gauge("uploads", "test", registry=CollectorRegistry())


def test_upload_slots_cap_each_key_and_the_total():
    slots = UploadSlots(total=3, per_key=2, retry_after=7, gauge=gauge())
    with slots.hold("a"), slots.hold("a"):
        with pytest.raises(errors.TooManyRequestsError) as too_many, slots.hold("a"):
            pass
        assert too_many.value.context["retry_after"] == 7
        with slots.hold("b"):
            with pytest.raises(errors.BusyError) as busy, slots.hold("c"):
                pass
            assert type(busy.value) is errors.BusyError
            assert slots.active == 3
    assert slots.active == 0 and slots.held_by("a") == 0


def test_an_upload_slot_is_given_back_when_the_upload_fails():
    slots = UploadSlots(total=1, per_key=1, retry_after=1, gauge=gauge())
    with pytest.raises(RuntimeError), slots.hold("a"):
        raise RuntimeError("the upload failed")
    with slots.hold("a"):
        assert slots.active == 1


def test_the_bounded_executor_refuses_past_its_queue_and_runs_what_it_took():
    executor = BoundedExecutor(1, max_queued=2, retry_after=3, thread_name_prefix="t")
    release = threading.Event()
    try:
        running = executor.submit(release.wait)
        while executor.queued:  # the thread has taken the first call
            pass
        queued = [executor.submit(lambda: "done") for _ in range(2)]
        with pytest.raises(errors.BusyError) as busy:
            executor.submit(lambda: "refused")
        assert "max_queued_calls" in str(busy.value)
        release.set()
        assert running.result(5) is True
        assert [future.result(5) for future in queued] == ["done", "done"]
        assert executor.submit(lambda: "again").result(5) == "again"
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (429, {"detail": "x", "code": "too_many_requests"}, True),
        (429, None, True),
        (503, {"detail": "x", "code": "busy"}, True),
        (503, {"detail": "x", "code": "backend_unavailable"}, False),
        (503, None, False),
        (500, {"detail": "x", "code": "busy"}, False),
    ],
)
def test_the_sdk_sends_again_only_what_was_refused_unacted(status, body, refused):
    answer = httpx.Response(status, json=body) if body else httpx.Response(status, text="busy")
    assert refused_unacted(answer) is refused


def test_the_error_table_maps_the_refusals_back_to_their_classes():
    assert errors.http_status(errors.BusyError) == 503
    assert errors.http_status(errors.TooManyRequestsError) == 429
    assert errors.http_status(errors.RequestTimeoutError) == 408
    assert errors.error_class_for(429) is errors.TooManyRequestsError
    assert errors.error_class_for(503, "busy") is errors.BusyError
    assert errors.error_class_for(408) is errors.RequestTimeoutError
    assert issubclass(errors.BusyError, errors.ConnectionError)


async def _timed(coro: Any) -> tuple[BaseException | None, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await coro
    except BaseException as exc:
        return exc, loop.time() - started
    return None, loop.time() - started
