"""Retries with exponential backoff and jitter, for transient failures only.

Whether a RefStore error is worth repeating is the ``transient`` flag of its
entry in :mod:`refstore.errors` (:class:`~refstore.errors.ConnectionError`: the
backend was unreachable, timed out or was busy). Exceptions from outside
RefStore count as transient when they are network failures: builtin connection
errors and timeouts, urllib3 errors, minio-py's HTTP 5xx, and S3 errors whose
code the table marks transient (``SlowDown``, ``RequestTimeout``...). Never
retried, even when listed in ``exceptions=``: errors that repeating cannot fix
(invalid input, missing objects, ``NoSuchKey``, ``AccessDenied``...).

:class:`RetryHandler` runs plain and ``async`` callables (:meth:`RetryHandler.execute`,
:meth:`RetryHandler.execute_async`); :func:`retry_with_backoff` decorates either.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from . import errors

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

RetryCallback = Callable[[int, BaseException], None]
"""Called with (retry number from 1, the exception) before each wait."""


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` is worth retrying (see the module docstring)."""
    return _transience(exc) is True


def _transience(exc: BaseException) -> bool | None:
    """True: transient; False: permanent; None: unknown (retried only when listed)."""
    if isinstance(exc, errors.RefStoreError):
        return errors.spec_for(exc).transient
    try:
        from minio.error import InvalidResponseError, S3Error, ServerError
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover - minio is a hard dependency
        pass
    else:
        if isinstance(exc, S3Error):
            # A code the table does not know is taken for a client error.
            cls = errors.class_for_s3_code(exc.code)
            return False if cls is None else errors.spec_for(cls).transient
        if isinstance(exc, ServerError):
            return exc.status_code >= 500
        if isinstance(exc, (InvalidResponseError, Urllib3Error)):
            return True
    if isinstance(exc, (builtins.ConnectionError, TimeoutError)):
        return True
    return None


def _listed(types: tuple[type[BaseException], ...]) -> Callable[[BaseException], bool]:
    """Retry instances of ``types``, except errors that repeating cannot fix."""

    def predicate(exc: BaseException) -> bool:
        return isinstance(exc, types) and _transience(exc) is not False

    return predicate


class RetryHandler:
    """Runs a callable, retrying transient failures with jittered exponential backoff.

    Args:
        max_retries: Retries after the first attempt (0 = try once).
        base_delay: Delay before the first retry, in seconds.
        max_delay: Cap of any single delay, in seconds.
        exponential_base: Growth factor of the delay per attempt.
        jitter: Randomise each delay to between 50% and 100% of its value.
        retry_on: Predicate deciding which exceptions are retried
            (default :func:`is_transient`).
        sleep: Function used to wait by :meth:`execute` (injectable for tests).
        exceptions: Retry only these types (never an error repeating cannot fix);
            replaces ``retry_on``.
        on_retry: Called with (retry number, exception) before each wait.
        async_sleep: Coroutine function used to wait by :meth:`execute_async`.

    Raises:
        ValueError: ``max_retries`` is negative.
    """

    def __init__(
        self,
        max_retries: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        exponential_base: float = 2.0,
        jitter: bool = True,
        retry_on: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
        *,
        exceptions: tuple[type[BaseException], ...] | None = None,
        on_retry: RetryCallback | None = None,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.exponential_base = exponential_base
        self.jitter = jitter
        self.retry_on = retry_on if exceptions is None else _listed(exceptions)
        self.on_retry = on_retry
        self._sleep = sleep
        self._async_sleep = async_sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        delay = min(self.base_delay * self.exponential_base**attempt, self.max_delay)
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        return float(delay)

    def execute(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``func(*args, **kwargs)``, retrying as configured. Every keyword goes
        to ``func``; the handler's options are its constructor's.

        Raises:
            Whatever ``func`` raised last, unchanged.
        """
        return self._run(func, args, kwargs, self.retry_on, self.on_retry)

    async def execute_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)``, retrying as configured; waits without
        blocking the event loop.

        Raises:
            Whatever ``func`` raised last, unchanged.
        """
        attempt = 0
        while True:
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                delay = self._next_delay(func, exc, attempt, self.retry_on, self.on_retry)
                if delay is None:
                    raise
                attempt += 1
                await self._async_sleep(delay)

    def execute_with_callback(
        self,
        func: Callable[..., R],
        /,
        *args: Any,
        exceptions: tuple[type[BaseException], ...] | None = None,
        on_retry: RetryCallback | None = None,
        **kwargs: Any,
    ) -> R:
        """refstore 0.3.0's form: ``exceptions`` and ``on_retry`` are the handler's
        options for this call, other keywords go to ``func`` (to pass ``func`` keywords
        of those two names, configure the handler and use :meth:`execute`).

        Raises:
            Whatever ``func`` raised last, unchanged.
        """
        retry_on = self.retry_on if exceptions is None else _listed(exceptions)
        return self._run(func, args, kwargs, retry_on, on_retry or self.on_retry)

    def _run(
        self,
        func: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry_on: Callable[[BaseException], bool],
        on_retry: RetryCallback | None,
    ) -> R:
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                delay = self._next_delay(func, exc, attempt, retry_on, on_retry)
                if delay is None:
                    raise
                attempt += 1
                self._sleep(delay)

    def _next_delay(
        self,
        func: object,
        exc: Exception,
        attempt: int,
        retry_on: Callable[[BaseException], bool],
        on_retry: RetryCallback | None,
    ) -> float | None:
        """The wait before retrying after failed attempt ``attempt`` (0-based), or None
        to give up. Shared by the plain and the async loop."""
        if attempt >= self.max_retries or not retry_on(exc):
            return None
        delay = self.delay(attempt)
        logger.warning(
            "%s failed (%s: %s); retry %d/%d in %.2fs",
            getattr(func, "__qualname__", func),
            type(exc).__name__,
            exc,
            attempt + 1,
            self.max_retries,
            delay,
        )
        if on_retry is not None:
            on_retry(attempt + 1, exc)
        return delay


def retry_with_backoff(
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    exponential_base: float = 2.0,
    jitter: bool = True,
    exceptions: tuple[type[BaseException], ...] | None = None,
    on_retry: RetryCallback | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: retry the function on transient failures (see :class:`RetryHandler`).

    Works on plain and on ``async def`` functions (an async one is awaited on every
    attempt and waits with ``asyncio.sleep``). ``exceptions`` narrows what is retried;
    errors that repeating cannot fix (4xx, missing objects, invalid input) are never
    retried, even when listed.
    """
    handler = RetryHandler(
        max_retries,
        base_delay,
        max_delay,
        exponential_base,
        jitter,
        exceptions=exceptions,
        on_retry=on_retry,
    )

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await handler.execute_async(func, *args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return handler.execute(func, *args, **kwargs)

        return wrapper

    return decorator
