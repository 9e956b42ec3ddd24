"""`drape bench scale`: how each cost grows with the stored event log.

For each log size (``--sizes``, events) it stores a generated log (100k garments by
default, one shopper per 20 events, skewed activity and popularity, six months of events in
time order) in a fresh event store and measures:

- training: `drape train recsys` (blend tuning on, as by default) in a process of its own,
  its time and peak resident memory;
- the recommend state in a process of its own: the full read at start (time, memory; the
  base it builds and its ALS item index are saved for the pod's other workers), then
  refreshes that each find ``--new-events`` new events (time of each, memory after, the
  size on disk of what the pod saved: the base and the index); then a second state, as a
  worker started later: it maps the saved base, loads the index and reads on from the base
  (the time of that read and of the whole start; peak, PSS);
- the recommend service (its configured workers): time from start to serving, the most
  memory the pod held while it started (one worker reads the whole log, the others wait
  for what it saves; sampled every quarter second), each worker's peak resident memory,
  resident memory per worker, the pod's memory once serving (proportional: pages its
  processes share, like the mapped trained factors and the shared base, count once), and
  Recommend latency with 8 concurrent clients;
- ingestion into the full store: acknowledged (committed) events per second, 4 writers
  appending batches of 100;
- retention: compacting the older half of the log (events over 90 days old) into
  aggregates, and how many of those events went with whole partitions (PostgreSQL).

``--postgres`` runs the same on a local PostgreSQL server (fsync on) instead of SQLite.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from drape.cli.bench import children, format_table, peak_resident_mb, resident_mb, write_report

US_PER_DAY = 86_400 * 1_000_000
TYPES = ("view", "tryon_view", "add_to_cart", "purchase")
TYPE_SHARES = (0.70, 0.10, 0.12, 0.08)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1000000,5000000,20000000",
                        help="comma-separated numbers of stored events")  # fmt: skip
    parser.add_argument("--garments", type=int, default=100_000, help="catalog size")
    parser.add_argument("--events-per-user", type=int, default=20, help="shoppers = events / this")
    parser.add_argument("--new-events", type=int, default=10_000,
                        help="events stored before each measured refresh")  # fmt: skip
    parser.add_argument("--refreshes", type=int, default=3, help="measured refreshes per size")
    parser.add_argument("--no-tune", action="store_true", help="train without blend tuning")
    parser.add_argument("--postgres", action="store_true",
                        help="a local PostgreSQL server (initdb from the OS packages) instead of SQLite")  # fmt: skip


def generated_events(
    n: int,
    n_users: int,
    garment_ids: np.ndarray,
    span_us: tuple[int, int],
    seed: int,
    first_id: int = 0,
) -> list[tuple[object, ...]]:
    """``n`` event rows of the store (its column order), in time order within ``span_us``:
    shoppers' activity and garments' popularity both skewed (power laws)."""
    rng = np.random.default_rng(seed)
    user_p = 1.0 / (np.arange(n_users) + 10.0) ** 0.8
    garment_p = 1.0 / (np.arange(len(garment_ids)) + 50.0)
    users = rng.permutation(n_users)[rng.choice(n_users, n, p=user_p / user_p.sum())]
    garments = rng.permutation(garment_ids)[
        rng.choice(len(garment_ids), n, p=garment_p / garment_p.sum())
    ]
    types = np.asarray(TYPES, dtype=object)[rng.choice(len(TYPES), n, p=TYPE_SHARES)]
    times = np.sort(rng.integers(*span_us, n))
    return [
        (f"s{first_id + i:011d}", t, f"u{u:08d}", g, at, at, "", "", 0, "", 0)
        for i, (t, u, g, at) in enumerate(
            zip(types.tolist(), users.tolist(), garments.tolist(), times.tolist(), strict=True)
        )
    ]


def _fill(path: Path, n: int, n_users: int, garment_ids: np.ndarray, end_us: int) -> None:
    """Stores ``n`` generated events over the 180 days before ``end_us`` in a new SQLite
    event store, a million at a time."""
    from drape.services.events.store import COLUMNS, SqliteEventStore

    SqliteEventStore(path).close()  # the schema
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    for rows in _parts(n, n_users, garment_ids, end_us):
        db.executemany(insert, rows)
        db.commit()
    db.close()


def _parts(
    n: int, n_users: int, garment_ids: np.ndarray, end_us: int
) -> Iterator[list[tuple[object, ...]]]:
    """The generated log a million rows at a time, each part a slice of the 180 days."""
    begin = end_us - 180 * US_PER_DAY
    for part, start in enumerate(range(0, n, 1_000_000)):
        count = min(1_000_000, n - start)
        span = (
            begin + (end_us - begin) * start // n,
            begin + (end_us - begin) * (start + count) // n,
        )
        yield generated_events(count, n_users, garment_ids, span, seed=part, first_id=start)


def _fill_postgres(url: str, n: int, n_users: int, garment_ids: np.ndarray, end_us: int) -> None:
    """The same log in PostgreSQL, through COPY (its weekly partitions made first)."""
    import psycopg

    from drape.services.events.partitions import PERIOD_US
    from drape.services.events.store import COLUMNS, PostgresEventStore

    store = PostgresEventStore(url)  # the schema
    store.partitions.ensure(range(end_us - 180 * US_PER_DAY, end_us + PERIOD_US, PERIOD_US))
    store.close()
    when = COLUMNS.index("occurred_at_us")
    with psycopg.connect(url) as conn:
        for rows in _parts(n, n_users, garment_ids, end_us):
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                with cursor.copy("COPY event_ids (event_id, occurred_at_us) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row((row[0], row[when]))
            conn.commit()
        conn.execute("ANALYZE events")
        conn.execute("ANALYZE event_ids")


def _ingest(url: str, garments: np.ndarray, n_users: int, seconds: float) -> float:
    """Acknowledged events per second: 4 writers, batches of 100, into the full store."""
    import threading

    from drape.services.events.store import StoredEvent, open_event_store

    store = open_event_store(url)
    done = [0] * 4
    stop_at = time.monotonic() + seconds

    def writer(slot: int) -> None:
        rng = np.random.default_rng(slot)
        first = 2 * 10**10 + slot * 10**9
        while time.monotonic() < stop_at:
            now_us = int(time.time() * 1e6)
            users, picks = rng.integers(0, n_users, 100), rng.integers(0, len(garments), 100)
            batch = [StoredEvent(f"s{first + i:011d}", "view", f"u{u:08d}", str(garments[g]),
                                 now_us, now_us, "", "", 0, "", 0)
                     for i, (u, g) in enumerate(zip(users.tolist(), picks.tolist(), strict=True))]  # fmt: skip
            first += 100
            done[slot] += sum(store.append(batch))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    store.close()
    return sum(done) / elapsed


def _compact(url: str, before_us: int) -> dict[str, Any]:
    """Retention of the events older than ``before_us`` (no archive): its time, how many
    events, and how many of them went with whole partitions (PostgreSQL)."""
    from drape.services.events.store import open_event_store

    store = open_event_store(url)
    try:
        started = time.perf_counter()
        done = store.compact(before_us, 14.0)
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return {"compact_s": elapsed, "compacted": done.events, "dropped": done.dropped}


def _pss_mb(pid: int) -> float:
    """Proportional resident memory: pages shared with other processes (the mapped trained
    factors) count in part, so the sum over a pod's processes is what the pod uses."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        line = next(line for line in rollup if line.startswith("Pss:"))
    return int(line.split()[1]) / 1024


def _train(config: Any, tune: bool, out: Any) -> None:
    from drape.cli.train.recsys import train_recsys
    from drape.recsys import artifacts

    started = time.perf_counter()
    version = train_recsys(config, tune=tune, quiet=True)
    stages = artifacts.manifest(config.recsys_artifacts(), version)["seconds"]
    out.put({"train_s": time.perf_counter() - started, "train_peak_mb": peak_resident_mb(),
             "train_stages_s": {k: round(v, 3) for k, v in stages.items()}})  # fmt: skip


def _refreshes(config: Any, n_users: int, garments: np.ndarray, args: Any, out: Any) -> None:
    """The recommend state alone: its full read, then refreshes after new events."""
    from drape.services.events.store import StoredEvent

    store, state = _pod_worker(config)
    result: dict[str, Any] = {"full_read_s": _refresh_s(state),
                              "state_mb": resident_mb(), "state_peak_mb": peak_resident_mb()}  # fmt: skip
    seconds = []
    first_id = 10**10
    for i in range(args.refreshes):
        # A tenth of the new events from shoppers never seen before.
        now_us = int(time.time() * 1e6)
        rows = generated_events(args.new_events, n_users + n_users // 10, garments,
                                (now_us - 60_000_000, now_us), seed=1000 + i, first_id=first_id)  # fmt: skip
        first_id += args.new_events
        store.append([StoredEvent(*row) for row in rows])
        seconds.append(_refresh_s(state))
    saved = sum(f.stat().st_size for f in (config.data_dir / "pod").rglob("*") if f.is_file())
    result |= {"refresh_median_ms": 1e3 * statistics.median(seconds),
               "refresh_max_ms": 1e3 * max(seconds),
               "state_after_mb": resident_mb(), "saved_base_mb": saved / 2**20}  # fmt: skip
    store.close()
    out.put(result)


def _pod_worker(config: Any) -> tuple[Any, Any]:
    """An event store and a recommend state as one of a pod's workers holds them."""
    from drape.services.events.store import open_event_store
    from drape.services.recommend.shared import SharedBases
    from drape.services.recommend.state import RecommendState

    store = open_event_store(config.events_store_url())
    state = RecommendState(config.catalog_path(), store, config.recommend,
                           config.recsys_artifacts(), shared=SharedBases(config.data_dir / "pod"))  # fmt: skip
    return store, state


def _refresh_s(state: Any) -> float:
    started = time.perf_counter()
    if not state.refresh():
        raise RuntimeError(state.last_error)
    return time.perf_counter() - started


def _mapped_start(config: Any, out: Any) -> None:
    """A worker started after :func:`_refreshes`: it maps the base that one saved and reads
    the events stored since."""
    store, state = _pod_worker(config)
    start_s = _refresh_s(state)
    read = state.refresh_seconds.labels("shared")._sum.get()  # the log's part of the start
    out.put({"mapped_start_s": start_s, "mapped_read_s": read,
             "mapped_peak_mb": peak_resident_mb(), "mapped_pss_mb": _pss_mb(os.getpid())})  # fmt: skip
    store.close()


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(*args, queue))
    process.start()
    try:
        return queue.get(timeout=3 * 3600)
    finally:
        process.join(60)


def _pod_pss_mb(pid: int) -> float:
    """The proportional memory of ``pid`` and its children, summed: a pod's, counted once."""
    total = 0.0
    for process in (pid, *children(pid)):
        try:
            total += _pss_mb(process)
        except (OSError, StopIteration):  # it ended, or is starting, as we looked
            continue
    return total


def _watch_start(stack: Any, name: str, stop: threading.Event, peak: list[float]) -> None:
    """Keeps in ``peak[0]`` the most memory ``name``'s pod held, until ``stop``."""
    while not stop.wait(0.25):
        try:
            pid = stack.process(name).pid
        except KeyError:  # not spawned yet
            continue
        peak[0] = max(peak[0], _pod_pss_mb(pid))


def _serve(config: Any, users: list[str], seconds: float) -> dict[str, Any]:
    from drape.cli.bench.recommend import _grpc_load
    from drape.cli.stack import Stack

    started = time.perf_counter()
    stack = Stack(config, services=["events", "recommend"], run_dir=config.data_dir / "run")
    stop, start_peak = threading.Event(), [0.0]
    watch = threading.Thread(target=_watch_start, args=(stack, "recommend", stop, start_peak),
                             daemon=True)  # fmt: skip
    watch.start()
    try:
        # One worker reads the whole log at start (minutes at tens of millions of events);
        # the others map what it saved.
        try:
            stack.start(timeout=1800)
        finally:
            stop.set()
            watch.join()
        serving_s = time.perf_counter() - started
        address, pid = stack.address("recommend"), stack.process("recommend").pid
        _grpc_load(address, users, 2, 2.0)  # warm-up
        load = _grpc_load(address, users, 8, seconds, pid)
        workers = children(pid)
        worker_rss = max((resident_mb(w) for w in workers), default=float("nan"))
        peaks = [peak_resident_mb(w) for w in workers]
        pod = _pod_pss_mb(pid)
    finally:
        stack.stop()
    return {"stack_start_s": serving_s, "pod_start_peak_mb": start_peak[0],
            "worker_rss_mb": worker_rss, "pod_pss_mb": pod,
            "worker_peaks_mb": "/".join(f"{p:.0f}" for p in sorted(peaks, reverse=True)),
            "workers": len(workers),
            "qps_8": load["qps"], "p99_8_ms": load["p99_ms"], "errors": load["errors"]}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from drape.cli.stack import ephemeral
    from drape.services.runtime.config import DrapeConfig
    from drape.synthetic.catalog import generate_catalog

    sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    catalog = generate_catalog(args.garments, seed=1)
    garments = np.asarray(catalog.ids, dtype=object)
    rows = []
    postgres = None
    if args.postgres:
        from drape.cli.local_postgres import LocalPostgres, postgres_bin

        bindir = postgres_bin()
        if bindir is None:
            print("drape bench scale: PostgreSQL is not installed (scripts/install.sh installs it)")
            return 2
    for n in sizes:
        n_users = max(n // args.events_per_user, 100)
        if args.postgres:
            postgres = LocalPostgres(bindir, "-c fsync=on -c shared_buffers=512MB").start()
        with tempfile.TemporaryDirectory(prefix="drape-bench-scale-") as tmp:
            config = ephemeral(DrapeConfig(data_dir=Path(tmp)))
            if postgres is not None:
                config.events.store_url = postgres.url
            config.recommend.refresh_s = 3600.0  # refreshes only where measured
            exp = Path(tmp) / "exp.yaml"
            exp.write_text(
                "name: bench\nsalt: b\nvariants:\n  - {name: hybrid, share: 1, strategy: hybrid}\n"
            )
            config.recommend.experiments_path = str(exp)
            catalog.save(config.catalog_path())
            started = time.perf_counter()
            end_us = int(time.time() * 1e6) - 3_600_000_000
            if postgres is not None:
                _fill_postgres(postgres.url, n, n_users, garments, end_us)
            else:
                _fill(Path(config.events_store_url().removeprefix("sqlite:///")), n, n_users,
                      garments, end_us)  # fmt: skip
            row: dict[str, Any] = {"events": n, "users": n_users,
                                   "store_s": time.perf_counter() - started}  # fmt: skip
            print(f"{n:,} events stored in {row['store_s']:.0f} s", flush=True)
            row |= _in_child(_train, config, not args.no_tune)
            print(
                f"  trained in {row['train_s']:.0f} s, peak {row['train_peak_mb']:.0f} MB "
                f"({', '.join(f'{k} {v:.1f} s' for k, v in row['train_stages_s'].items())})",
                flush=True,
            )
            row |= _in_child(_refreshes, config, n_users, garments, args)
            print(f"  refresh with {args.new_events:,} new events: {row['refresh_median_ms']:.0f} ms",
                  flush=True)  # fmt: skip
            row |= _in_child(_mapped_start, config)
            users = [f"u{u:08d}" for u in np.random.default_rng(0).integers(0, n_users, 5000)]
            row |= _serve(config, users, args.seconds)
            row["ingest_per_s"] = _ingest(
                config.events_store_url(), garments, n_users, args.seconds
            )
            row |= _compact(config.events_store_url(), end_us - 90 * US_PER_DAY)
            print(f"  compaction of the older half: {row['compact_s']:.1f} s, "
                  f"{row['compacted']:,} events ({row['dropped']:,} in dropped partitions)",
                  flush=True)  # fmt: skip
        if postgres is not None:
            postgres.stop()
        rows.append(row)
        print(format_table([row], list(row)), flush=True)
    columns = ["events", "users", "train_s", "train_peak_mb", "full_read_s", "state_mb",
               "refresh_median_ms", "refresh_max_ms", "state_after_mb", "saved_base_mb", "mapped_read_s",
               "mapped_start_s", "mapped_peak_mb", "mapped_pss_mb", "stack_start_s", "pod_start_peak_mb",
               "worker_peaks_mb", "worker_rss_mb", "pod_pss_mb", "p99_8_ms", "qps_8", "errors", "ingest_per_s",
               "compact_s", "compacted", "dropped"]  # fmt: skip
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"scale: {args.garments:,} garments, one shopper per {args.events_per_user} events, "
          f"refreshes after {args.new_events:,} new events each ({store})")  # fmt: skip
    print(format_table(rows, columns))
    out = write_report("scale", rows, args.out, {"garments": args.garments,
                       "new_events": args.new_events, "store": store.lower()})  # fmt: skip
    print(f"wrote {out}")
    return 0
