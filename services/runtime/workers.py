"""Several processes of one service behind one port.

A Python gRPC handler holds the interpreter lock while it computes, so one
process of a CPU-bound service (recommend: ranking is numpy and FAISS under
Python) uses about one core whatever its thread count. ``server.processes = N``
runs N worker processes that all listen on the same port with SO_REUSEPORT: the
kernel spreads incoming connections over them. (Measured with
`drape bench recommend` on 2 cores, 8 clients: 1 process ~300-410 requests/s,
2 processes ~920.)

The supervisor (the process `drape serve` started) reserves the port, starts the
workers, writes the ready file once every worker serves, forwards SIGTERM and
SIGHUP to them, restarts a worker that dies, and serves one /metrics for all of
them: each worker's series, labelled ``worker="<n>"``. Unless ``server.shared_dir`` is
set, it gives its workers a directory of its own for what they share: recommend's workers
keep one read of the event log there (services/recommend/shared.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from drape.services.runtime.config import ENV_PREFIX, ServerConfig
from drape.services.runtime.metrics import MetricsEndpoint
from drape.services.runtime.server import handling_signals, wait_for_ready_file, write_ready_file

log = logging.getLogger("drape.workers")

WORKER_LABEL = "worker"


def shared_dir_variable(service: str) -> str:
    """The environment variable that sets ``service``'s ``server.shared_dir``."""
    return f"{ENV_PREFIX}{service.upper()}__SERVER__SHARED_DIR"


def die_with_parent() -> None:
    """Asks Linux to SIGTERM this process when its parent dies, even by SIGKILL, so no
    service outlives its supervisor (a no-op elsewhere). Call it in the child: before exec
    (``preexec_fn``) or first thing after."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def worker_count(config: ServerConfig) -> int:
    """``processes``; 0 means one per CPU this process may run on."""
    if config.processes:
        return config.processes
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket: it fixes the port (0 = ephemeral)
    for the workers and keeps it ours while they restart."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


class WorkerMetrics(Collector):
    """Collects every worker's /metrics and labels each series with its worker."""

    def __init__(self, ports: dict[int, int], timeout_s: float = 2.0) -> None:
        self.ports = ports  # worker index -> its metrics port (updated on restarts)
        self.timeout_s = timeout_s

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for index, port in sorted(self.ports.items()):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=self.timeout_s
                ) as response:
                    text = response.read().decode()
            except OSError as exc:  # a worker restarting: its series are absent this scrape
                log.warning(
                    "worker metrics unavailable", extra={"worker": index, "error": str(exc)}
                )
                continue
            for family in text_string_to_metric_families(text):
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    target.add_sample(
                        sample.name,
                        {**sample.labels, WORKER_LABEL: str(index)},
                        sample.value,
                        sample.timestamp,
                        sample.exemplar,
                    )
        yield from merged.values()


class Supervisor:
    """Runs ``count`` workers of ``service`` on one port; see the module docstring."""

    def __init__(
        self,
        service: str,
        config_path: Path | None,
        server: ServerConfig,
        count: int,
        run_dir: Path,
        start_timeout_s: float = 300.0,
    ) -> None:
        self.service = service
        self.config_path = config_path
        self.server = server
        self.count = count
        self.run_dir = Path(run_dir)
        self.start_timeout_s = start_timeout_s
        self._socket = _reserve_port(server.host, server.port)
        self.port: int = self._socket.getsockname()[1]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self.metrics_ports: dict[int, int] = {}
        self._metrics: MetricsEndpoint | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.port}"

    def _ready_file(self, index: int) -> Path:
        return self.run_dir / f"{self.service}-worker-{index}.ready"

    def _spawn(self, index: int) -> None:
        ready = self._ready_file(index)
        ready.unlink(missing_ok=True)
        command = [sys.executable, "-m", "drape.cli", "serve", self.service]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        command += ["--port", str(self.port), "--worker", str(index), "--ready-file", str(ready)]
        # No preexec_fn: that forces a fork() of this process, which has gRPC's threads
        # (seen to abort it); the worker asks to die with its parent itself.
        env = dict(os.environ)
        if not self.server.shared_dir:  # what the workers share: in our run directory
            env[shared_dir_variable(self.service)] = str(self.run_dir / "shared")
        self._procs[index] = subprocess.Popen(command, env=env)

    def _await(self, index: int, deadline: float) -> None:
        def check() -> None:
            if self._stopping.is_set():
                raise RuntimeError(f"{self.service}: stopped while worker {index} was starting")

        try:
            info = wait_for_ready_file(self._ready_file(index), self._procs[index], deadline, check)
        except ChildProcessError as exc:
            raise RuntimeError(f"{self.service} worker {index} exited with {exc.args[0]}") from exc
        if info is None:
            raise RuntimeError(
                f"{self.service} worker {index} not ready in {self.start_timeout_s} s"
            )
        self.metrics_ports[index] = info["metrics_port"]

    def start(self) -> Supervisor:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            for index in range(self.count):
                self._spawn(index)
            deadline = time.monotonic() + self.start_timeout_s
            for index in range(self.count):
                self._await(index, deadline)
            if self.server.metrics_port >= 0:
                registry = CollectorRegistry()
                registry.register(WorkerMetrics(self.metrics_ports))
                self._metrics = MetricsEndpoint(
                    registry, self.server.host, self.server.metrics_port
                )
        except BaseException:
            self.stop()
            raise
        log.info(
            "serving",
            extra={
                "service": self.service,
                "address": self.address,
                "workers": self.count,
                "metrics": self.metrics_port,
            },
        )
        return self

    @property
    def metrics_port(self) -> int | None:
        return self._metrics.port if self._metrics else None

    def signal_workers(self, signum: int) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def watch(self) -> None:
        """Restarts workers that die, until :meth:`stop`."""
        while not self._stopping.wait(0.5):
            for index, proc in list(self._procs.items()):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.error(
                        "worker died; restarting",
                        extra={"service": self.service, "worker": index, "code": proc.returncode},
                    )
                    self._spawn(index)
                    try:
                        self._await(index, time.monotonic() + self.start_timeout_s)
                    except RuntimeError as exc:
                        log.error("worker restart failed", extra={"error": str(exc)})

    def request_stop(self) -> None:
        """Ends :meth:`watch` (and a :meth:`start` in progress); safe in a signal handler."""
        self._stopping.set()

    def stop(self) -> None:
        """SIGTERM to every worker (each drains its calls), then waits for them."""
        self._stopping.set()
        self.signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + self.server.drain_delay_s + self.server.grace_s + 10
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._metrics is not None:
            self._metrics.close()
        self._socket.close()
        log.info("stopped", extra={"service": self.service})


def supervise(supervisor: Supervisor, ready_file: Path | None) -> None:
    """Runs ``supervisor`` until SIGTERM or SIGINT; SIGHUP reaches every worker."""

    def _on_stop(signum: int) -> None:
        log.info("signal received, stopping workers", extra={"signal": signal.Signals(signum).name})
        supervisor.request_stop()

    with handling_signals(_on_stop, lambda: supervisor.signal_workers(signal.SIGHUP)):
        try:
            supervisor.start()
            if ready_file is not None:
                write_ready_file(
                    ready_file,
                    {
                        "service": supervisor.service,
                        "address": supervisor.address,
                        "port": supervisor.port,
                        "metrics_port": supervisor.metrics_port,
                        # Every worker binds the same configured port (SO_REUSEPORT).
                        "health_port": supervisor.server.health_port
                        if supervisor.server.health_port > 0
                        else None,
                        "workers": supervisor.count,
                    },
                )
            supervisor.watch()
        finally:
            supervisor.stop()
