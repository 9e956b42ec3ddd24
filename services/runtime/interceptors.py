"""Server and client interceptors: the one place where cross-cutting concerns live.

Server side, every call gets: a request scope (request id from the request
message, the ``x-request-id`` header, or a fresh one; the caller's deadline),
RED metrics, a structured access-log line (every failed or slow call, a sampled
share of the rest), and the mapping of exceptions to gRPC status codes. Client
side, every downstream call inherits the request id and the time left before the
caller's deadline.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import grpc

from drape.services.runtime import scope as scopes
from drape.services.runtime.errors import DeadlineExceeded, DrapeError
from drape.services.runtime.metrics import MethodMetrics, RpcMetrics

log = logging.getLogger("drape.rpc")

# A caller's request id is kept if it is a plain token (what metadata and logs can carry).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# Downstream calls get this much less time than the caller has left, so that a
# timed-out dependency is reported before our own caller gives up.
DEADLINE_MARGIN_S = 0.005


def _header(context: grpc.ServicerContext, name: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return ""


class _Failure(Exception):
    """Internal: carries the status a handler's exception maps to."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _to_failure(exc: BaseException, context: grpc.ServicerContext, request_id: str) -> _Failure:
    if isinstance(exc, DrapeError):
        return _Failure(exc.code, exc.message)
    if isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call):
        # A downstream service failed: its status and message are the caller's answer.
        log.info("downstream call failed", extra={"code": exc.code().name})
        return _Failure(exc.code(), exc.details() or exc.code().name)
    log.error("unhandled exception", exc_info=exc)
    return _Failure(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")


class AccessLog:
    """One structured line per call: every failed or slow call, and a sampled ``share`` of
    the rest. A busy service spends a noticeable part of each call formatting lines nobody
    reads; the RED metrics count every call either way."""

    def __init__(self, share: float = 1.0, slow_s: float = 0.25) -> None:
        self.share = share
        self.slow_s = slow_s
        self._random = random.Random()

    def write(
        self, scope: scopes.RequestScope, code: grpc.StatusCode, message: str, elapsed: float
    ) -> None:
        if code is grpc.StatusCode.OK:
            # random() is in [0, 1): a share of 0 keeps none, a share of 1 keeps all.
            if elapsed < self.slow_s and self._random.random() >= self.share:
                return
            level = logging.INFO
        elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            level = logging.ERROR
        else:
            level = logging.WARNING
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "rpc",
            extra={
                "request_id": scope.request_id,
                "method": scope.method,
                "code": code.name,
                "ms": round(elapsed * 1000, 3),
                **({"error": message} if message else {}),
            },
        )


class ServerInterceptor(grpc.ServerInterceptor):
    """Request scope, metrics, logging and error mapping for every handler."""

    def __init__(self, metrics: RpcMetrics, access_log: AccessLog | None = None) -> None:
        self._metrics = metrics
        self._access_log = access_log or AccessLog()
        # A service's handlers are fixed once it serves: wrap each method's once.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(
        self, continuation: Callable[[Any], grpc.RpcMethodHandler | None], details: Any
    ) -> grpc.RpcMethodHandler | None:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            handler = continuation(details)
            if handler is None:
                return None
            wrapped = self._wrapped[details.method] = self._wrap(handler, details.method)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            wrap, inner = grpc.unary_unary_rpc_method_handler, handler.unary_unary
        elif handler.unary_stream:
            wrap, inner = grpc.unary_stream_rpc_method_handler, handler.unary_stream
        elif handler.stream_unary:
            wrap, inner = grpc.stream_unary_rpc_method_handler, handler.stream_unary
        else:
            wrap, inner = grpc.stream_stream_rpc_method_handler, handler.stream_stream
        series = self._metrics.method(method)
        behaviour = (
            self._streaming(inner, method, series)
            if handler.response_streaming
            else self._unary(inner, method, series)
        )
        return wrap(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    @staticmethod
    def _open(method: str, request: Any, context: grpc.ServicerContext) -> scopes.RequestScope:
        request_id = getattr(request, "request_id", "") or _header(
            context, scopes.REQUEST_ID_HEADER
        )
        if request_id and not REQUEST_ID.fullmatch(request_id):
            # Echoed in metadata and logs: a caller's id that is not a plain token (unicode,
            # control characters, kilobytes) is replaced, never a reason to fail the call.
            request_id = ""
        remaining = context.time_remaining()
        # grpc reports "no deadline" as a huge number rather than None.
        deadline = (
            time.monotonic() + remaining if remaining is not None and remaining < 1e8 else None
        )
        return scopes.RequestScope(request_id or scopes.new_request_id(), method, deadline)

    def _finish(
        self,
        scope: scopes.RequestScope,
        series: MethodMetrics,
        started: float,
        code: grpc.StatusCode,
        message: str,
    ) -> None:
        elapsed = time.perf_counter() - started
        series.finished(code.name, elapsed)
        self._access_log.write(scope, code, message, elapsed)

    def _unary(
        self, inner: Callable[..., Any], method: str, series: MethodMetrics
    ) -> Callable[..., Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            scope = self._open(method, request, context)
            token = scopes.enter(scope)
            code, message = grpc.StatusCode.OK, ""
            series.started()
            try:
                self._check_deadline(scope, context)
                response = inner(request, context)
                if hasattr(response, "request_id") and not response.request_id:
                    response.request_id = scope.request_id
                code = context.code() or grpc.StatusCode.OK
                return response
            except BaseException as exc:
                code, message = self._fail(exc, context, scope)
            finally:
                scopes.leave(token)
                self._finish(scope, series, started, code, message)
            context.abort(code, message)

        return behaviour

    def _streaming(
        self, inner: Callable[..., Any], method: str, series: MethodMetrics
    ) -> Callable[..., Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            scope = self._open(method, request, context)
            code, message = grpc.StatusCode.OK, ""
            token = scopes.enter(scope)
            series.started()
            try:
                self._check_deadline(scope, context)
                # The sync server drains this generator on one worker thread, so
                # the scope stays set across yields until the stream ends.
                yield from inner(request, context)
                code = context.code() or grpc.StatusCode.OK
            except BaseException as exc:
                code, message = self._fail(exc, context, scope)
            finally:
                scopes.leave(token)
                self._finish(scope, series, started, code, message)
            if code != grpc.StatusCode.OK:
                context.abort(code, message)

        return behaviour

    @staticmethod
    def _check_deadline(scope: scopes.RequestScope, context: Any) -> None:
        context.set_trailing_metadata(((scopes.REQUEST_ID_HEADER, scope.request_id),))
        remaining = scope.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the call could start")

    @staticmethod
    def _fail(
        exc: BaseException, context: grpc.ServicerContext, scope: scopes.RequestScope
    ) -> tuple[grpc.StatusCode, str]:
        if isinstance(exc, GeneratorExit):
            # The client went away mid-stream.
            return grpc.StatusCode.CANCELLED, "client cancelled"
        already = context.code()
        if already not in (None, grpc.StatusCode.OK):
            # The handler called context.abort() itself; keep its status.
            return already, context.details() or ""
        failure = _to_failure(exc, context, scope.request_id)
        if isinstance(exc, DrapeError) and exc.trailers:
            context.set_trailing_metadata(exc.trailers)
        return failure.code, failure.message


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _ClientCallDetails(_CallDetails, grpc.ClientCallDetails):
    pass


class PropagatingClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Gives downstream calls the caller's request id and remaining deadline."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        current = scopes.current()
        timeout = details.timeout if details.timeout is not None else self._default_timeout
        metadata = list(details.metadata or ())
        if current is not None:
            remaining = current.remaining()
            if remaining is not None:
                remaining -= DEADLINE_MARGIN_S
                if remaining <= 0:
                    raise DeadlineExceeded(f"no time left for downstream call {details.method}")
                timeout = min(timeout, remaining)
            if not any(key == scopes.REQUEST_ID_HEADER for key, _ in metadata):
                metadata.append((scopes.REQUEST_ID_HEADER, current.request_id))
        return _ClientCallDetails(
            details.method,
            timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)
