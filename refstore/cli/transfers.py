"""``refstore upload`` and ``refstore download``: files, directory trees, stdin and stdout."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors
from ..parallel import run_all
from ..uri import decode_uri, encode_uri
from .locations import folder_prefix, join_key, local_path_for, split_location
from .output import Output
from .targets import Target

STDIO = "-"
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class Upload:
    """One file (or stdin) and the object URI it goes to."""

    source: str
    uri: str
    size: int | None


def plan_uploads(sources: list[str], destination: str) -> list[Upload]:
    """Every upload ``refstore upload SOURCES DESTINATION`` makes, checked before any I/O.

    A destination ending in ``/`` (or a bare bucket, several sources, a directory)
    is a folder: files keep their names below it, directories their tree.
    Otherwise it is the object's full URI.

    Raises:
        URIParseError: the destination is not an ``s3://`` location.
        InvalidInputError: stdin given with a folder destination.
        FileNotFoundError: (builtin) a source does not exist.
    """
    bucket, prefix = split_location(destination)
    into_folder = (
        destination.endswith("/")
        or not prefix
        or len(sources) > 1
        or any(source != STDIO and os.path.isdir(source) for source in sources)
    )
    uploads: list[Upload] = []
    for source in sources:
        if source == STDIO:
            if into_folder:
                raise errors.InvalidInputError(
                    "standard input needs a full object URI as destination, "
                    f"e.g. s3://{bucket}/{join_key(prefix, 'data.bin')}"
                )
            uploads.append(Upload(STDIO, encode_uri(bucket, prefix), None))
            continue
        path = Path(source)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                key = join_key(prefix, file.relative_to(path).as_posix())
                uploads.append(Upload(str(file), encode_uri(bucket, key), file.stat().st_size))
        elif path.is_file():
            key = join_key(prefix, path.name) if into_folder else prefix
            uploads.append(Upload(source, encode_uri(bucket, key), path.stat().st_size))
        else:
            raise FileNotFoundError(f"no such file or directory: {source}")
    return uploads


def upload(
    target: Target,
    out: Output,
    sources: list[str],
    destination: str,
    parallel: int = DEFAULT_PARALLEL,
) -> int:
    """Upload files, directory trees or stdin; one result line per object."""
    uploads = plan_uploads(sources, destination)
    if not uploads:
        out.note("nothing to upload (the directories are empty)")
    sizes = [item.size for item in uploads]
    total = None if None in sizes else sum(size or 0 for size in sizes)
    with out.progress(_transfer_label(uploads), total) as progress:

        def send(item: Upload) -> dict[str, Any]:
            if item.source == STDIO:
                result = target.upload_stream(sys.stdin.buffer, item.uri, progress)
            else:
                result = target.upload_file(Path(item.source), item.uri, progress, out.note)
            out.line(f"upload: {item.source} -> {result['uri']}")
            return {"source": item.source, **result}

        results = run_all([functools.partial(send, item) for item in uploads], parallel)
    out.document(results)
    return 0


def _transfer_label(uploads: list[Upload]) -> str:
    if len(uploads) != 1:
        return f"{len(uploads)} files"
    source = uploads[0].source
    return "stdin" if source == STDIO else Path(source).name


def download(
    target: Target,
    out: Output,
    source: str,
    destination: str | None,
    recursive: bool,
    parallel: int = DEFAULT_PARALLEL,
) -> int:
    """Download one object (to a file, into a directory, or to stdout) or a whole folder."""
    if recursive:
        return _download_folder(target, out, source, Path(destination or "."), parallel)
    uri = source
    _, key = decode_uri(uri)
    if destination == STDIO:
        return _download_to_stdout(target, out, uri)
    local = Path(destination or ".")
    if local.is_dir() or (destination or "").endswith(("/", os.sep)):
        local = local / key.rsplit("/", 1)[-1]
    _download_one(target, out, uri, local)
    out.document([{"uri": uri, "path": str(local)}])
    return 0


def _download_one(
    target: Target, out: Output, uri: str, local: Path, size: int | None = None
) -> None:
    if size is None and out.show_progress:
        size = int(target.info(uri)["size"])
    with out.progress(local.name, size) as progress:
        target.download_to(uri, local, progress)
    out.line(f"download: {uri} -> {local}")


def _download_to_stdout(target: Target, out: Output, uri: str) -> int:
    sink = sys.stdout.buffer
    with out.progress(uri.rsplit("/", 1)[-1], None) as progress:
        for chunk in target.iter_download(uri):
            sink.write(chunk)
            if progress:
                progress(len(chunk))
    sink.flush()
    return 0


def _download_folder(target: Target, out: Output, location: str, root: Path, parallel: int) -> int:
    if str(root) == STDIO:
        raise errors.InvalidInputError("a recursive download needs a directory, not stdout")
    bucket, prefix = split_location(location)
    folder = folder_prefix(prefix)
    planned: list[tuple[str, Path, int]] = []
    for entry in target.iter_objects(bucket, folder, True):
        if entry.get("is_dir"):
            continue
        key = str(entry["object_name"])
        local = local_path_for(root, key[len(folder) :])  # refuses keys escaping root
        planned.append((encode_uri(bucket, key), local, int(entry.get("size") or 0)))
    if not planned:
        out.note(f"nothing to download: no objects under {location}")
    label = f"{len(planned)} files" if len(planned) != 1 else planned[0][1].name
    with out.progress(label, sum(size for _, _, size in planned)) as progress:

        def fetch(uri: str, local: Path) -> dict[str, str]:
            target.download_to(uri, local, progress)
            out.line(f"download: {uri} -> {local}")
            return {"uri": uri, "path": str(local)}

        jobs = [functools.partial(fetch, uri, local) for uri, local, _ in planned]
        results = run_all(jobs, parallel)
    out.document(results)
    return 0
