"""``refstore ls``, ``rm``, ``info`` and ``presign``."""

from __future__ import annotations

import json
import sys
from typing import Any

from .. import errors
from ..uri import decode_uri, encode_uri
from .locations import folder_prefix, split_location
from .output import Output
from .targets import Target

CONFIRM_ABOVE = 10
"""``rm`` asks before deleting more objects than this (unless ``--yes``)."""

DELETE_BATCH = 1000
"""Objects per batch delete request (the S3 limit)."""


def ls(target: Target, out: Output, location: str | None, recursive: bool) -> int:
    """List objects (and, unless recursive, the "folders") under a location."""
    if location:
        bucket, prefix = split_location(location)
    else:
        bucket, prefix = target.default_bucket(), ""
    entries = []
    for entry in target.iter_objects(bucket, prefix, recursive):
        name = str(entry["object_name"])
        if out.as_json:
            entries.append(entry)
        elif entry.get("is_dir"):
            out.line(f"{'':19}  {'PRE':>12}  s3://{bucket}/{name}")
        else:
            modified = str(entry.get("last_modified") or "")[:19].replace("T", " ")
            out.line(f"{modified:19}  {entry['size']:>12}  {encode_uri(bucket, name)}")
    out.document(entries)
    return 0


def rm(target: Target, out: Output, locations: list[str], recursive: bool, yes: bool) -> int:
    """Delete objects, or with ``recursive`` everything under folders."""
    uris: list[str] = []
    for location in locations:
        if recursive:
            bucket, prefix = split_location(location)
            for entry in target.iter_objects(bucket, folder_prefix(prefix), True):
                if not entry.get("is_dir"):
                    uris.append(encode_uri(bucket, str(entry["object_name"])))
        else:
            decode_uri(location)
            uris.append(location)
    if len(uris) > CONFIRM_ABOVE and not yes:
        _confirm(f"delete {len(uris)} objects under {', '.join(locations)}?")
    deleted: list[str] = []
    failed: dict[str, str] = {}
    for start in range(0, len(uris), DELETE_BATCH):
        result = target.delete(uris[start : start + DELETE_BATCH])
        deleted.extend(result["deleted"])
        for uri in result["failed"]:
            failed[uri] = result.get("errors", {}).get(uri, "not deleted")
    for uri in deleted:
        out.line(f"delete: {uri}")
    for uri, reason in failed.items():
        out.note(f"refstore rm: failed to delete {uri}: {reason}")
    out.document({"deleted": deleted, "failed": list(failed), "errors": failed})
    if recursive and not uris:
        out.note(f"nothing to delete under {', '.join(locations)}")
    return 1 if failed else 0


def _confirm(question: str) -> None:
    """Ask on the terminal; without one, refuse (scripts pass ``--yes``).

    Raises:
        InvalidInputError: not confirmed.
    """
    if not sys.stdin.isatty():
        raise errors.InvalidInputError(
            f"refusing to {question.rstrip('?')} without confirmation: pass --yes"
        )
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise errors.InvalidInputError("not confirmed; nothing was deleted")


def info(target: Target, out: Output, uri: str) -> int:
    """Size, type, ETag, modification time and metadata of one object."""
    decode_uri(uri)
    details = target.info(uri)
    for name, value in details.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        out.line(f"{name + ':':16} {shown}")
    out.document(details)
    return 0


def presign(target: Target, out: Output, uri: str, expiry: int | None, method: str) -> int:
    """Print a URL that allows GET (or PUT) on the object without credentials."""
    decode_uri(uri)
    url = target.presign(uri, expiry, method)
    out.line(url)
    answer: dict[str, Any] = {"url": url, "uri": uri, "method": method, "expiry": expiry}
    out.document(answer)
    return 0
