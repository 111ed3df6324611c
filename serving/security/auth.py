"""The authentication interceptor: refusals come before any decoding or model work.

It runs first in the server's interceptor chain and sees only the method name and the invocation
metadata. A missing, malformed, unknown, revoked or expired token is answered UNAUTHENTICATED,
a role below the RPC's (:mod:`serving.security.roles`) PERMISSION_DENIED, and a subject over its
rate limit (:mod:`serving.security.ratelimit`) RESOURCE_EXHAUSTED, by a handler that
has no request deserializer and never reads the request: the servicer (and the errors-and-metrics
interceptor inside it) is never entered. A token whose secret still needs scrypt is checked on the
RPC's worker thread, not on the server's polling thread, again before the request is decoded.

Methods under ``auth.open_services`` (health and reflection by default) need no token. With no
token store (no token ever created), every RPC is open; the gateway then binds only to loopback
unless ``server.allow_insecure_remote`` says otherwise (``serving.server``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from serving.errors import PermissionDenied, ToitsuError, Unauthenticated
from serving.security.ratelimit import Limit, RateLimiter
from serving.security.roles import allows, required_role
from serving.security.tokens import Pending, Principal, TokenStore

log = logging.getLogger("toitsu.auth")

BEARER = "bearer "


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the ``authorization: Bearer <token>`` metadata entry, or None."""
    for key, value in metadata or ():
        if key == "authorization":
            if not isinstance(value, str) or not value[: len(BEARER)].lower() == BEARER:
                raise Unauthenticated("the authorization metadata must be `Bearer <token>`")
            return value[len(BEARER) :].strip()
    return None


def _authorize(principal: Principal, method: str, limiter: RateLimiter | None = None) -> Principal:
    """The role check, then (for an allowed call) one call from the subject's rate-limit bucket."""
    needed = required_role(method)
    if not allows(principal.role, needed):
        raise PermissionDenied(
            f"{method} needs the {needed} role; this token ({principal.token_id}) has {principal.role}"
        )
    if limiter is not None:
        limiter.take(principal.subject, Limit.of(principal.rate, principal.burst, limiter.default))
    return principal


def _refusal(error: ToitsuError) -> grpc.RpcMethodHandler:
    """A handler that answers ``error`` at once, without reading (let alone decoding) the request.

    A stream handler for any kind of RPC: the server calls it before receiving a message."""

    def refuse(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        context.abort(error.code, error.message)
        raise AssertionError("unreachable")  # abort raises

    return grpc.stream_stream_rpc_method_handler(refuse)


def _checked_first(handler: grpc.RpcMethodHandler, check: Callable[[grpc.ServicerContext], None]):
    """``handler`` with ``check(context)`` run on the worker thread before the request is decoded."""
    decode = handler.request_deserializer or (lambda raw: raw)
    encode = handler.response_serializer

    def guarded(context: grpc.ServicerContext) -> None:
        try:
            check(context)
        except ToitsuError as exc:
            context.abort(exc.code, exc.message)

    if handler.unary_unary is not None:
        uu = handler.unary_unary

        def unary_unary(raw: bytes, context: grpc.ServicerContext) -> Any:
            guarded(context)
            return uu(decode(raw), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=encode)
    if handler.unary_stream is not None:
        us = handler.unary_stream

        def unary_stream(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
            guarded(context)
            yield from us(decode(raw), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=encode)
    if handler.stream_unary is not None:
        su = handler.stream_unary

        def stream_unary(raws: Iterator[bytes], context: grpc.ServicerContext) -> Any:
            guarded(context)
            return su((decode(r) for r in raws), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, response_serializer=encode)
    ss = handler.stream_stream

    def stream_stream(raws: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        guarded(context)
        yield from ss((decode(r) for r in raws), context)

    return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=encode)


class Authenticator(grpc.ServerInterceptor):
    def __init__(self, store: TokenStore, open_services: Iterable[str], limiter: RateLimiter | None = None) -> None:
        self._store = store
        self._open = tuple(open_services)
        self._limiter = limiter

    def is_open(self, method: str) -> bool:
        """Health and reflection (``auth.open_services``): a service name, or ``Service/Method``."""
        name = method.lstrip("/")
        return any(name == entry or name.startswith(entry.rstrip("/") + "/") for entry in self._open)

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails):
        method = details.method
        if self.is_open(method) or not self._store.configured():
            return continuation(details)
        try:
            result = self._store.check(bearer(details.invocation_metadata))
            if isinstance(result, Principal):
                _authorize(result, method, self._limiter)
        except ToitsuError as exc:
            log.info("%s refused: %s: %s", method, exc.code.name, exc.message)
            return _refusal(exc)
        handler = continuation(details)
        if handler is None or not isinstance(result, Pending):
            return handler
        pending = result

        def check(context: grpc.ServicerContext) -> None:
            try:
                _authorize(pending.verify(), method, self._limiter)
            except ToitsuError as exc:
                log.info("%s refused: %s: %s", method, exc.code.name, exc.message)
                raise

        return _checked_first(handler, check)
