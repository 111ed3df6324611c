"""What every client command shares: the channel, ``--target`` / ``--json``, printing, errors."""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE = 64 * 1024 * 1024


def client_options() -> argparse.ArgumentParser:
    """A parent parser adding ``--target``, ``--json`` and ``--timeout`` to a subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--target",
        default=os.environ.get("TOITSU_TARGET", DEFAULT_TARGET),
        help="gateway address HOST:PORT (default: $TOITSU_TARGET or %(default)s)",
    )
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parent.add_argument("--timeout", type=float, default=60.0, help="deadline per RPC in seconds")
    parent.add_argument(
        "--token",
        default=os.environ.get("TOITSU_TOKEN") or None,
        help="bearer token sent with every RPC (default: $TOITSU_TOKEN); see `toitsu tokens`",
    )
    parent.add_argument("--tls", action="store_true", help="connect over TLS (implied by --ca, --cert)")
    parent.add_argument(
        "--ca", type=Path, help="PEM CA bundle that signed the gateway's certificate (default: system roots)"
    )
    parent.add_argument("--cert", type=Path, help="PEM client certificate, for a gateway with mutual TLS")
    parent.add_argument("--key", type=Path, help="PEM private key of --cert")
    return parent


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._entry],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_token(client_call_details), request_iterator)


def channel(target: str, args: argparse.Namespace | None = None) -> grpc.Channel:
    """A channel to ``target``; with ``args`` (a :func:`client_options` command's), its ``--token``
    and ``--tls --ca --cert --key``."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    ca, cert, key = (getattr(args, name, None) for name in ("ca", "cert", "key"))
    if bool(cert) != bool(key):
        raise SystemExit("error: --cert and --key go together")
    if getattr(args, "tls", False) or ca or cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_file(ca) if ca else None,
            private_key=read_file(key) if key else None,
            certificate_chain=read_file(cert) if cert else None,
        )
        base = grpc.secure_channel(target, credentials, options=options)
    else:
        base = grpc.insecure_channel(target, options=options)
    token = getattr(args, "token", None)
    return grpc.intercept_channel(base, _Bearer(token)) if token else base


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def emit(args: argparse.Namespace, payload: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
    """Print ``payload`` as JSON with ``--json``, else as the human-readable ``human(payload)``."""
    print(json.dumps(payload, indent=2) if args.json else human(payload))


def fail(args: argparse.Namespace, err: grpc.RpcError) -> NoReturn:
    """Print an RPC's status and message (JSON with ``--json``) and exit 1."""
    code, details = err.code(), err.details()
    if args.json:
        print(json.dumps({"error": {"code": code.name, "message": details}}, indent=2))
    else:
        print(f"error: {code.name}: {details}", file=sys.stderr)
    raise SystemExit(1)


def rpc_call(args: argparse.Namespace, call: Callable[[], Any]) -> Any:
    """Run one RPC; on failure :func:`fail`."""
    try:
        return call()
    except grpc.RpcError as err:
        fail(args, err)


def list_all(args: argparse.Namespace, page: Callable[[str], Any], field: str) -> tuple[list[dict[str, Any]], int]:
    """Every page of a List RPC: ``page(token)`` returns one reply whose ``field`` holds the items;
    returns (all items as dicts, the reply's ``total``). A failed page ends the command (:func:`fail`)."""
    items, token = [], ""
    while True:
        reply = rpc_call(args, lambda: page(token))
        items += [to_dict(item) for item in getattr(reply, field)]
        token = reply.next_page_token
        if not token:
            return items, int(reply.total)


def read_file(path: Path) -> bytes:
    """A media file's bytes; an unreadable file ends the command with the reason."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def candidate_lines(candidates: list[dict[str, Any]]) -> list[str]:
    """The ranked rows of an Identify / Classify reply, ✓ on those that pass the threshold."""
    return [
        f"  {i + 1}. {c['id']:<32} {c['score']:.4f}{'  ✓' if c['accepted'] else ''}" for i, c in enumerate(candidates)
    ]
