"""Retries repeat transient failures only, with jittered exponential backoff, for plain
and async callables, and never take a keyword meant for the callee."""

import asyncio
import inspect

import pytest
from minio.error import S3Error, ServerError

from refstore import (
    ConflictError,
    ConnectionError,
    InvalidKeyError,
    ObjectNotFoundError,
    RefStoreError,
    RetryHandler,
    SourceError,
    is_transient,
    retry_with_backoff,
)
from refstore.errors import SPECS


def s3_error(code):
    return S3Error(None, code, code, None, None, None)


class Flaky:
    def __init__(self, failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def handler(max_retries=3, **kwargs):
    sleeps = []
    return RetryHandler(
        max_retries, base_delay=0.1, max_delay=0.3, sleep=sleeps.append, **kwargs
    ), sleeps


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionError("down"),
        s3_error("SlowDown"),
        s3_error("RequestTimeout"),
        s3_error("InternalError"),
        ServerError("bad gateway", 502),
        TimeoutError(),
    ],
)
def test_transient_failures_are_retried_until_success(exc):
    retry, sleeps = handler()
    flaky = Flaky([exc, exc])
    assert retry.execute(flaky) == "ok"
    assert flaky.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "exc",
    [s3_error("NoSuchKey"), s3_error("AccessDenied"), ObjectNotFoundError("x"), ValueError("bad")],
)
def test_client_errors_are_never_retried(exc):
    retry, sleeps = handler()
    flaky = Flaky([exc])
    with pytest.raises(type(exc)):
        retry.execute(flaky)
    assert flaky.calls == 1
    assert sleeps == []


def test_gives_up_after_max_retries_with_the_last_error():
    retry, _ = handler(max_retries=2)
    errors = [ConnectionError("one"), ConnectionError("two"), ConnectionError("three")]
    flaky = Flaky(errors)
    with pytest.raises(ConnectionError, match="three"):
        retry.execute(flaky)
    assert flaky.calls == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    retry = RetryHandler(5, base_delay=0.1, max_delay=0.3)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.3, 0.3]):
        delays = {retry.delay(attempt) for _ in range(50)}
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert RetryHandler(base_delay=0.1, jitter=False).delay(3) == pytest.approx(0.8)


def test_explicit_exception_types_still_skip_permanent_s3_errors():
    retry, _ = handler(exceptions=(S3Error,))
    flaky = Flaky([s3_error("NoSuchKey")])
    with pytest.raises(S3Error):
        retry.execute(flaky)
    assert flaky.calls == 1
    flaky = Flaky([s3_error("SlowDown")])
    assert retry.execute(flaky) == "ok"


def test_the_0_3_0_form_takes_exceptions_and_on_retry_for_the_handler():
    retry, sleeps = handler()
    seen = []
    flaky = Flaky([s3_error("NoSuchKey")])
    with pytest.raises(S3Error):
        retry.execute_with_callback(flaky, exceptions=(S3Error,))
    flaky = Flaky([SourceError("remote 503")])  # not retried unless listed
    with pytest.raises(SourceError):
        retry.execute(flaky)
    flaky = Flaky([SourceError("remote 503")])
    result = retry.execute_with_callback(
        flaky, exceptions=(SourceError,), on_retry=lambda n, e: seen.append((n, str(e)))
    )
    assert result == "ok" and seen == [(1, "remote 503")] and len(sleeps) == 1


def test_execute_passes_every_keyword_to_the_callee():
    retry, sleeps = handler()
    flaky = Flaky([ConnectionError("x")])

    def callee(value, *, exceptions, on_retry):
        return flaky(), value, exceptions, on_retry

    assert retry.execute(callee, 1, exceptions=("mine",), on_retry="also mine") == (
        "ok",
        1,
        ("mine",),
        "also mine",
    )
    assert len(sleeps) == 1  # the handler's own policy still applied


def test_decorator_keeps_the_seed_signature_and_reports_retries():
    seen = []
    flaky = Flaky([ConnectionError("x")])

    @retry_with_backoff(max_retries=3, base_delay=0.001, on_retry=lambda n, e: seen.append(n))
    def call(value):
        return flaky() + value

    assert call("!") == "ok!"
    assert call.__name__ == "call"
    assert seen == [1]


def test_is_transient_classification():
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(FileNotFoundError())
    assert not is_transient(s3_error("NoSuchBucket"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.cls.__name__)
def test_a_refstore_error_is_transient_exactly_when_the_error_table_says_so(spec):
    assert is_transient(spec.cls("x")) is (spec.transient is True)

    class Subclass(spec.cls):  # defined elsewhere: behaves as its parent
        pass

    assert is_transient(Subclass("x")) is (spec.transient is True)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.cls.__name__)
def test_an_s3_error_is_transient_as_the_class_its_code_stands_for(spec):
    for code in spec.s3_codes:
        assert is_transient(s3_error(code)) is (spec.transient is True), code


def test_a_listed_error_is_retried_unless_repeating_cannot_help():
    retry, _ = handler(exceptions=(RefStoreError, S3Error))
    permanent = [ConflictError("x"), InvalidKeyError("x"), s3_error("AccessDenied")]
    for error in [*permanent, s3_error("SomethingNew")]:
        flaky = Flaky([error])
        with pytest.raises(type(error)):
            retry.execute(flaky)
        assert flaky.calls == 1
    for unknown in [RefStoreError("x"), SourceError("x")]:
        assert retry.execute(Flaky([unknown])) == "ok"


# -- async callables -----------------------------------------------------------------


def test_the_decorator_retries_an_async_function_without_blocking_the_loop():
    seen = []
    other_ran = []  # at each attempt: whether another task got the loop before it

    async def main():
        ready = asyncio.Event()

        @retry_with_backoff(max_retries=3, base_delay=0, on_retry=lambda n, e: seen.append(n))
        async def call(value):
            other_ran.append(ready.is_set())  # no await in here: only the backoff yields
            if len(other_ran) < 3:
                raise ConnectionError("busy")
            return value

        async def other():
            ready.set()

        task = asyncio.create_task(other())
        result = await call("v")
        await task
        assert inspect.iscoroutinefunction(call) and call.__name__ == "call"
        return result

    assert asyncio.run(main()) == "v"
    assert other_ran == [False, True, True] and seen == [1, 2]


def test_an_async_function_gives_up_with_its_last_error_and_skips_permanent_ones():
    attempts = []

    @retry_with_backoff(max_retries=2, base_delay=0)
    async def down():
        attempts.append(1)
        raise ConnectionError(f"attempt {len(attempts)}")

    @retry_with_backoff(max_retries=2, base_delay=0)
    async def missing():
        attempts.append(2)
        raise ObjectNotFoundError("gone")

    with pytest.raises(ConnectionError, match="attempt 3"):
        asyncio.run(down())
    with pytest.raises(ObjectNotFoundError):
        asyncio.run(missing())
    assert attempts == [1, 1, 1, 2]


def test_execute_async_waits_with_the_async_sleep():
    waits = []

    async def fake_sleep(seconds):
        waits.append(seconds)

    retry = RetryHandler(2, base_delay=0.5, jitter=False, async_sleep=fake_sleep)
    flaky = Flaky([TimeoutError(), TimeoutError()])

    async def attempt(*, exceptions):
        return flaky(), exceptions

    assert asyncio.run(retry.execute_async(attempt, exceptions="callee's")) == ("ok", "callee's")
    assert waits == [0.5, 1.0]
