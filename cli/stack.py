"""Runs Drape services as child processes on this machine: `drape up`, the demo,
benchmarks and the integration tests all use it.

Leaf services start first; each writes a ready file with the port it bound
(port 0 = ephemeral) once it serves. The gateway starts last, pointed at them.
Stopping sends SIGTERM (graceful drain), then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc

from drape.services.runtime.client import connect
from drape.services.runtime.config import DrapeConfig, ServerConfig
from drape.services.runtime.server import wait_for_ready_file
from drape.services.runtime.workers import die_with_parent
from drape.services.table import MODEL_SERVER as MODEL_SERVER_ENTRY
from drape.services.table import SERVICE_NAMES, SERVICES

# The model server comes first (features calls it); the gateway depends on every other
# service, so it goes last.
MODEL_SERVER = MODEL_SERVER_ENTRY.name
START_ORDER = (MODEL_SERVER, "events", "recommend", "features", "tryon", "splice", "gateway")
PROCESS_NAMES = (*SERVICE_NAMES, MODEL_SERVER)


def _kill_group(pid: int) -> None:
    """SIGKILL to the process group that ``pid`` leads (each service starts its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class StackError(RuntimeError):
    """A service failed to start; the message includes the end of its log."""


class _PortTaken(StackError):
    pass


PORT_TAKEN = "already in use"


@dataclass
class Endpoint:
    name: str
    address: str
    metrics_port: int | None
    pid: int
    health_port: int | None = None  # the plaintext health-only port, where configured


class Stack:
    """A set of Drape services running as child processes."""

    def __init__(
        self,
        config: DrapeConfig,
        services: Sequence[str] = SERVICE_NAMES,
        run_dir: Path | None = None,
        log_to_files: bool = True,
    ) -> None:
        unknown = set(services) - set(PROCESS_NAMES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}")
        self.config = config.model_copy(deep=True)
        wanted = set(services)
        if ("features" in wanted and self.config.features.runner == "triton") or "tryon" in wanted:
            wanted.add(MODEL_SERVER)
        self.services = [s for s in START_ORDER if s in wanted]
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="drape-run-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_to_files = log_to_files
        self.endpoints: dict[str, Endpoint] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._log_starts: dict[str, int] = {}

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def start(self, timeout: float = 60.0) -> Stack:
        try:
            if MODEL_SERVER in self.services:
                self._spawn(MODEL_SERVER)
                # Models load slowly (minutes on a cold disk); the rest start meanwhile.
                model_timeout = max(timeout, 180.0)
            leaves = [s for s in self.services if s not in ("gateway", MODEL_SERVER)]
            for name in leaves:
                if MODEL_SERVER in SERVICES[name].calls and MODEL_SERVER in self.services:
                    self._await_model_server(model_timeout)
                self._point_at_callees(name)
                self._spawn(name)
            for name in leaves:
                self._await_ready(name, timeout)
            if MODEL_SERVER in self.services and MODEL_SERVER not in self.endpoints:
                self._await_model_server(model_timeout)
            if "gateway" in self.services:
                self._point_at_callees("gateway")
                self._spawn("gateway")
                self._await_ready("gateway", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _point_at_callees(self, name: str) -> None:
        """Sets ``name``'s address settings (from the service table) to the callees that run."""
        section = getattr(self.config, name)
        for callee, setting in SERVICES[name].calls.items():
            if callee in self.endpoints:
                setattr(section, setting, self.endpoints[callee].address)

    def _spawn(self, name: str) -> None:
        config_file = self.run_dir / f"{name}.config.json"
        config_file.write_text(json.dumps(self.config.model_dump(mode="json")))
        ready = self.run_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        out: IO[bytes] | None = None
        if self.log_to_files:
            out = open(self.log_path(name), "ab")  # noqa: SIM115 (closed in stop())
            self._log_starts[name] = out.tell()
            self._logs.append(out)
        # The config file is the whole truth for the child: drop DRAPE_ overrides.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAPE_")}
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drape.cli",
                "serve",
                name,
                "--config",
                str(config_file),
                "--ready-file",
                str(ready),
            ],
            # Without log files, children write to our stderr: stdout is `drape up`'s table.
            stdout=out or sys.stderr,
            stderr=subprocess.STDOUT if out else None,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _await_model_server(self, timeout: float, attempts: int = 3) -> None:
        """Waits for Triton. Its ports were only reserved (it cannot bind port 0), so on an
        ephemeral stack a port taken in the meantime means new ports and another try."""
        ephemeral = all(self.config.server(s).port == 0 for s in SERVICE_NAMES)
        for attempt in range(attempts):
            try:
                self._await_ready(MODEL_SERVER, timeout, fail_on=PORT_TAKEN if ephemeral else None)
                return
            except _PortTaken:
                if attempt == attempts - 1:
                    raise
                self._terminate([MODEL_SERVER], grace=self._grace(MODEL_SERVER))
                triton = self.config.triton
                triton.grpc_port, triton.http_port, triton.metrics_port = free_ports(3)
                self._spawn(MODEL_SERVER)

    def _await_ready(self, name: str, timeout: float, fail_on: str | None = None) -> None:
        proc = self._procs[name]
        next_look = [time.monotonic() + 0.5]

        def check() -> None:  # the log, twice a second, for a failure we can act on
            if fail_on and self.log_to_files and time.monotonic() > next_look[0]:
                next_look[0] = time.monotonic() + 0.5
                with open(self.log_path(name), "rb") as handle:
                    handle.seek(self._log_starts.get(name, 0))
                    if fail_on.encode() in handle.read():
                        raise _PortTaken(f"{name}: {fail_on}")

        try:
            info = wait_for_ready_file(
                self.run_dir / f"{name}.ready", proc, time.monotonic() + timeout, check
            )
        except ChildProcessError:
            raise StackError(
                f"{name} exited with code {proc.returncode}:\n{self._tail(name)}"
            ) from None
        if info is None:
            raise StackError(f"{name} was not ready within {timeout:.0f} s:\n{self._tail(name)}")
        self.endpoints[name] = Endpoint(name, info["address"], info["metrics_port"], info["pid"],
                                        info.get("health_port"))  # fmt: skip

    def _tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def address(self, name: str) -> str:
        return self.endpoints[name].address

    def ingest(self, feed: Path, client: ServerConfig | None = None, timeout: float = 60.0) -> int:
        """Ingests a feed (CSV beside its ``images/``) through this stack's features service,
        tells the recommend service to reload now (SIGHUP, as an operator would, rather than
        wait for its refresh timer), then waits (bounded) until every recommend worker serves
        the catalog; asked directly, so the gateway's counters and the exposure log see none
        of it. Returns the garments ingested."""
        from drape.catalog.embedders import ingest_via_service
        from drape.v1 import recommend_pb2, recommend_pb2_grpc

        config = (
            self.config.model_copy(update={"client_tls": client.tls})
            if client is not None
            else self.config
        )
        report = ingest_via_service(feed, config, self.address("features"))
        if "recommend" in self.endpoints:  # its supervisor passes the signal to each worker
            os.kill(self.endpoints["recommend"].pid, signal.SIGHUP)
        channel = connect(self.address("recommend"), client, connections=16)
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    for _ in range(32):
                        stub.Recommend(recommend_pb2.RecommendRequest(user_id="u", k=4), timeout=5)
                    return report.ingested
                except grpc.RpcError:
                    time.sleep(0.5)
        finally:
            channel.close()
        raise StackError(
            f"the recommend workers did not serve the ingested catalog within {timeout:.0f} s"
        )

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self._procs[name]

    def kill(self, name: str) -> None:
        """SIGKILLs ``name`` and every process it started, as when its machine dies."""
        proc = self._procs[name]
        _kill_group(proc.pid)
        proc.wait(timeout=30)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Starts ``name`` again on the same port (after it died or was killed)."""
        proc = self._procs[name]
        if proc.poll() is None:
            self._terminate([name], grace=self._grace(name))
        if name != MODEL_SERVER:  # the model server's ports are fixed already
            server = self.config.server(name)
            server.port = int(self.endpoints[name].address.rsplit(":", 1)[1])
        self._spawn(name)
        self._await_ready(name, timeout)

    def wait(self) -> str:
        """Blocks until any service exits; returns its name."""
        while True:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    return name
            time.sleep(0.2)

    def _terminate(self, names: Sequence[str], grace: float) -> None:
        for name in names:
            proc = self._procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name in names:
            proc = self._procs[name]
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            _kill_group(proc.pid)  # whatever it started and left behind (Triton's server)

    def stop(self) -> None:
        """Gateway first (no new work comes in), then the rest; every child is reaped."""
        running = [n for n in reversed(START_ORDER) if n in self._procs]
        grace = max((self._grace(n) for n in running), default=0)
        if "gateway" in running:
            self._terminate(["gateway"], grace)
        self._terminate([n for n in running if n != "gateway"], grace)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def _grace(self, name: str) -> float:
        # Triton waits up to its exit timeout (10 s) for in-flight inferences.
        return 15.0 if name == MODEL_SERVER else self.config.server(name).grace_s + 5

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ephemeral(config: DrapeConfig) -> DrapeConfig:
    """A copy of ``config`` with every service (and /metrics) on ephemeral loopback ports."""
    config = config.model_copy(deep=True)
    for name in SERVICE_NAMES:
        server = config.server(name)
        server.host, server.port, server.metrics_port = "127.0.0.1", 0, 0
    # Triton cannot bind port 0: reserve free ones now (the window until it binds is short).
    triton = config.triton
    triton.host = "127.0.0.1"
    triton.grpc_port, triton.http_port, triton.metrics_port = free_ports(3)
    return config


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
