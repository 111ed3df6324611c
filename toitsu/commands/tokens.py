"""``toitsu tokens create | list | revoke | rotate``: the gateway's bearer tokens.

By default a client of ``toitsu.v1.TokenService``: it needs an admin token (``--token`` or
``$TOITSU_TOKEN``) and the gateway applies the change at its next RPC. ``--local`` edits the
token store under the gateway's ``var/`` (``--var``, ``--tokens-file`` or ``--config``) directly
instead: the bootstrap path for the first admin token (nobody can call the RPC before one exists),
and the way back in for whoever may write the gateway's ``var/`` when every admin token is lost. A
running gateway picks up a local change at its next RPC too. Either way the token itself is printed
once, at creation; only its scrypt hash is kept.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from toitsu.client import channel, client_options, emit, rpc_call, to_dict

_FIELDS = ("id", "subject", "role", "state", "created_at", "expires_at", "revoked_at", "rate_per_second", "burst")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tokens", help="create, list, revoke and rotate bearer tokens (admin)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = [client_options(), _local_options()]
    create = actions.add_parser("create", parents=common, help="a new token (printed once)")
    create.add_argument("--subject", required=True, help="who or what the token is for")
    create.add_argument("--role", required=True, choices=("verify", "enroll", "admin"))
    create.add_argument("--expires-days", type=float, default=None, help="days until it expires (default: never)")
    create.add_argument(
        "--rate", type=float, default=None, help="its rate limit, RPCs/s (default: auth.rate_per_second)"
    )
    create.add_argument("--burst", type=float, default=None, help="its burst (default: auth.burst, or --rate)")
    actions.add_parser("list", parents=common, help="every token: id, subject, role, state, expiry")
    revoke = actions.add_parser("revoke", parents=common, help="revoke a token by its id")
    revoke.add_argument("id")
    rotate = actions.add_parser("rotate", parents=common, help="replace a token (same subject, role, limit)")
    rotate.add_argument("id")
    rotate.add_argument("--grace-seconds", type=float, default=0.0, help="how long the old one still works (0: none)")
    rotate.add_argument("--expires-days", type=float, default=None, help="the new one's lifetime (default: the old's)")
    parser.set_defaults(run=run)


def _local_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--local", action="store_true", help="edit the token store on this machine, not over gRPC")
    parent.add_argument("--config", type=Path, default=None, help="with --local: the gateway's TOML config file")
    parent.add_argument("--var", help="with --local: the gateway's state folder (paths.var)")
    parent.add_argument("--tokens-file", help="with --local: the token store (default <var>/security/tokens.json)")
    return parent


def _when(seconds: float) -> str:
    return "never" if not seconds else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _row(info: dict[str, Any]) -> dict[str, Any]:
    """A TokenInfo (as a dict) for people and scripts: times as UTC strings, absent ones as never/None."""
    row = {key: info.get(key) for key in _FIELDS}
    row["created"], row["expires"] = _when(info["created_at"]), _when(info["expires_at"])
    row["revoked"] = _when(info["revoked_at"]) if info["revoked_at"] else None
    for key in ("created_at", "expires_at", "revoked_at"):
        del row[key]
    if info.get("rotated_to"):
        row["rotated_to"] = info["rotated_to"]
    return row


def run(args: argparse.Namespace) -> int:
    if not args.local and (args.var or args.tokens_file or args.config):
        raise SystemExit("error: --var, --tokens-file and --config edit the store locally: add --local")
    payload = _local(args) if args.local else _remote(args)
    emit(args, payload, _HUMAN[args.action])
    return 0


def _created(p: dict[str, Any]) -> str:
    return (
        f"token {p['id']} for {p['subject']} ({p['role']}, expires {p['expires']}):\n{p['token']}\n"
        "(shown only now; pass it as --token or $TOITSU_TOKEN)"
    )


def _listed(p: dict[str, Any]) -> str:
    lines = [
        f"{r['id']}  {r['role']:<7} {r['state']:<8} expires {r['expires']:<20} {r['subject']}" for r in p["tokens"]
    ]
    return "\n".join(lines) or "no tokens"


_HUMAN = {
    "create": _created,
    "rotate": _created,
    "list": _listed,
    "revoke": lambda p: f"token {p['id']} ({p['subject']}) revoked at {p['revoked']}",
}


def _remote(args: argparse.Namespace) -> dict[str, Any]:
    from protos.v1 import tokens_pb2, tokens_pb2_grpc

    stub = tokens_pb2_grpc.TokenServiceStub(channel(args.target, args))
    if args.action == "create":
        request = tokens_pb2.CreateTokenRequest(
            subject=args.subject,
            role=args.role,
            expires_days=args.expires_days or 0.0,
            rate_per_second=args.rate or 0.0,
            burst=args.burst or 0.0,
        )
        reply = rpc_call(args, lambda: stub.Create(request, timeout=args.timeout))
        return {**_row(to_dict(reply.info)), "token": reply.token}
    if args.action == "rotate":
        rotate = tokens_pb2.RotateTokenRequest(
            id=args.id, grace_seconds=args.grace_seconds, expires_days=args.expires_days or 0.0
        )
        reply = rpc_call(args, lambda: stub.Rotate(rotate, timeout=args.timeout))
        return {**_row(to_dict(reply.info)), "token": reply.token, "replaces": args.id}
    if args.action == "list":
        listed = rpc_call(args, lambda: stub.List(tokens_pb2.ListTokensRequest(), timeout=args.timeout))
        return {"tokens": [_row(to_dict(t)) for t in listed.tokens]}
    revoked = rpc_call(args, lambda: stub.Revoke(tokens_pb2.RevokeTokenRequest(id=args.id), timeout=args.timeout))
    return _row(to_dict(revoked))


def _local(args: argparse.Namespace) -> dict[str, Any]:
    from serving.config import ConfigError, load_config
    from serving.errors import ToitsuError
    from serving.security.tokens import TokenStore
    from serving.services.tokens import info

    overrides = {k: v for k, v in (("paths.var", args.var), ("auth.tokens_file", args.tokens_file)) if v is not None}
    try:
        config = load_config(args.config, os.environ, overrides)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    store = TokenStore(config.tokens_path)

    def row(record) -> dict[str, Any]:
        return _row(to_dict(info(record, store.now())))

    try:
        if args.action == "create":
            token, record = store.create(args.subject, args.role, args.expires_days, rate=args.rate, burst=args.burst)
            return {**row(record), "token": token}
        if args.action == "rotate":
            token, new, _ = store.rotate(args.id, args.grace_seconds, args.expires_days)
            return {**row(new), "token": token, "replaces": args.id}
        if args.action == "list":
            return {"tokens": [row(r) for r in store.list()], "store": str(store.path)}
        return row(store.revoke(args.id))
    except ToitsuError as exc:
        raise SystemExit(f"error: {exc.message}") from None
