"""``toitsu audit``: query the gateway's audit trail (``toitsu.v1.AuditService``, admin token).

``--since`` / ``--until`` take an ISO 8601 time (``2026-12-07T15:00``, UTC unless it names a
zone), a date, Unix seconds, or an age: ``30s``, ``15m``, ``2h``, ``7d`` ago.
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from typing import Any

from toitsu.client import channel, client_options, emit, rpc_call, to_dict

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", parents=[client_options()], help="who read or changed what (admin)")
    parser.add_argument("--since", type=when, default=0.0, help="events from this time on (ISO time, or 2h, 7d ago)")
    parser.add_argument("--until", type=when, default=0.0, help="events before this time")
    parser.add_argument("--subject", default="", help="one token subject, or (open) / (unauthenticated)")
    parser.add_argument("--identity", default="", help="events that touched this identity id")
    parser.add_argument("--method", default="", help="a part of the method: Verify, FaceService/, SpeakerService/List")
    parser.add_argument("--code", default="", help="one status: OK, NOT_FOUND, UNAUTHENTICATED, ...")
    parser.add_argument("--limit", type=int, default=100, help="at most this many events, newest first (<= 10000)")
    parser.add_argument("--before-id", type=int, default=0, help="paging: events older than this id")
    parser.set_defaults(run=run)


def when(text: str) -> float:
    """Unix seconds from an ISO time or date (UTC unless zoned), Unix seconds, or an age ago."""
    text = text.strip()
    age = _AGE.match(text)
    if age:
        return time.time() - float(age.group(1)) * _UNIT[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (ISO 8601, Unix seconds, or 30s / 15m / 2h / 7d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def run(args: argparse.Namespace) -> int:
    from protos.v1 import audit_pb2, audit_pb2_grpc

    request = audit_pb2.QueryAuditRequest(
        since=args.since,
        until=args.until,
        subject=args.subject,
        identity=args.identity,
        method=args.method,
        code=args.code,
        limit=args.limit,
        before_id=args.before_id,
    )
    stub = audit_pb2_grpc.AuditServiceStub(channel(args.target, args))
    reply = rpc_call(args, lambda: stub.Query(request, timeout=args.timeout))
    payload = to_dict(reply)
    for event, message in zip(payload["events"], reply.events):
        event["time"] = _iso(message.time)  # JSON readers get the time a person reads too
        event["unix_time"] = message.time
    emit(args, payload, _table)
    return 0


def _table(payload: dict[str, Any]) -> str:
    events = payload["events"]
    if not events:
        return "no audit events match"
    rows = [("TIME (UTC)", "SUBJECT", "METHOD", "CODE", "IDENTITIES", "PEER")]
    for e in events:
        method = e["method"].rsplit(".", 1)[-1]  # SpeakerService/Verify
        rows.append((e["time"], e["subject"], method, e["code"], ",".join(e["identities"]) or "-", e["peer"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    if payload["truncated"]:
        lines.append(f"(more events match: --before-id {events[-1]['id']}, or narrow the filters)")
    return "\n".join(lines)
