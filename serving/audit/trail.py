"""The two interceptors that write the audit trail, and :func:`touched` for servicers.

The server's chain is ``Recorder → Authenticator → Collector → ErrorsAndMetrics → servicer``:

- :class:`Recorder` is outermost, so it also sees the calls the Authenticator refuses (which
  never reach a servicer, nor decode their request). It opens a :class:`Call` for the RPC (kept
  in a context variable of the worker thread the RPC runs on) and, when the RPC ends and before
  its reply or status goes out, commits the row: subject, method, ids, code, time, peer.
- :class:`Collector` sits inside the Authenticator, where requests are decoded: it adds the
  identity ids that each request and reply names (:mod:`serving.audit.identities`) to the call.
  For a stream it commits the ids gathered so far before each reply that carries new ones goes
  out (the row reads ``UNFINISHED`` until the stream ends), so the guarantee is the same as for
  a unary RPC: nothing a client has received lacks its audit row.

A servicer that touches an identity its messages do not name calls :func:`touched`.

Audited: every RPC of the Toitsu services except :data:`NOT_AUDITED` (job and model listings that
are polled and read no biometric data) and ``grpc.*`` (health, reflection). That includes
``FaceService.Detect`` (it receives a face image, which is personal data even when no identity
is looked up) and ``SoundService.Classify`` (it reads a gallery): one rule, no per-method
exceptions to keep right, at the cost of a row each. If the row cannot be written, a call that
succeeded is answered UNAVAILABLE instead of its reply (its effect, e.g. an enrollment, stands).
"""

from __future__ import annotations

import contextvars
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from serving.audit.identities import identities
from serving.audit.log import UNFINISHED, AuditLog, Event
from serving.errors import ToitsuError, Unavailable
from serving.security.auth import bearer
from serving.security.tokens import TokenStore, token_id

log = logging.getLogger("toitsu.audit")

OPEN = "(open)"  # no token store: the gateway runs without authentication (loopback, or allowed)
UNAUTHENTICATED = "(unauthenticated)"  # refused before any token was verified
NOT_AUDITED = frozenset(
    f"/toitsu.v1.ModelService/{m}" for m in ("ListModels", "ListJobs", "GetJob", "WatchJob")
)  # status polling of jobs and models: no biometric data, and WatchJob follows a job for minutes


def audited(method: str) -> bool:
    return method.startswith("/toitsu.") and method not in NOT_AUDITED


class Call:
    """One audited RPC while it runs: who, what, the ids it touched, and its row once written."""

    def __init__(self, recorder: Recorder, method: str, token: str, peer: str, open_call: bool) -> None:
        self.recorder, self.method, self.token, self.peer, self.open = recorder, method, token, peer, open_call
        self.at, self._start = time.time(), time.perf_counter()
        self.ids: dict[str, None] = {}
        self.row: int | None = None
        self._saved = 0  # how many of ``ids`` the row holds

    def note(self, ids: Iterable[str]) -> None:
        for identity in ids:
            if identity:
                self.ids.setdefault(identity, None)

    def _event(self, code: str) -> Event:
        subject = OPEN if self.open else self.recorder.subject(self.token, code)
        ms = (time.perf_counter() - self._start) * 1000.0
        return Event(self.at, subject, self.token, self.method, code, self.peer, ms, tuple(self.ids))

    def save(self, code: str) -> None:
        """Commit the row (or update it): ``code`` is the final status, or UNFINISHED mid-stream."""
        event, new = self._event(code), list(self.ids)[self._saved :]
        try:
            if self.row is None:
                self.row = self.recorder.log.write(event)
            else:
                self.recorder.log.amend(self.row, code, event.ms, new)
        except sqlite3.Error as exc:
            log.exception("audit: cannot write the row of %s", self.method)
            raise Unavailable("the audit trail could not be written; the reply is withheld") from exc
        self._saved = len(self.ids)

    def checkpoint(self) -> None:
        """Before a stream's reply goes out: the ids gathered so far are on disk."""
        if len(self.ids) > self._saved:
            self.save(UNFINISHED)


_current: contextvars.ContextVar[Call | None] = contextvars.ContextVar("toitsu_audit_call", default=None)


def touched(*ids: str) -> None:
    """Add identity ids to the audit row of the RPC running on this thread (no-op outside one)."""
    call = _current.get()
    if call is not None:
        call.note(ids)


def _code(context: grpc.ServicerContext, failed: BaseException | None) -> str:
    code = context.code()
    if code is not None:
        return code.name
    if failed is None:  # a stream whose client went away ends quietly (ErrorsAndMetrics)
        return "OK" if context.is_active() else "CANCELLED"
    if isinstance(failed, ToitsuError):
        return failed.code.name
    return "CANCELLED" if isinstance(failed, GeneratorExit) else "UNKNOWN"


class Recorder(grpc.ServerInterceptor):
    """Outermost interceptor: one committed row per audited RPC, before its reply goes out."""

    def __init__(self, audit: AuditLog, tokens: TokenStore, is_open: Callable[[str], bool]) -> None:
        self.log, self._tokens, self._is_open = audit, tokens, is_open

    def subject(self, token: str, code: str) -> str:
        """The token's subject once it was verified (any code but UNAUTHENTICATED means it was: the
        Authenticator checks first), else the UNAUTHENTICATED marker."""
        record = self._tokens.records().get(token) if token else None
        if code == "UNAUTHENTICATED" or record is None:
            return UNAUTHENTICATED
        return record.subject

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or not audited(method):
            return handler
        try:
            token = token_id(bearer(details.invocation_metadata))
        except ToitsuError:  # a malformed authorization entry: refused by the Authenticator, audited here
            token = ""
        open_call = not self._tokens.configured() or self._is_open(method)  # as the Authenticator decides now

        def begin(context: grpc.ServicerContext) -> Call:
            call = Call(self, method, token, context.peer(), open_call)
            _current.set(call)
            return call

        def end(call: Call, context: grpc.ServicerContext, failed: BaseException | None) -> None:
            _current.set(None)
            try:
                call.save(_code(context, failed))
            except Unavailable as exc:
                if failed is None:  # a success with no audit row is withheld
                    context.abort(exc.code, exc.message)
            if isinstance(failed, ToitsuError) and context.code() is None:  # e.g. a failed stream checkpoint
                context.abort(failed.code, failed.message)

        return _wrap(handler, begin, end)


def _wrap(
    handler: grpc.RpcMethodHandler,
    begin: Callable[[grpc.ServicerContext], Call],
    end: Callable[[Call, grpc.ServicerContext, BaseException | None], None],
) -> grpc.RpcMethodHandler:
    """``handler`` run between ``begin`` and ``end`` (the row), whatever kind of RPC it is."""
    codec = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}

    def single(behaviour: Callable) -> Callable:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            call = begin(context)
            try:
                response = behaviour(request, context)
            except BaseException as exc:
                end(call, context, exc)
                raise
            end(call, context, None)
            return response

        return run

    def streamed(behaviour: Callable) -> Callable:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = begin(context)
            try:
                yield from behaviour(request, context)
            except BaseException as exc:
                end(call, context, exc)
                raise
            end(call, context, None)

        return run

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(single(handler.unary_unary), **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(single(handler.stream_unary), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streamed(handler.unary_stream), **codec)
    return grpc.stream_stream_rpc_method_handler(streamed(handler.stream_stream), **codec)


class Collector(grpc.ServerInterceptor):
    """Inside the Authenticator, on decoded messages: the identity ids of requests and replies."""

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not audited(details.method):
            return handler
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_single(handler.unary_unary, iterated=False), **codec)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(_single(handler.stream_unary, iterated=True), **codec)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_streamed(handler.unary_stream, iterated=False), **codec)
        return grpc.stream_stream_rpc_method_handler(_streamed(handler.stream_stream, iterated=True), **codec)


def _noting(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        touched(*identities(request))
        yield request


def _single(behaviour: Callable, *, iterated: bool) -> Callable:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        if iterated:
            request = _noting(request)
        else:
            touched(*identities(request))
        response = behaviour(request, context)
        touched(*identities(response))
        return response

    return run


def _streamed(behaviour: Callable, *, iterated: bool) -> Callable:
    def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if iterated:
            request = _noting(request)
        else:
            touched(*identities(request))
        for response in behaviour(request, context):
            touched(*identities(response))
            call = _current.get()
            if call is not None:
                call.checkpoint()
            yield response

    return run


def interceptors(
    audit: AuditLog | None, tokens: TokenStore, is_open: Callable[[str], bool]
) -> tuple[list[grpc.ServerInterceptor], list[grpc.ServerInterceptor]]:
    """(the interceptors that go before the Authenticator, those that go right after it); none
    when the trail is off (``audit.enabled = false``)."""
    if audit is None:
        return [], []
    return [Recorder(audit, tokens, is_open)], [Collector()]
