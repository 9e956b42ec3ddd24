"""`drape bench crash`: the events service killed with SIGKILL again and again under
concurrent writers, on SQLite and on PostgreSQL, and then every event it acknowledged looked
for: each must be stored exactly once.

Writers send batches of new events; a batch that is not acknowledged (the service is down,
or died mid-call) is sent again, as a storefront retries, until it is. Between kills the
service runs a random 0.3-1.2 s, so kills land at random points of writes and commits.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from drape.cli.bench import Background, format_table, write_report
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.v1 import events_pb2, events_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cycles", type=int, default=20, help="kill -9 and restart cycles per store"
    )
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers")
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--seed", type=int, default=0)


class _Writers(Background):
    """Writer threads that retry each batch until it is acknowledged; what was acknowledged."""

    def __init__(self, address: str, count: int, batch: int = 5) -> None:
        super().__init__(self._write, count, join_s=60)
        self.address, self.batch = address, batch
        self.acknowledged: list[str] = []
        self.retries = 0
        self._lock = threading.Lock()

    def _write(self, slot: int) -> None:
        stub = events_pb2_grpc.EventsServiceStub(connect(self.address))
        while not self.stopping.is_set():
            batch = [events_pb2.Event(event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_VIEW,
                                      user_id=f"u{slot}", garment_id="g1") for _ in range(self.batch)]  # fmt: skip
            # Until acknowledged (bounded: a writer still retrying at the stop is not counted).
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    reply = stub.Record(events_pb2.RecordRequest(events=batch), timeout=2)
                except grpc.RpcError:
                    with self._lock:
                        self.retries += 1
                    time.sleep(0.02)
                    if self.stopping.is_set():
                        return
                    continue
                if reply.stored + reply.duplicates == len(batch):
                    with self._lock:
                        self.acknowledged.extend(e.event_id for e in batch)
                break


def crash_cycles(
    config: DrapeConfig, run_dir: Path, cycles: int, writers: int, seed: int
) -> dict[str, Any]:
    """Runs the cycles on ``config``'s event store; the figures and what was lost."""
    rng = random.Random(seed)
    restarts = []
    with Stack(config, services=["events"], run_dir=run_dir) as stack:
        with _Writers(stack.address("events"), writers) as load:
            time.sleep(0.5)
            for _ in range(cycles):
                time.sleep(rng.uniform(0.3, 1.2))
                stack.kill("events")
                started = time.perf_counter()
                stack.restart("events")
                restarts.append(time.perf_counter() - started)
            time.sleep(0.5)
        acknowledged = list(load.acknowledged)
        retries = load.retries
    from drape.services.events.store import open_event_store

    store = open_event_store(config.events_store_url())
    try:
        counts = dict(store.query("SELECT event_id, count(*) FROM events GROUP BY event_id"))
    finally:
        store.close()
    return {
        "cycles": cycles,
        "writers": writers,
        "acknowledged": len(acknowledged),
        "retried_calls": retries,
        "lost": sum(1 for e in acknowledged if e not in counts),
        "duplicated": sum(1 for e in acknowledged if counts.get(e, 0) > 1),
        "restart_s_mean": round(sum(restarts) / max(len(restarts), 1), 2),
        "restart_s_max": round(max(restarts, default=0.0), 2),
    }


def run(args: argparse.Namespace) -> int:
    rows = []
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="drape-crash-") as tmp:
        for name in stores:
            config = ephemeral(DrapeConfig(data_dir=Path(tmp) / name))
            config.events.server.grace_s = 1
            if name == "postgres":
                from drape.cli.local_postgres import local_postgres, postgres_bin

                bindir = postgres_bin()
                if bindir is None:
                    print("drape bench crash: PostgreSQL is not installed; skipping it")
                    continue
                with local_postgres(bindir) as url:
                    config.events.store_url = url
                    rows.append({"store": "postgresql", **crash_cycles(config, Path(tmp) / "run-pg", args.cycles,
                                                                        args.writers, args.seed)})  # fmt: skip
            else:
                rows.append({"store": "sqlite", **crash_cycles(config, Path(tmp) / "run-sqlite", args.cycles,
                                                                args.writers, args.seed)})  # fmt: skip
    print(
        f"events service killed with SIGKILL under {args.writers} writers, {args.cycles} times per store"
    )
    print(format_table(rows, ["store", "cycles", "acknowledged", "retried_calls", "lost", "duplicated",
                              "restart_s_mean", "restart_s_max"]))  # fmt: skip
    out = write_report("crash", rows, args.out, {"cycles": args.cycles, "writers": args.writers})
    print(f"wrote {out}")
    return 1 if any(r["lost"] or r["duplicated"] for r in rows) else 0
