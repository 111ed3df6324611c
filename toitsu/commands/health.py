"""``toitsu health``: the gateway's grpc.health.v1 status."""

from __future__ import annotations

import argparse
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from toitsu.client import channel, client_options, emit, fail


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("health", parents=[client_options()], help="is the gateway serving?")
    parser.add_argument("--service", default="", help="a service name (default: the whole server)")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="poll until SERVING or this many seconds pass"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stub = health_pb2_grpc.HealthStub(channel(args.target, args))
    deadline = time.monotonic() + args.wait
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as err:
            if time.monotonic() >= deadline:
                fail(args, err)
            status = ""
        if status == "SERVING" or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    emit(
        args,
        {"target": args.target, "service": args.service, "status": status},
        lambda p: f"{p['target']}: {p['status']}",
    )
    return 0 if status == "SERVING" else 1
