"""``refstore buckets``, ``mapping`` and ``status``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import errors
from .output import Output
from .targets import Target


def buckets_ls(target: Target, out: Output) -> int:
    """One bucket name per line."""
    buckets = target.list_buckets()
    for bucket in buckets:
        out.line(str(bucket["name"]))
    out.document(buckets)
    return 0


def buckets_create(target: Target, out: Output, name: str) -> int:
    target.create_bucket(name)
    out.line(f"bucket {name} is ready")
    out.document({"name": name, "created": True})
    return 0


def buckets_rm(target: Target, out: Output, name: str, force: bool) -> int:
    target.delete_bucket(name, force)
    out.line(f"bucket {name} deleted")
    out.document({"name": name, "deleted": True})
    return 0


def mapping_get(target: Target, out: Output) -> int:
    """The bucket mapping (and, from a gateway, its version)."""
    _print_mapping(out, target.get_mapping())
    return 0


def mapping_set(
    target: Target,
    out: Output,
    enabled: bool | None,
    pairs: list[str] | None,
    version: str | None,
) -> int:
    """Replace the mapping with ``LOGICAL=PHYSICAL`` pairs and/or switch it on or off."""
    bucket_map = parse_pairs(pairs) if pairs is not None else None
    if enabled is None and bucket_map is None:
        raise errors.InvalidInputError("nothing to set: give --enable, --disable or --map")
    _print_mapping(out, target.set_mapping(enabled, bucket_map, parse_version(version)))
    return 0


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["a=b", ...]`` as a dict.

    Raises:
        InvalidInputError: a pair without ``=`` or with an empty side.
    """
    result: dict[str, str] = {}
    for pair in pairs:
        logical, sep, physical = pair.partition("=")
        if not sep or not logical.strip() or not physical.strip():
            raise errors.InvalidInputError(f"expected LOGICAL=PHYSICAL, got {pair!r}")
        result[logical.strip()] = physical.strip()
    return result


def parse_version(text: str | None) -> Mapping[str, Any] | None:
    """A ``--version`` as given: a JSON object, or just a generation number.

    Raises:
        InvalidInputError: neither.
    """
    if text is None:
        return None
    if text.isdigit():
        return {"source": "cli", "generation": int(text)}
    try:
        version = json.loads(text)
    except json.JSONDecodeError:
        version = None
    if not isinstance(version, dict):
        raise errors.InvalidInputError(
            f"--version takes a generation number or a JSON object like "
            f'{{"source": "...", "generation": 3}}, got {text!r}'
        )
    return version


def _print_mapping(out: Output, mapping: dict[str, Any]) -> None:
    out.line(f"enabled: {'yes' if mapping.get('enable_bucket_mapping') else 'no'}")
    for key in ("generation", "version", "changed"):
        if key in mapping:
            out.line(f"{key}: {json.dumps(mapping[key])}")
    for logical, physical in sorted(mapping.get("bucket_map", {}).items()):
        out.line(f"  {logical} -> {physical}")
    out.document(mapping)


def status(target: Target, out: Output) -> int:
    """Whether the target answers, and what it serves."""
    answer = target.status()
    for name, value in answer.items():
        out.line(f"{name + ':':22} {value}")
    out.document(answer)
    return 0
