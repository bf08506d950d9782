"""The RefStore operator: pushes BucketMapping resources to every gateway replica.

Run it with ``refstore operator`` (``pip install "refstore[operator]"``). It watches, in one
namespace only, the BucketMapping objects and the EndpointSlices of the gateway Services they
name, and pushes each mapping with its version to every endpoint address directly (never to
the Service address, which would reach one replica at random).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_TOKEN_FILE = Path("/etc/refstore/operator/token")
NAMESPACE_ENV = "REFSTORE_OPERATOR_NAMESPACE"
TOKEN_ENV = "REFSTORE_OPERATOR_TOKEN"
TOKEN_FILE_ENV = "REFSTORE_OPERATOR_TOKEN_FILE"


def own_namespace(given: str | None = None) -> str:
    """The namespace to watch: given, ``$REFSTORE_OPERATOR_NAMESPACE``, or the pod's own.

    Raises:
        ConfigError: none of them is known.
    """
    namespace = given or os.environ.get(NAMESPACE_ENV)
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not namespace:
        raise ConfigError(
            f"no namespace to watch: pass --namespace, set ${NAMESPACE_ENV}, "
            "or run in a pod (its service account names the namespace)"
        )
    return namespace


def gateway_token() -> str | None:
    """The token sent to the gateways: ``$REFSTORE_OPERATOR_TOKEN``, else the first line of
    ``$REFSTORE_OPERATOR_TOKEN_FILE`` (default /etc/refstore/operator/token, if present).

    Raises:
        ConfigError: a token file is named but cannot be read.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    named = os.environ.get(TOKEN_FILE_ENV)
    path = Path(named) if named else DEFAULT_TOKEN_FILE
    if not path.is_file():
        if named:
            raise ConfigError(f"${TOKEN_FILE_ENV}={named}: no such file")
        return None
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return lines[0] if lines else None


def run(
    namespace: str,
    token: str | None,
    *,
    resync: float = 5.0,
    push_timeout: float = 2.0,
    liveness: str | None = "http://0.0.0.0:8080/healthz",
) -> None:
    """Run the operator until SIGTERM or SIGINT (kopf stops the daemons gracefully)."""
    import kopf

    from .handlers import OperatorState, registry
    from .sync import Timing

    state = OperatorState(token=token, timing=Timing(resync=resync), push_timeout=push_timeout)
    kopf.run(
        registry=registry,
        memo=state,
        standalone=True,
        namespaces=[namespace],
        liveness_endpoint=liveness,
    )
