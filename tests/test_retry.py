import pytest
from minio.error import S3Error, ServerError

from refstore import (
    ConnectionError,
    ObjectNotFoundError,
    RetryHandler,
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
    retry, _ = handler()
    flaky = Flaky([s3_error("NoSuchKey")])
    with pytest.raises(S3Error):
        retry.execute(flaky, exceptions=(S3Error,))
    assert flaky.calls == 1
    flaky = Flaky([s3_error("SlowDown")])
    assert retry.execute(flaky, exceptions=(S3Error,)) == "ok"


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
