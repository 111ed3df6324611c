"""``toitsu.v1.TokenService``: create, list, revoke and rotate bearer tokens over gRPC (admin only).

The servicer edits the gateway's own :class:`~serving.security.tokens.TokenStore` (the same file
``toitsu tokens --local`` edits), so a change applies at the next RPC with no restart: the store
re-reads its file whenever it changed. Replies carry ids, subjects, roles and times, never a hash;
a token's secret is in its Create or Rotate reply only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import grpc

from protos.v1 import tokens_pb2, tokens_pb2_grpc
from serving.errors import InvalidInput
from serving.security.tokens import TokenRecord, TokenStore

if TYPE_CHECKING:
    from serving.services.registry import Service


class TokenRuntime(Protocol):
    tokens: TokenStore


def info(record: TokenRecord, now: float) -> tokens_pb2.TokenInfo:
    return tokens_pb2.TokenInfo(
        id=record.id,
        subject=record.subject,
        role=record.role,
        state=record.state(now),
        created_at=record.created,
        expires_at=record.expires or 0.0,
        revoked_at=record.revoked or 0.0,
        rate_per_second=record.rate or 0.0,
        burst=record.burst or 0.0,
        rotated_to=record.rotated_to or "",
    )


def _optional(value: float, name: str) -> float | None:
    """A proto3 double where 0 means "not given"; a negative one is refused."""
    if value < 0:
        raise InvalidInput(f"{name} must be >= 0 (0: not set)")
    return value or None


class TokenServicer(tokens_pb2_grpc.TokenServiceServicer):
    def __init__(self, runtime: TokenRuntime) -> None:
        self._store = runtime.tokens

    def Create(
        self, request: tokens_pb2.CreateTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.CreateTokenResponse:
        token, record = self._store.create(
            request.subject,
            request.role,
            _optional(request.expires_days, "expires_days"),
            rate=_optional(request.rate_per_second, "rate_per_second"),
            burst=_optional(request.burst, "burst"),
        )
        return tokens_pb2.CreateTokenResponse(info=info(record, record.created), token=token)

    def List(
        self, request: tokens_pb2.ListTokensRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.ListTokensResponse:
        now = self._store.now()
        return tokens_pb2.ListTokensResponse(tokens=[info(r, now) for r in self._store.list()])

    def Revoke(self, request: tokens_pb2.RevokeTokenRequest, context: grpc.ServicerContext) -> tokens_pb2.TokenInfo:
        return info(self._store.revoke(request.id), self._store.now())

    def Rotate(
        self, request: tokens_pb2.RotateTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.CreateTokenResponse:
        token, new, _ = self._store.rotate(
            request.id, request.grace_seconds, _optional(request.expires_days, "expires_days")
        )
        return tokens_pb2.CreateTokenResponse(info=info(new, new.created), token=token)


def token_service() -> Service:
    """The registry entry: needs no loaded modality. ``Service`` is imported here: the registry imports this."""
    from serving.services.registry import Service

    descriptor = tokens_pb2.DESCRIPTOR.services_by_name["TokenService"]
    return Service(descriptor.full_name, tokens_pb2_grpc.add_TokenServiceServicer_to_server, TokenServicer, ())
