"""``refstore verify``: do an object's bytes (or a local file) match its recorded checksums?"""

from __future__ import annotations

from pathlib import Path

from .. import errors
from ..checksums import Checksums, Hasher
from ..uri import decode_uri
from .output import Output
from .targets import Target

READ_SIZE = 1024 * 1024


def verify(target: Target, out: Output, uri: str, local: str | None) -> int:
    """Check the object (downloaded, not kept) or ``local`` against the checksums
    recorded for ``uri``.

    Raises:
        IntegrityError: the bytes differ.
        InvalidInputError: the object has no recorded checksum to check against.
    """
    decode_uri(uri)
    details = target.info(uri)
    recorded = Checksums(dict(details.get("checksums") or {}))
    if not recorded:
        raise errors.InvalidInputError(
            f"{uri} has no recorded checksum (it was stored before RefStore recorded them, "
            "or by another tool): nothing to verify against"
        )
    hasher = Hasher()
    size = int(details["size"]) if local is None else Path(local).stat().st_size
    what = local if local is not None else uri
    with out.progress(Path(what).name, size) as progress:
        if local is None:
            for chunk in target.iter_download(uri):
                hasher.update(chunk)
                if progress:
                    progress(len(chunk))
        else:
            with open(local, "rb") as file:
                while chunk := file.read(READ_SIZE):
                    hasher.update(chunk)
                    if progress:
                        progress(len(chunk))
    actual = hasher.result()
    recorded.check(actual, what if local is None else f"{local} against {uri}")
    matched = ", ".join(f"{name} {recorded.get(name)}" for name in sorted(recorded.values))
    out.line(f"ok: {what} matches {uri} ({matched})" if local else f"ok: {uri} ({matched})")
    out.document({"uri": uri, "file": local, "ok": True, "checksums": recorded.as_dict()})
    return 0
