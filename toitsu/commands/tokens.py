"""``toitsu tokens create | list | revoke``: the gateway's bearer tokens.

A local admin command: it edits the token store under the gateway's ``var/`` folder (or
``auth.tokens_file``) directly, so it needs write access to that folder, i.e. the gateway host's
operator; the running gateway sees the change at its next RPC. The token itself is printed once,
at creation; only its scrypt hash is kept. Rotation: create a new token, then revoke the old one.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tokens", help="create, list and revoke bearer tokens (local admin)")
    parser.add_argument("--config", type=Path, default=None, help="the gateway's TOML config file")
    parser.add_argument("--var", help="the gateway's state folder (paths.var)")
    parser.add_argument("--tokens-file", help="the token store (auth.tokens_file; default <var>/security/tokens.json)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new token (printed once)")
    create.add_argument("--subject", required=True, help="who or what the token is for")
    create.add_argument("--role", required=True, choices=("verify", "enroll", "admin"))
    create.add_argument("--expires-days", type=float, default=None, help="days until it expires (default: never)")
    actions.add_parser("list", help="every token: id, subject, role, state, expiry")
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")
    parser.set_defaults(run=run)


def _when(seconds: float | None) -> str:
    return "never" if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def run(args: argparse.Namespace) -> int:
    from serving.config import ConfigError, load_config
    from serving.errors import ToitsuError
    from serving.security.tokens import TokenRecord, TokenStore
    from toitsu.client import emit

    overrides = {k: v for k, v in (("paths.var", args.var), ("auth.tokens_file", args.tokens_file)) if v is not None}
    try:
        config = load_config(args.config, os.environ, overrides)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    store, now = TokenStore(config.tokens_path), time.time()

    def row(r: TokenRecord) -> dict:
        return {
            "id": r.id,
            "subject": r.subject,
            "role": r.role,
            "state": r.state(now),
            "created": _when(r.created),
            "expires": _when(r.expires),
            "revoked": None if r.revoked is None else _when(r.revoked),
        }

    try:
        if args.action == "create":
            token, record = store.create(args.subject, args.role, args.expires_days)
            emit(
                args,
                {**row(record), "token": token},
                lambda p: (
                    f"token {p['id']} for {p['subject']} ({p['role']}, expires {p['expires']}):\n{p['token']}\n"
                    "(shown only now; pass it as --token or $TOITSU_TOKEN)"
                ),
            )
        elif args.action == "list":
            rows = [row(r) for r in store.list()]
            emit(
                args,
                {"tokens": rows, "store": str(store.path)},
                lambda p: (
                    "\n".join(
                        f"{r['id']}  {r['role']:<7} {r['state']:<8} expires {r['expires']:<20} {r['subject']}"
                        for r in p["tokens"]
                    )
                    or "no tokens"
                ),
            )
        else:
            record = store.revoke(args.id)
            emit(args, row(record), lambda p: f"token {p['id']} ({p['subject']}) revoked at {p['revoked']}")
    except ToitsuError as exc:
        raise SystemExit(f"error: {exc.message}") from None
    return 0
