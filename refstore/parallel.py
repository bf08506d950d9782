"""Run blocking jobs on a few threads: the CLI's transfers of many files and the sync
SDK's parts of one large upload share this one runner."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

R = TypeVar("R")


class _Skipped(Exception):
    """A job not started because an earlier one failed."""


def run_all(
    jobs: Sequence[Callable[[], R]], parallel: int, *, thread_name: str = "refstore-job"
) -> list[R]:
    """Run ``jobs`` on up to ``parallel`` threads; their results, in order.

    After a failure no further job starts; once the running ones are done, the
    first failure (in job order) is raised. On Ctrl-C nothing more starts and the
    running jobs finish on their own.
    """
    if parallel <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    failed = threading.Event()

    def guarded(job: Callable[[], R]) -> R:
        if failed.is_set():
            raise _Skipped
        try:
            return job()
        except BaseException:
            failed.set()
            raise

    pool = ThreadPoolExecutor(min(parallel, len(jobs)), thread_name_prefix=thread_name)
    try:
        futures = [pool.submit(guarded, job) for job in jobs]
        wait(futures)
    except BaseException:  # Ctrl-C: start nothing more
        failed.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, _Skipped):
            raise error
    return [future.result() for future in futures]
