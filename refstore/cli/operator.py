"""``refstore operator``: run the Kubernetes operator."""

from __future__ import annotations

import argparse
import logging
import sys

OPERATOR_EPILOG = """\
environment:
  REFSTORE_OPERATOR_NAMESPACE   namespace to watch (default: the pod's own)
  REFSTORE_OPERATOR_TOKEN       the gateways' bucket-mapping token (auth.mapping_tokens), or
  REFSTORE_OPERATOR_TOKEN_FILE  a file holding it (default: /etc/refstore/operator/token)
  KUBECONFIG                    outside a cluster: the kubeconfig to use

It watches BucketMapping objects (refstore.io/v1alpha1) and the EndpointSlices of the
gateway Services they name, in one namespace, and pushes each mapping to every gateway
endpoint, including replicas that are not ready yet (they wait for it) and ones that
restarted empty (found by the periodic re-read, --resync).
"""


def add_operator_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "operator",
        help="run the Kubernetes operator that pushes BucketMappings to every gateway replica",
        description="Run the RefStore operator (kopf, one namespace, standalone).",
        epilog=OPERATOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("--namespace", "-n", help="namespace to watch (see below)")
    command.add_argument(
        "--resync",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="re-read every replica's mapping this often, so one that restarted empty is "
        "pushed again without any event (default: %(default)s)",
    )
    command.add_argument(
        "--push-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a replica that does not answer within this is failing (default: %(default)s)",
    )
    command.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        metavar="URL",
        help="kopf's liveness endpoint, for the pod's probe (default: %(default)s; "
        "'none' to turn it off)",
    )
    command.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s); logs are JSON lines on stderr",
    )
    command.set_defaults(handler=operator_command)


def operator_command(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..logs import configure_json_logging

    try:
        from .. import operator
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(
            f'refstore operator needs kopf: pip install "refstore[operator]" ({exc})',
            file=sys.stderr,
        )
        return 2
    configure_json_logging(getattr(logging, args.log_level.upper()))
    try:
        namespace = operator.own_namespace(args.namespace)
        token = operator.gateway_token()
    except ConfigError as exc:
        print(f"refstore operator: {exc}", file=sys.stderr)
        return 2
    if token is None:
        logging.getLogger("refstore.operator").warning(
            "no gateway token (REFSTORE_OPERATOR_TOKEN or a token file): pushes are sent "
            "without one, which only a gateway with auth.mode none accepts"
        )
    liveness = None if args.liveness == "none" else args.liveness
    operator.run(
        namespace, token, resync=args.resync, push_timeout=args.push_timeout, liveness=liveness
    )
    return 0
