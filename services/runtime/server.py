"""Server bootstrap shared by every service.

A service is described by a :class:`ServiceSpec` (its gRPC name, how to add its
servicer, what to close on shutdown); :class:`RunningService` gives it health,
reflection, the interceptors, message-size limits, a /metrics endpoint and a
graceful shutdown that drains in-flight calls.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from drape.services.runtime.config import ServerConfig
from drape.services.runtime.interceptors import AccessLog, ServerInterceptor
from drape.services.runtime.metrics import MetricsEndpoint, RpcMetrics
from drape.services.runtime.tls import server_credentials

log = logging.getLogger("drape.server")


@dataclass
class ServiceSpec:
    """What a service contributes; the runtime does the rest."""

    name: str
    # Fully-qualified gRPC service names served (for health and reflection).
    grpc_services: Sequence[str]
    register: Callable[[grpc.Server], None]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Called after the server stopped (close stores, stop background threads).
    on_stop: Callable[[], None] = lambda: None
    # Called on SIGHUP: reload what the service serves (new model versions) without a restart.
    on_reload: Callable[[], None] | None = None
    # Called once in every handler thread as it starts (per-thread library settings).
    on_thread_start: Callable[[], None] | None = None


def server_options(config: ServerConfig, reuse_port: bool = False) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Only the workers of one service share a port (services/runtime/workers.py).
        ("grpc.so_reuseport", int(reuse_port)),
    ]


class RunningService:
    """A started gRPC server with health, reflection and metrics."""

    def __init__(
        self,
        spec: ServiceSpec,
        config: ServerConfig,
        reuse_port: bool = False,
        metrics_host: str | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.metrics_host = metrics_host or config.host
        self.metrics = RpcMetrics(spec.registry)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=config.max_workers,
                thread_name_prefix=f"{spec.name}-rpc",
                initializer=spec.on_thread_start,
            ),
            interceptors=[
                ServerInterceptor(
                    self.metrics, AccessLog(config.access_log_share, config.slow_call_ms / 1000)
                )
            ],
            options=server_options(config, reuse_port),
            maximum_concurrent_rpcs=config.max_workers * 8,
        )
        spec.register(self._server)
        for name in spec.grpc_services:
            try:
                service = descriptor_pool.Default().FindServiceByName(name)
            except KeyError:  # a service defined without a compiled descriptor
                continue
            self.metrics.start_at_zero(name, [m.name for m in service.methods])
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if config.reflection:
            reflection.enable_server_reflection(
                (*spec.grpc_services, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
            )
        listen = f"{config.host}:{config.port}"
        if config.tls.serves_tls:
            self.port = self._server.add_secure_port(listen, server_credentials(config.tls))
        else:
            self.port = self._server.add_insecure_port(listen)
        if self.port == 0:
            raise OSError(f"{spec.name}: cannot listen on {listen}")
        # Health alone on a plaintext port, for probes that cannot speak TLS (the kubelet's):
        # a server of its own, so nothing else is reachable there.
        self._health_server: grpc.Server | None = None
        self.health_port: int | None = None
        if config.health_port >= 0:
            self._health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2,
                                              thread_name_prefix=f"{spec.name}-health"),
                                              options=server_options(config, reuse_port))  # fmt: skip
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(
                f"{config.host}:{config.health_port}"
            )
            if self.health_port == 0:
                raise OSError(
                    f"{spec.name}: cannot listen for health on {config.host}:{config.health_port}"
                )
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_endpoint.port if self._metrics_endpoint else None

    def start(self) -> RunningService:
        if self.config.metrics_port >= 0:
            self._metrics_endpoint = MetricsEndpoint(
                self.spec.registry, self.metrics_host, self.config.metrics_port
            )
        self._server.start()
        if self._health_server is not None:
            self._health_server.start()
        for name in ("", *self.spec.grpc_services):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "service": self.spec.name,
                "address": self.address,
                "metrics": self.metrics_port,
                "tls": "mtls"
                if self.config.tls.client_ca
                else ("tls" if self.config.tls.serves_tls else "off"),
                **({"health": self.health_port} if self.health_port is not None else {}),
            },
        )
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets in-flight ones finish within ``grace`` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_s if grace is None else grace
        self.health.enter_graceful_shutdown()
        if self.config.drain_delay_s:
            time.sleep(self.config.drain_delay_s)
        self._server.stop(grace).wait(grace + 5)
        if self._health_server is not None:
            self._health_server.stop(0)
        try:
            self.spec.on_stop()
        finally:
            if self._metrics_endpoint:
                self._metrics_endpoint.close()
        log.info("stopped", extra={"service": self.spec.name})

    def wait(self) -> None:
        self._server.wait_for_termination()


def write_ready_file(path: Path, info: dict[str, object]) -> None:
    """Tells a supervisor where a service listens (atomically: write, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(path)


def wait_for_ready_file(
    path: Path,
    proc: subprocess.Popen[bytes],
    deadline: float,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any] | None:
    """What ``proc`` wrote to its ready file (see :func:`write_ready_file`) once it serves;
    None if ``deadline`` (a ``time.monotonic()`` value) passes first. Raises
    ``ChildProcessError`` if the process exits first; ``check`` runs at every look and may
    raise to give up sooner."""
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise ChildProcessError(proc.returncode)
        check()
        time.sleep(0.05)
    return None


def serve_until_signalled(service: RunningService, ready_file: Path | None = None) -> None:
    """Runs ``service`` until SIGTERM or SIGINT, then shuts it down gracefully."""
    stop = threading.Event()

    def _on_stop(signum: int) -> None:
        log.info("signal received, draining", extra={"signal": signal.Signals(signum).name})
        stop.set()

    def _on_reload() -> None:
        log.info("SIGHUP: reloading")
        if service.spec.on_reload is not None:
            service.spec.on_reload()

    with handling_signals(_on_stop, _on_reload):
        try:
            service.start()
            if ready_file is not None:
                write_ready_file(
                    ready_file,
                    {
                        "service": service.spec.name,
                        "address": service.address,
                        "port": service.port,
                        "metrics_port": service.metrics_port,
                        "health_port": service.health_port,
                    },
                )
            while not stop.wait(1.0):
                pass
        finally:
            service.stop()


@contextmanager
def handling_signals(
    on_stop: Callable[[int], None], on_reload: Callable[[], None]
) -> Iterator[None]:
    """SIGTERM and SIGINT call ``on_stop(signum)``, SIGHUP ``on_reload()``; the previous
    handlers are back afterwards."""
    previous = {
        s: signal.signal(s, lambda signum, _frame: on_stop(signum))
        for s in (signal.SIGTERM, signal.SIGINT)
    }
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda _signum, _frame: on_reload())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
