"""``toitsu serve``: run the gateway in the foreground until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

_SHORTCUTS = {
    "host": "server.host",
    "port": "server.port",
    "metrics_port": "server.metrics_port",
    "models": "paths.models",
    "var": "paths.var",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the gRPC gateway")
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--host", help="listen address (server.host, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (server.port, default 50051; 0 = any free port)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (server.metrics_port; 0 = off)")
    parser.add_argument("--models", help="model repository folder (paths.models)")
    parser.add_argument("--var", help="state folder for galleries (paths.var)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any config setting (repeatable); see README 'Configuration'",
    )
    parser.add_argument("--log-level", default=os.environ.get("TOITSU_LOG_LEVEL", "INFO"))
    parser.set_defaults(run=run)


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set {item!r} must look like section.key=value")
        overrides[key.strip()] = value.strip()
    for flag, key in _SHORTCUTS.items():
        if getattr(args, flag) is not None:
            overrides[key] = str(getattr(args, flag))
    return overrides


def run(args: argparse.Namespace) -> int:
    from serving.config import ConfigError, load_config
    from serving.server import Gateway

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, os.environ, overrides_from(args))
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    gateway = Gateway(config)
    try:
        port = gateway.start()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    # The line tests and scripts wait for; the port matters when --port 0 picked one.
    print(f"toitsu gateway listening on {config.server.host}:{port}", flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: gateway.stop())
    gateway.wait()
    return 0
