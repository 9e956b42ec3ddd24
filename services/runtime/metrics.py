"""Prometheus metrics: RED metrics per RPC method, and the /metrics endpoint.

Each service owns a ``CollectorRegistry`` (no process-global state), so several
services can run in one process (tests) without their series mixing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

# No `*_created` series: a gauge per counter and histogram child that no rule reads and that
# doubles what every scrape stores.
disable_created_metrics()

# Status codes that are the server's failure, not the caller's mistake: what the error-ratio
# rules count, and started at zero with OK.
SERVER_ERROR_CODES = (
    "UNKNOWN",
    "INTERNAL",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "DATA_LOSS",
    "UNIMPLEMENTED",
)

# Buckets from 1 ms to 30 s: covers cached lookups through cold GAN previews.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.3,  # the Recommend latency objective (99% within 300 ms) is a bucket boundary
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass
class RpcMetrics:
    """Rate, errors and duration of every gRPC method a server handles."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.handled = Counter(
            "drape_rpc_handled",
            "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "drape_rpc_duration_seconds",
            "Server-side handling time of RPCs.",
            ["grpc_service", "grpc_method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "drape_rpc_in_flight",
            "RPCs being handled now.",
            ["grpc_service", "grpc_method"],
            registry=self.registry,
        )

    def start_at_zero(self, service: str, methods: list[str]) -> None:
        """Creates the OK, server-error and latency series of every method before the first
        call, so Prometheus sees them rise from zero (a series first scraped at its final value
        shows no rate at all, and the first burst of errors would be missed)."""
        for method in methods:
            for code in ("OK", *SERVER_ERROR_CODES):
                self.handled.labels(service, method, code)
            self.latency.labels(service, method)

    def method(self, full_method: str) -> MethodMetrics:
        """The series of one method (``/package.Service/Method``), label children resolved
        once: a ``labels()`` lookup per call costs more than the update itself."""
        return MethodMetrics(self, full_method)


class MethodMetrics:
    """RED series of one gRPC method."""

    def __init__(self, metrics: RpcMetrics, full_method: str) -> None:
        _, _, rest = full_method.partition("/")
        service, _, method = rest.partition("/")
        self._labels = (service, method)
        self._handled = metrics.handled
        self._by_code: dict[str, Any] = {}
        self.in_flight = metrics.in_flight.labels(service, method)
        self.latency = metrics.latency.labels(service, method)

    def started(self) -> None:
        self.in_flight.inc()

    def finished(self, code: str, seconds: float) -> None:
        handled = self._by_code.get(code)
        if handled is None:
            handled = self._by_code[code] = self._handled.labels(*self._labels, code)
        handled.inc()
        self.latency.observe(seconds)
        self.in_flight.dec()


class MetricsEndpoint:
    """Serves a registry at http://host:port/metrics on a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer = server
        self._thread: Thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
