"""Server interceptor: domain errors → gRPC status, unexpected errors → INTERNAL, metrics.

Servicers raise :class:`~serving.errors.ToitsuError`; this is the one place that turns them into
``context.abort``. Anything else is a bug: logged with its traceback, answered INTERNAL with a
generic message, so no internal detail (or assert) leaks to a client as UNKNOWN.

Every data-plane RPC is counted in :attr:`Metrics.live` while it runs; the control plane
(ModelService, whose WatchJob streams follow a re-embed for its whole length, and ``grpc.*``:
health, reflection) is not, since an activation's re-embed gives way only to live traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import grpc

from serving.errors import ToitsuError
from serving.metrics import Metrics

log = logging.getLogger("toitsu.rpc")

CONTROL_PLANE = ("toitsu.v1.ModelService",)  # services whose RPCs are not live traffic (nor ``grpc.*``)


class ErrorsAndMetrics(grpc.ServerInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails):
        handler = continuation(details)
        if handler is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        service = details.method.rsplit("/", 2)[-2] if details.method.count("/") >= 2 else ""
        name = f"{service.split('.')[-1]}.{method}"
        live = not (service.startswith("grpc.") or service in CONTROL_PLANE)
        if handler.unary_stream is not None and not service.startswith("grpc."):  # health's Watch handles itself
            return self._wrap_server_stream(name, handler, live)
        if handler.unary_unary is None and handler.stream_stream is None:
            return handler
        if handler.stream_stream is not None:
            return self._wrap_stream(name, handler, live=live)
        behaviour = handler.unary_unary

        def wrapped(request, context: grpc.ServicerContext):
            start, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                with self._counted(live):
                    return behaviour(request, context)
            except ToitsuError as exc:
                code = exc.code
                log.info("%s → %s: %s", name, code.name, exc.message)
                context.abort(code, exc.message)
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", name)
                context.abort(code, f"internal error in {name}; the server log has the details")
            finally:
                self._metrics.observe_rpc(name, code.name, time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )

    def _counted(self, live: bool) -> AbstractContextManager[None]:
        return self._metrics.live.serving() if live else nullcontext()

    def _wrap_server_stream(self, name: str, handler: grpc.RpcMethodHandler, live: bool) -> grpc.RpcMethodHandler:
        """Server streams (WatchJob): the stream wrapper over a one-request iterator."""
        streamed = self._wrap_stream(
            name, handler, lambda requests, context: handler.unary_stream(next(requests), context), live=live
        )
        behaviour = streamed.stream_stream
        return grpc.unary_stream_rpc_method_handler(
            lambda request, context: behaviour(iter((request,)), context),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_stream(
        self, name: str, handler: grpc.RpcMethodHandler, behaviour: Callable | None = None, *, live: bool = True
    ) -> grpc.RpcMethodHandler:
        """The same mapping for bidirectional streams (EnrollTracks): errors end the stream."""
        behaviour = behaviour or handler.stream_stream

        def wrapped(requests, context: grpc.ServicerContext):
            start, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                with self._counted(live):
                    yield from behaviour(requests, context)
            except ToitsuError as exc:
                code = exc.code
                log.info("%s → %s: %s", name, code.name, exc.message)
                context.abort(code, exc.message)
            except Exception:
                if not context.is_active():  # the client went away: nothing to answer
                    code = grpc.StatusCode.CANCELLED
                    return
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", name)
                context.abort(code, f"internal error in {name}; the server log has the details")
            finally:
                self._metrics.observe_rpc(name, code.name, time.perf_counter() - start)

        return grpc.stream_stream_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
