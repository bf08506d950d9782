"""``refstore serve``: run the gateway."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

# uvicorn's own default (5 s) equals httpx's pool expiry, so a client reusing a
# connection just as the gateway drops it would get a connection error.
KEEP_ALIVE_SECONDS = 75.0

SERVE_EPILOG = """\
configuration (highest precedence first):
  environment   REFSTORE_<FIELD>, nested with __, e.g.
                REFSTORE_MINIO__ENDPOINT=minio:9000  REFSTORE_MINIO__ACCESS_KEY=...
                REFSTORE_MINIO__SECRET_KEY=...       REFSTORE_DEFAULT_BUCKET=files
                REFSTORE_AUTH__MODE=keys|none        REFSTORE_AUTH__ADMIN_TOKENS='["token"]'
                REFSTORE_SERVER__MAX_UPLOAD_BYTES=5368709120
                REFSTORE_MAX_CONCURRENCY=32  (storage threads, MinIO connections)
  YAML file     --config FILE or REFSTORE_CONFIG=FILE (see README, "Configuration")

Without a 'minio' section the embedded local backend serves ./refstore-data.
With auth.mode 'keys' and no token configured, a random admin token is generated
and printed at start-up.
"""


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (HTTP API) on MinIO or the embedded local backend",
        description="Run the RefStore gateway.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: %(default)s); each keeps its own bucket mapping, so "
        "keep 1 when the mapping is updated at runtime (operator, PUT /gateway/bucket-mapping)",
    )
    serve.add_argument(
        "--keep-alive",
        type=float,
        default=KEEP_ALIVE_SECONDS,
        metavar="SECONDS",
        help="how long an idle client connection stays open (default: %(default)s); keep it "
        "above the idle timeouts of clients and load balancers in front, so that they close "
        "first and never send a request on a connection the gateway is closing",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,  # keeps `refstore --config FILE serve` too
        help="YAML settings file (also REFSTORE_CONFIG)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import logging

    import uvicorn
    from pydantic import SecretStr

    from ..errors import ConfigError
    from ..logs import configure_json_logging
    from ..web import web_app
    from ..web.settings import CONFIG_ENV, load_settings

    configure_json_logging(getattr(logging, args.log_level.upper()))
    config_file = os.path.abspath(args.config) if args.config else None
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        print(f"refstore serve: {exc}", file=sys.stderr)
        return 2
    generated_token = None
    if settings.auth.mode == "keys" and not (
        settings.auth.all_admin_tokens() or settings.auth.all_api_keys()
    ):
        generated_token = secrets.token_urlsafe(24)
        auth = settings.auth.model_copy(update={"admin_tokens": [SecretStr(generated_token)]})
        settings = settings.model_copy(update={"auth": auth})
        print(
            f"No admin token or API key is configured; generated an admin token for this run:\n"
            f"  export REFSTORE_GATEWAY_URL=http://{args.host}:{args.port}"
            f" REFSTORE_API_KEY={generated_token}\n"
            f"  refstore ls                # or any refstore command; see refstore --help\n"
            f'  curl -H "Authorization: Bearer $REFSTORE_API_KEY" http://{args.host}:{args.port}/list',
            file=sys.stderr,
        )
    app: object = web_app
    if args.workers > 1:
        # Worker processes import the app anew and read their settings from the
        # environment they inherit: the one channel that reaches them.
        app = "refstore.web:web_app"
        if config_file:
            os.environ[CONFIG_ENV] = config_file
        if generated_token:
            os.environ["REFSTORE_AUTH__ADMIN_TOKENS"] = json.dumps([generated_token])
    else:
        web_app.configure(settings)
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        log_level=args.log_level,
        timeout_keep_alive=args.keep_alive,
        # After SIGTERM, requests still running past the grace are cancelled (an upload
        # aborts, storing nothing), so a stalled client cannot keep the process alive.
        timeout_graceful_shutdown=settings.server.shutdown_grace,
    )
    return 0
