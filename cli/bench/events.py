"""`drape bench events`: acknowledged events/s and Record latency of the events service.

The service runs in its own process (as deployed) with its real store; the load
comes from client threads in this process over loopback gRPC. Every phase runs
for a fixed time; only acknowledged (stored) events count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from drape.cli.bench import format_table, latency_summary, run_clients, write_report
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.v1 import events_pb2, events_pb2_grpc

PHASES = (  # (batch size, concurrent clients)
    (1, 1),
    (1, 8),
    (100, 1),
    (100, 4),
)


def _event(user: int) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=uuid.uuid4().hex,
        type=events_pb2.EVENT_TYPE_VIEW,
        user_id=f"u{user % 5000}",
        garment_id=f"g{user % 2000}",
    )  # no labels: the server derives experiment and variant from the assignment


def _phase(address: str, batch: int, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stored = [0] * clients
    errors = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(slot: int) -> None:
        channel = connect(address)
        stub = events_pb2_grpc.EventsServiceStub(channel)
        n = 0
        while time.monotonic() < stop_at:
            request = events_pb2.RecordRequest(events=[_event(n + i) for i in range(batch)])
            n += batch
            started = time.perf_counter()
            try:
                reply = stub.Record(request, timeout=10)
            except Exception:
                errors[slot] += 1
                continue
            latencies[slot].append(time.perf_counter() - started)
            stored[slot] += reply.stored
        channel.close()

    elapsed = run_clients(client, clients)
    all_latencies = [x for per in latencies for x in per]
    return {
        "batch": batch,
        "clients": clients,
        "calls": len(all_latencies),
        "errors": sum(errors),
        "events_per_s": sum(stored) / elapsed,
        **latency_summary(all_latencies),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store-url", help="event store to benchmark (default: SQLite in a temp dir)"
    )
    where.add_argument(
        "--postgres", action="store_true",
        help="a throwaway local PostgreSQL (fsync on, as in production) started for the run",
    )  # fmt: skip


def _measure(store_url: str | None, tmp: Path, seconds: float) -> list[dict[str, Any]]:
    config = ephemeral(DrapeConfig(data_dir=tmp))
    if store_url:
        config.events.store_url = store_url
    with Stack(config, services=["events"], run_dir=tmp / "run") as stack:
        address = stack.address("events")
        _phase(address, 10, 1, 0.5)  # warm-up: connections, pages
        return [_phase(address, b, c, seconds) for b, c in PHASES]


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="drape-bench-") as tmp:
        if args.postgres:
            from drape.cli.local_postgres import local_postgres, postgres_bin

            bindir = postgres_bin()
            if bindir is None:
                print(
                    "drape bench events: PostgreSQL is not installed (scripts/install.sh installs it)"
                )
                return 2
            with local_postgres(bindir) as url:
                rows = _measure(url, Path(tmp), args.seconds)
            store = "postgresql (local, fsync on, synchronous_commit on)"
        else:
            rows = _measure(args.store_url, Path(tmp), args.seconds)
            store = (
                args.store_url.split("://")[0]
                if args.store_url
                else "sqlite (WAL, synchronous=FULL)"
            )
    print(f"events service, store: {store}, {args.seconds:.0f} s per phase")
    print(
        format_table(
            rows, ["batch", "clients", "calls", "errors", "events_per_s", "p50_ms", "p99_ms"]
        )
    )
    out = write_report(
        "events", rows, args.out, {"store": store, "seconds_per_phase": args.seconds}
    )
    print(f"wrote {out}")
    return 0
