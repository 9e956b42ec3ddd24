"""The shared runtime on a real gRPC server: error mapping, request ids, deadline
propagation, metrics, health, size limits and graceful drain."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drape.services.runtime import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    RunningService,
    ServerConfig,
    ServiceSpec,
    Unavailable,
    connect,
)
from drape.services.runtime.errors import DeadlineExceeded
from drape.services.runtime.scope import current, request_scope

SERVICE = "test.Probe"


def _spec(
    handlers: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]], name: str = "probe"
) -> ServiceSpec:
    generic = grpc.method_handlers_generic_handler(
        SERVICE, {m: grpc.unary_unary_rpc_method_handler(f) for m, f in handlers.items()}
    )
    return ServiceSpec(
        name=name,
        grpc_services=[SERVICE],
        register=lambda s: s.add_generic_rpc_handlers((generic,)),
    )


def _config(**overrides) -> ServerConfig:
    return ServerConfig(port=0, metrics_port=0, grace_s=2, max_message_mb=1, **overrides)


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningService]]:
    started: list[RunningService] = []

    def _serve(spec: ServiceSpec, **overrides) -> RunningService:
        service = RunningService(spec, _config(**overrides)).start()
        started.append(service)
        return service

    yield _serve
    for service in started:
        service.stop(grace=1)


def _call(address: str, method: str, payload: bytes = b"", **kwargs) -> bytes:
    with grpc.insecure_channel(address) as channel:
        return channel.unary_unary(f"/{SERVICE}/{method}")(
            payload, timeout=kwargs.pop("timeout", 5), **kwargs
        )


def _raises(exc: Exception) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            InvalidArgument("k", "must be between 1 and 200 (got 0)"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "k: must be between 1 and 200 (got 0)",
        ),
        (
            NotFound("garment 'g9' is not in the catalog"),
            grpc.StatusCode.NOT_FOUND,
            "garment 'g9' is not in the catalog",
        ),
        (
            ResourceExhausted("photo is 30 MiB; the limit is 10 MiB"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "photo is 30 MiB; the limit is 10 MiB",
        ),
        (Unavailable("triton is down"), grpc.StatusCode.UNAVAILABLE, "triton is down"),
        (
            FailedPrecondition("run drape train recsys"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "run drape train recsys",
        ),
    ],
)
def test_errors_map_to_status_codes(serve, exc, code, message):
    service = serve(_spec({"Fail": _raises(exc)}))
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Fail")
    assert err.value.code() == code
    assert err.value.details() == message


def test_unexpected_exception_is_internal_without_leaking_details_and_server_survives(serve):
    service = serve(
        _spec({"Boom": _raises(KeyError("secret-internal-key")), "Ok": lambda r, c: b"ok"})
    )
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Boom", metadata=(("x-request-id", "req-42"),))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret-internal-key" not in err.value.details()
    assert "req-42" in err.value.details()
    assert _call(service.address, "Ok") == b"ok"


def test_handler_abort_keeps_its_status(serve):
    def aborts(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    service = serve(_spec({"Abort": aborts}))
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Abort")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.value.details() == "no"


def test_deadline_and_request_id_propagate_downstream(serve):
    def report(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        return json.dumps(
            {"remaining": context.time_remaining(), "request_id": metadata.get("x-request-id")}
        ).encode()

    downstream = serve(_spec({"Report": report}, name="downstream"))
    channel = connect(downstream.address)

    def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(0.2)  # spend part of the caller's budget first
        return channel.unary_unary(f"/{SERVICE}/Report")(b"")

    upstream = serve(_spec({"Forward": forward}, name="upstream"))
    seen = json.loads(
        _call(upstream.address, "Forward", timeout=2.0, metadata=(("x-request-id", "trace-7"),))
    )
    channel.close()
    assert seen["request_id"] == "trace-7"
    # The downstream call got what was left of the caller's 2 s, not its own default.
    assert 0 < seen["remaining"] < 1.85


def test_no_downstream_call_once_the_deadline_has_passed():
    channel = connect("127.0.0.1:9")  # nothing listens there: the call must not even start
    with request_scope("r1", timeout=0.001):
        time.sleep(0.01)
        assert current() is not None
        with pytest.raises(DeadlineExceeded):
            channel.unary_unary(f"/{SERVICE}/Report")(b"")
    channel.close()


def test_caller_deadline_exceeded_is_reported(serve):
    service = serve(_spec({"Slow": lambda r, c: time.sleep(0.5) or b"late"}))
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Slow", timeout=0.1)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_request_id_returned_in_trailers(serve):
    service = serve(_spec({"Ok": lambda r, c: b"ok"}))
    with grpc.insecure_channel(service.address) as channel:
        _, call = channel.unary_unary(f"/{SERVICE}/Ok").with_call(
            b"", metadata=(("x-request-id", "abc"),)
        )
    assert ("x-request-id", "abc") in tuple(call.trailing_metadata())


def test_message_size_limit(serve):
    service = serve(_spec({"Echo": lambda r, c: r}))
    assert _call(service.address, "Echo", b"x" * 1000) == b"x" * 1000
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Echo", b"x" * (2 * 1024 * 1024))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_red_metrics_and_health(serve):
    service = serve(_spec({"Ok": lambda r, c: b"ok", "Bad": _raises(InvalidArgument("x", "bad"))}))
    for _ in range(3):
        _call(service.address, "Ok")
    with pytest.raises(grpc.RpcError):
        _call(service.address, "Bad")
    with urllib.request.urlopen(
        f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5
    ) as reply:
        text = reply.read().decode()
    assert (
        'drape_rpc_handled_total{grpc_code="OK",grpc_method="Ok",grpc_service="test.Probe"} 3.0'
        in text
    )
    assert 'grpc_code="INVALID_ARGUMENT",grpc_method="Bad"' in text
    assert (
        'drape_rpc_duration_seconds_count{grpc_method="Ok",grpc_service="test.Probe"} 3.0' in text
    )
    with grpc.insecure_channel(service.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
        )
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_handler_threads_run_the_spec_thread_start_hook(serve):
    local = threading.local()

    def start() -> None:
        local.tag = f"ready-{threading.get_ident()}"

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        return getattr(local, "tag", "not started").encode()

    spec = _spec({"Tag": handler})
    spec.on_thread_start = start
    service = serve(spec, max_workers=2)
    tags = {_call(service.address, "Tag").decode() for _ in range(6)}
    assert tags and all(t.startswith("ready-") for t in tags)


def _access_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "drape.rpc" and r.getMessage() == "rpc"]


def test_access_log_keeps_every_failed_and_slow_call_and_samples_the_rest(serve, caplog):
    def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(0.06)
        return b"ok"

    handlers = {"Ok": lambda r, c: b"ok", "Slow": slow, "Bad": _raises(NotFound("no such"))}
    quiet = serve(_spec(handlers), access_log_share=0.0, slow_call_ms=50)
    sampled = serve(_spec(handlers), access_log_share=0.5)
    with caplog.at_level(logging.INFO, logger="drape.rpc"):
        for _ in range(20):
            _call(quiet.address, "Ok")
        _call(quiet.address, "Slow", metadata=(("x-request-id", "slow-1"),))
        with pytest.raises(grpc.RpcError):
            _call(quiet.address, "Bad", metadata=(("x-request-id", "bad-1"),))
        quiet_lines = _access_lines(caplog)
        caplog.clear()
        for _ in range(200):
            _call(sampled.address, "Ok")
        sampled_lines = _access_lines(caplog)
    # Nothing of the twenty fast successes; the slow call and the failure, with their ids.
    assert [(r.request_id, r.code, r.levelno) for r in quiet_lines] == [
        ("slow-1", "OK", logging.INFO),
        ("bad-1", "NOT_FOUND", logging.WARNING),
    ]
    assert quiet_lines[1].error == "no such"
    # Half of 200 on average; 60..140 holds with probability far above 1 - 1e-8.
    assert 60 <= len(sampled_lines) <= 140
    assert all(r.code == "OK" and r.method == f"/{SERVICE}/Ok" for r in sampled_lines)


def test_graceful_stop_drains_in_flight_calls(serve):
    entered = threading.Event()

    def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
        entered.set()
        time.sleep(0.5)
        return b"finished"

    service = serve(_spec({"Slow": slow}))
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["value"] = _call(service.address, "Slow")
        except grpc.RpcError as exc:
            result["error"] = exc.code()

    caller = threading.Thread(target=call)
    caller.start()
    assert entered.wait(5)
    service.stop(grace=3)  # returns once the in-flight call is done
    caller.join(5)
    assert result == {"value": b"finished"}
    with pytest.raises(grpc.RpcError) as err:
        _call(service.address, "Slow", timeout=1)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_a_request_id_that_is_no_plain_token_is_replaced():
    """A caller's request id is echoed in metadata and logs: unicode, control characters or
    kilobytes of it would fail the call (found by drape bench fuzz), so such ids give way to
    a fresh one; a plain token is kept."""
    from drape.services.runtime.interceptors import ServerInterceptor

    class Context:
        def invocation_metadata(self):
            return ()

        def time_remaining(self):
            return None

    class Request:
        def __init__(self, request_id: str) -> None:
            self.request_id = request_id

    # "ab\n": a pattern anchored with $ lets a final newline through (found by the fuzz).
    for bad in ("é", "a\nb", "ab\n", "x" * 5000, "two words"):
        scope = ServerInterceptor._open("/s/M", Request(bad), Context())
        assert scope.request_id != bad and len(scope.request_id) == 32
    assert (
        ServerInterceptor._open("/s/M", Request("trace-7:a/b"), Context()).request_id
        == "trace-7:a/b"
    )
