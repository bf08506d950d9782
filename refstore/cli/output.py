"""How the client commands talk back: results on stdout, everything else on stderr.

Results are human-readable lines, or one JSON document with ``--json``.
Progress bars (tqdm) appear only when stderr is a terminal, so pipes and log
files stay clean. Errors become an exit status scripts can rely on.
"""

from __future__ import annotations

import builtins
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from .. import errors

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_PERMISSION = 4
EXIT_UNAVAILABLE = 5
EXIT_INTEGRITY = 6

EXIT_CODES_HELP = """\
exit status:
  0  success
  1  any other error (some objects failed, storage refused...)
  2  usage: bad option, invalid URI, key or bucket name, bad configuration
  3  not found: no such object, bucket or local file
  4  permission denied: missing or wrong key, or out of the key's scope
  5  unavailable: the gateway or storage cannot be reached
  6  integrity: bytes differ from their checksum (nothing is kept)
"""


def exit_code_for(exc: BaseException) -> int:
    """The exit status an error maps to (see :data:`EXIT_CODES_HELP`)."""
    if isinstance(exc, (errors.NotFoundError, builtins.FileNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(exc, (errors.PermissionDeniedError, builtins.PermissionError)):
        return EXIT_PERMISSION
    if isinstance(exc, (errors.ConnectionError, builtins.ConnectionError)):
        return EXIT_UNAVAILABLE
    if isinstance(exc, errors.IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(exc, (errors.InvalidInputError, errors.ConfigError)):
        return EXIT_USAGE
    return EXIT_ERROR


class Output:
    """Where a command writes its results, messages and progress.

    Args:
        as_json: Print results as JSON documents.
        progress: Show progress bars: True, False, or None for "when stderr is a terminal".
    """

    def __init__(
        self,
        as_json: bool = False,
        progress: bool | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.show_progress = self.stderr.isatty() if progress is None else progress
        self._lock = threading.Lock()  # parallel transfers report from several threads

    def line(self, text: str) -> None:
        """A human-readable result line (suppressed with ``--json``), printed above
        any progress bar."""
        if self.as_json:
            return
        with self._lock:
            if not self.show_progress:
                print(text, file=self.stdout)
                return
            from tqdm import tqdm

            with tqdm.external_write_mode(file=self.stdout):
                print(text, file=self.stdout)

    def document(self, data: Any) -> None:
        """A result as JSON (only with ``--json``)."""
        if self.as_json:
            json.dump(data, self.stdout, indent=2, default=str, ensure_ascii=False)
            self.stdout.write("\n")

    def note(self, text: str) -> None:
        """A message for the person at the terminal, never for a pipe reading stdout."""
        print(text, file=self.stderr)

    def error(self, exc: BaseException, command: str) -> int:
        """Report ``exc`` on stderr and return the exit status it maps to."""
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        request_id = getattr(exc, "request_id", None)
        if self.as_json:
            report: dict[str, Any] = {
                "error": type(exc).__name__,
                "code": getattr(exc, "code", None),
                "detail": detail,
            }
            if request_id:
                report["request_id"] = request_id
            print(json.dumps(report, ensure_ascii=False), file=self.stderr)
        else:
            suffix = f" (request id {request_id})" if request_id else ""
            print(f"refstore {command}: {detail}{suffix}", file=self.stderr)
        return exit_code_for(exc)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Any]:
        """A callback taking byte counts, drawing a bar when progress is shown."""
        if not self.show_progress:
            yield None
            return
        from tqdm import tqdm

        with tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.stderr,
            leave=False,
            dynamic_ncols=True,
        ) as bar:

            def advance(n: int) -> None:
                with self._lock:
                    bar.update(n)

            yield advance
