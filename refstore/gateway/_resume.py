"""What a rerun of ``upload_large`` needs to send only the missing parts: one small JSON
state file per (gateway, source file, target), in a cache directory.

A state names the gateway's upload session and the source file as it was (size and
modification time): a source that changed since is not resumed but started again.
The functions here block (small files); the async client runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import errors
from ..checksums import CRC32C, Hasher
from ._core import Body

STATE_DIR_ENV = "REFSTORE_STATE_DIR"


@dataclass(frozen=True)
class SourceFile:
    """A local file as an upload found it."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceFile:
        """Raises: OSError (e.g. FileNotFoundError)."""
        absolute = os.path.abspath(os.fspath(path))
        stat = os.stat(absolute)
        return cls(absolute, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class UploadState:
    """An upload session in progress, and the source it sends."""

    owner: str
    """The gateway's URL and a hash of the key that started the session."""
    target: str
    uri: str
    upload_id: str
    part_size: int
    source: SourceFile

    def matches(self, source: SourceFile) -> bool:
        """Whether ``source`` is still the file this session was sending."""
        return self.source == source

    def describe(self) -> dict[str, Any]:
        """``{"upload_id", "uri", "source", "size", "part_size"}``."""
        return {
            "upload_id": self.upload_id,
            "uri": self.uri,
            "source": self.source.path,
            "size": self.source.size,
            "part_size": self.part_size,
        }


def state_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """``given``, else ``$REFSTORE_STATE_DIR``, else ``$XDG_CACHE_HOME/refstore/uploads``
    (``~/.cache/refstore/uploads``)."""
    if given is not None:
        return Path(given)
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "refstore" / "uploads"


def state_path(directory: Path, owner: str, source_path: str, target: str) -> Path:
    """Where the state of uploading ``source_path`` to ``target`` as ``owner`` lives."""
    identity = json.dumps([owner, os.path.abspath(source_path), target])
    return directory / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"


def load(path: Path) -> UploadState | None:
    """The state in ``path``; None when there is none or it cannot be read (a torn or
    foreign file is as good as none: the upload starts again)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["source"] = SourceFile(**raw["source"])
        return UploadState(**raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save(path: Path, state: UploadState) -> None:
    """Write ``state`` atomically (a crash leaves the old file or the new one).

    Raises: OSError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(asdict(state), file)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def list_states(directory: Path) -> list[tuple[Path, UploadState]]:
    """Every readable state in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
        state = load(path)
        if state is not None:
            found.append((path, state))
    return found


def body_crc32c(body: Body, chunk_size: int) -> str:
    """The CRC32C of a body read from its file (sent in a part.s or a direct PUT.s
    ``x-amz-checksum-crc32c``, which storage checks).

    Raises:
        InvalidInputError: the file ended before the part did.
    """
    with contextlib.ExitStack() as stack:
        if body.path is not None:
            file: BinaryIO = stack.enter_context(open(body.path, "rb"))
        else:
            assert body.file is not None
            file = body.file
        file.seek(body.start)
        hasher = Hasher(sha256=False)
        remaining = body.size or 0
        while remaining > 0:
            data = file.read(min(chunk_size, remaining))
            if not data:
                raise errors.InvalidInputError(
                    f"the file ended {remaining} bytes early (did it shrink during the upload?)"
                )
            hasher.update(data)
            remaining -= len(data)
    return str(hasher.result().get(CRC32C))


def forget(directory: Path, upload_id: str) -> None:
    """Remove every state in ``directory`` that names session ``upload_id``."""
    for path, state in list_states(directory):
        if state.upload_id == upload_id:
            remove(path)
