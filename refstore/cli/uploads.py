"""``refstore uploads ls`` and ``refstore uploads abort``: interrupted large uploads."""

from __future__ import annotations

import os
from typing import Any

from .. import errors
from ..sizes import format_size
from .locations import split_location
from .output import Output
from .targets import Target


def uploads_ls(target: Target, out: Output, location: str | None) -> int:
    """The uploads this machine can resume, and those in progress in a bucket."""
    resumable = target.resumable_uploads()
    if location:
        bucket, prefix = split_location(location)
    else:
        bucket, prefix = target.default_bucket(), ""
    pending = target.pending_uploads(bucket, prefix)
    if resumable:
        out.line("resumable here (run the same 'refstore upload' again to continue):")
        for item in resumable:
            out.line(
                f"  {item['source']} -> {item['uri']}  ({format_size(item['size'])}, "
                f"session {_short(item['upload_id'])})"
            )
    where = f"s3://{bucket}/{prefix}"
    if pending:
        out.line(f"in progress under {where}:")
        for item in pending:
            started = str(item.get("started") or "")[:19].replace("T", " ")
            out.line(f"  {started:19}  {item['uri']}")
    if not resumable and not pending:
        out.line(f"no uploads in progress under {where}, none to resume here")
    out.document({"resumable": resumable, "in_progress": pending})
    return 0


def uploads_abort(target: Target, out: Output, which: str) -> int:
    """Abort an upload session, named by its id or by the local file it was sending.

    Raises:
        InvalidInputError: a file with no interrupted upload of it.
        UploadNotFoundError: no such session id (completed, aborted, expired, mistyped).
    """
    ids = [which]
    by_file = os.path.exists(which)
    if by_file:
        source = os.path.abspath(which)
        ids = [u["upload_id"] for u in target.resumable_uploads() if u["source"] == source]
        if not ids:
            raise errors.InvalidInputError(f"no interrupted upload of {which} to abort")
    results: list[dict[str, Any]] = []
    for upload_id in ids:
        try:
            result = target.abort_upload(upload_id)
        except errors.UploadNotFoundError:
            if not by_file:
                raise
            # Completed or expired meanwhile: the SDK has removed its state file.
            result = {"upload_id": upload_id, "aborted": False}
            out.line(f"session {_short(upload_id)} was already gone (completed or expired)")
        else:
            out.line(f"aborted the upload to {result['uri']}")
        results.append(result)
    out.document(results)
    return 0


def _short(upload_id: str) -> str:
    return upload_id[:12] + "..." if len(upload_id) > 15 else upload_id
