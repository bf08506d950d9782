"""The ``refstore`` command line: parsing, dispatch and exit statuses."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import errors
from . import admin, objects, transfers, uploads, verify
from .operator import add_operator_command
from .output import EXIT_CODES_HELP, EXIT_ERROR, Output
from .serve import add_serve_command
from .targets import CONFIG_ENV, GATEWAY_ENV, Target, open_target

DESCRIPTION = """\
RefStore: object storage on MinIO, its gateway and tools.

Run the gateway with 'refstore serve'. The other commands move and manage
objects through a gateway (--gateway URL, or REFSTORE_GATEWAY_URL) or straight
on MinIO or the local backend a settings file describes (--config FILE, or
REFSTORE_CONFIG): the same commands work either way.
"""

EPILOG = f"""\
examples:
  export {GATEWAY_ENV}=http://127.0.0.1:8000 REFSTORE_API_KEY=...
  refstore upload report.pdf s3://default/docs/        # -> s3://default/docs/report.pdf
  refstore upload ./photos s3://default/photos/        # a directory tree
  tar c dir | refstore upload - s3://default/dir.tar   # standard input
  refstore ls s3://default/docs/
  refstore download s3://default/docs/report.pdf .
  refstore download -r s3://default/photos/ ./photos-copy
  refstore download s3://default/dir.tar - | tar x     # standard output
  refstore upload big.iso s3://default/isos/          # large: parallel parts;
                                                       # rerun after Ctrl-C to resume
  refstore uploads ls                                  # interrupted uploads
  refstore verify s3://default/isos/big.iso big.iso    # same bytes as the local file?
  refstore rm -r s3://default/photos/ --yes
  refstore --config refstore.yaml ls s3://default      # no gateway: storage directly

{EXIT_CODES_HELP}"""

Handler = Callable[[Target, Output, argparse.Namespace], int]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parallel_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-P",
        "--parallel",
        type=_positive,
        default=transfers.DEFAULT_PARALLEL,
        metavar="N",
        help="files moved at once when there are several (default: %(default)s)",
    )


def _client_options(defaults: bool) -> argparse.ArgumentParser:
    """Options every client command takes, before or after the command name.

    The copy on each command has no defaults, so it only overrides what was given.
    """
    unset: Any = None if defaults else argparse.SUPPRESS
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("target and output")
    group.add_argument(
        "--gateway",
        metavar="URL",
        default=unset,
        help=f"gateway base URL (default: ${GATEWAY_ENV})",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=unset,
        help="gateway API key or admin token (default: $REFSTORE_API_KEY)",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        default=unset,
        help=f"use storage directly as this settings file describes (default: ${CONFIG_ENV})",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=60.0 if defaults else argparse.SUPPRESS,
        help="gateway connect/read/write timeout (default: 60)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="print results as JSON (errors too, on stderr)",
    )
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=unset,
        help="progress bars on stderr (default: only when stderr is a terminal)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refstore",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_client_options(defaults=True)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(commands)
    add_operator_command(commands)
    common = _client_options(defaults=False)

    def command(name: str, handler: Handler, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=EXIT_CODES_HELP,
        )
        sub.set_defaults(handler=handler)
        return sub

    upload = command(
        "upload",
        lambda t, o, a: transfers.upload(t, o, a.sources, a.destination, a.parallel),
        "upload files, directory trees (recursively) or standard input",
    )
    upload.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="local file or directory, or - for stdin"
    )
    upload.add_argument(
        "destination",
        metavar="DESTINATION",
        help="s3://bucket/key for one file or stdin; s3://bucket/folder/ to keep file names",
    )
    upload.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="accepted for symmetry: directories always are",
    )
    _parallel_option(upload)

    download = command(
        "download",
        lambda t, o, a: transfers.download(t, o, a.source, a.destination, a.recursive, a.parallel),
        "download an object, or a whole folder with -r",
    )
    download.add_argument(
        "source", metavar="URI", help="s3://bucket/key (with -r: s3://bucket/folder/)"
    )
    download.add_argument(
        "destination",
        nargs="?",
        metavar="DESTINATION",
        help="file, existing directory, or - for stdout (default: the current directory)",
    )
    download.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="every object under the folder, keeping the tree",
    )
    _parallel_option(download)

    ls = command(
        "ls",
        lambda t, o, a: objects.ls(t, o, a.location, a.recursive),
        "list objects and folders under s3://bucket[/prefix]",
    )
    ls.add_argument("location", nargs="?", metavar="LOCATION", help="default: the default bucket")
    ls.add_argument("-r", "--recursive", action="store_true", help="list every object below")

    rm = command(
        "rm",
        lambda t, o, a: objects.rm(t, o, a.locations, a.recursive, a.yes),
        "delete objects, or everything under folders with -r",
    )
    rm.add_argument(
        "locations", nargs="+", metavar="URI", help="s3://bucket/key (with -r: folders)"
    )
    rm.add_argument("-r", "--recursive", action="store_true", help="delete every object below")
    rm.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"do not ask before deleting more than {objects.CONFIRM_ABOVE} objects",
    )

    info = command("info", lambda t, o, a: objects.info(t, o, a.uri), "show an object's metadata")
    info.add_argument("uri", metavar="URI", help="s3://bucket/key")

    check = command(
        "verify",
        lambda t, o, a: verify.verify(t, o, a.uri, a.file),
        "check an object's bytes, or a local file, against the object's recorded checksums",
    )
    check.add_argument("uri", metavar="URI", help="s3://bucket/key")
    check.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="compare this local file instead of downloading the object",
    )

    presign = command(
        "presign",
        lambda t, o, a: objects.presign(t, o, a.uri, a.expiry, a.method),
        "print a URL that allows GET or PUT without credentials",
    )
    presign.add_argument("uri", metavar="URI", help="s3://bucket/key")
    presign.add_argument(
        "--expiry", type=int, metavar="SECONDS", help="lifetime (default: the target's setting)"
    )
    presign.add_argument("--method", choices=["GET", "PUT"], default="GET", type=str.upper)

    buckets = commands.add_parser("buckets", help="list, create or delete buckets (admin)")
    bucket_commands = buckets.add_subparsers(dest="bucket_command", required=True, metavar="ACTION")
    for name, handler, text in (
        ("ls", lambda t, o, a: admin.buckets_ls(t, o), "list buckets"),
        ("create", lambda t, o, a: admin.buckets_create(t, o, a.name), "create a bucket"),
        ("rm", lambda t, o, a: admin.buckets_rm(t, o, a.name, a.force), "delete a bucket"),
    ):
        sub = bucket_commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        if name != "ls":
            sub.add_argument("name", metavar="BUCKET")
        if name == "rm":
            sub.add_argument("--force", action="store_true", help="delete its objects first")

    mapping = commands.add_parser("mapping", help="show or replace the bucket mapping (admin)")
    mapping_commands = mapping.add_subparsers(
        dest="mapping_command", required=True, metavar="ACTION"
    )
    get = mapping_commands.add_parser("get", help="show the mapping", parents=[common])
    get.set_defaults(handler=lambda t, o, a: admin.mapping_get(t, o))
    put = mapping_commands.add_parser(
        "set",
        help="replace the mapping (gateway only)",
        description="Replace the bucket mapping of a gateway.",
        parents=[common],
    )
    put.set_defaults(handler=lambda t, o, a: admin.mapping_set(t, o, a.enable, a.map, a.version))
    put.add_argument(
        "--enable", action=argparse.BooleanOptionalAction, help="switch mapping on (or --no-enable)"
    )
    put.add_argument(
        "--map",
        action="append",
        metavar="LOGICAL=PHYSICAL",
        help="a pair of the new map (repeat; replaces the whole map)",
    )
    put.add_argument("--clear", action="store_const", const=[], dest="map", help="empty the map")
    put.add_argument(
        "--version",
        metavar="VERSION",
        help="apply only if newer than the gateway's: a generation number or a JSON object",
    )

    sessions = commands.add_parser(
        "uploads",
        help="list or abort interrupted large uploads",
        description="Large files are uploaded in sessions of parallel parts: an interrupted "
        "'refstore upload' continues where it stopped when run again. These commands show "
        "and abort such uploads.",
    )
    session_commands = sessions.add_subparsers(
        dest="uploads_command", required=True, metavar="ACTION"
    )
    uploads_ls = session_commands.add_parser(
        "ls",
        help="uploads resumable from here, and those in progress in a bucket",
        description="List the interrupted uploads this machine can resume (state files in "
        "$REFSTORE_STATE_DIR, default ~/.cache/refstore/uploads) and the multipart uploads "
        "in progress under LOCATION.",
        parents=[common],
    )
    uploads_ls.set_defaults(handler=lambda t, o, a: uploads.uploads_ls(t, o, a.location))
    uploads_ls.add_argument(
        "location", nargs="?", metavar="LOCATION", help="s3://bucket[/prefix] (default bucket)"
    )
    uploads_abort = session_commands.add_parser(
        "abort",
        help="abort an upload session: its parts are freed, no object appears",
        description="Abort an upload session, named by its id or by the local file an "
        "interrupted 'refstore upload' was sending.",
        parents=[common],
    )
    uploads_abort.set_defaults(handler=lambda t, o, a: uploads.uploads_abort(t, o, a.upload))
    uploads_abort.add_argument("upload", metavar="UPLOAD_ID|FILE")

    command("status", lambda t, o, a: admin.status(t, o), "check that the target answers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "operator"):
        return int(args.handler(args))
    out = Output(as_json=args.json, progress=args.progress)
    # Library warnings (e.g. the SDK retrying) are notes for the person at the terminal.
    logging.basicConfig(level=logging.WARNING, format="refstore: %(message)s")
    command = " ".join(
        part
        for part in (
            args.command,
            getattr(args, "bucket_command", None),
            getattr(args, "mapping_command", None),
            getattr(args, "uploads_command", None),
        )
        if part
    )
    try:  # without --api-key the SDK reads $REFSTORE_API_KEY itself
        target = open_target(args.gateway, args.config, args.api_key, args.timeout)
    except errors.RefStoreError as exc:
        return out.error(exc, command)
    try:
        return int(args.handler(target, out, args))
    except (errors.RefStoreError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _stdout_closed()
        return out.error(exc, command)
    except KeyboardInterrupt:
        if args.command == "upload":
            out.note("interrupted: run the same command again to resume (large files continue)")
        else:
            out.note("interrupted")
        return 130
    finally:
        target.close()


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly, without a traceback at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_ERROR


__all__ = ["build_parser", "main"]
