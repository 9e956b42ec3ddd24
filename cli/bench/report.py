"""`drape bench report`: how long `drape report experiment` takes over a large event store.

A generated experiment (known effects; users hashed into two arms) is written once into a
SQLite database (kept, with ``--db``, for later runs: generating ten million events takes
minutes), optionally copied into a throwaway PostgreSQL server, and the whole report (the
database queries, the statistics and the HTML page) is timed on each. Run it under
``taskset -c 0,1`` to measure on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from dataclasses import asdict, replace
from pathlib import Path

from drape.cli.bench import format_table, write_report

TABLES = ("events", "exposures", "exposure_arms", "exposure_items", "experiment_definitions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=450_000,
                        help="exposed users (450,000 make about 10 million events)")  # fmt: skip
    parser.add_argument("--db", type=Path, default=Path("bench-results/report-store.db"),
                        help="the SQLite store, generated when missing or of another size")  # fmt: skip
    parser.add_argument("--postgres", action="store_true",
                        help="also copy the store into a local PostgreSQL server and time it there")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per store")


def _store_spec(db: Path) -> dict | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (text,) = conn.execute("SELECT value FROM bench_spec").fetchone()
        return json.loads(text)
    except (sqlite3.Error, TypeError):
        return None


def _generate(db: Path, users: int) -> None:
    from drape.services.events.store import SqliteEventStore
    from drape.synthetic.experiment import GeneratedExperiment, store_experiment

    db.unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    spec = replace(GeneratedExperiment(), users=users, garments=5000)
    started = time.perf_counter()
    store = SqliteEventStore(db, synchronous="OFF")
    exposures, events = store_experiment(store, spec)
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE bench_spec (value TEXT)")
        conn.execute("INSERT INTO bench_spec VALUES (?)",
                     (json.dumps({"users": users, "events": events, "exposures": exposures,
                                  "start_us": spec.start_us, "days": spec.days}),))  # fmt: skip
    print(f"generated {events:,} events and {exposures:,} exposures in "
          f"{time.perf_counter() - started:.0f} s -> {db}")  # fmt: skip


def _copy_to_postgres(db: Path, url: str) -> None:
    import psycopg

    from drape.services.events.store import open_event_store

    open_event_store(url).close()  # the schema
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as source, psycopg.connect(url) as target:
        for table in TABLES:
            columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
            with target.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    copy.write_row(row)
        target.execute("ANALYZE")
        target.commit()


def _time_report(url: str, spec: dict, repeat: int, experiment: str) -> list[float]:
    from drape.recsys.report import DAY_US, ReportSettings, experiment_report
    from drape.recsys.report_html import render
    from drape.services.events.store import open_event_store

    settings = ReportSettings(experiment, spec["start_us"],
                              spec["start_us"] + (spec["days"] + 1) * DAY_US)  # fmt: skip
    seconds = []
    for _ in range(repeat):
        store = open_event_store(url)
        started = time.perf_counter()
        report = experiment_report(store, settings)
        render(report)
        seconds.append(time.perf_counter() - started)
        store.close()
    print(f"  {url.split('?')[0]}: {', '.join(f'{s:.1f} s' for s in seconds)} "
          f"({report['users']:,} users)")  # fmt: skip
    return seconds


def run(args: argparse.Namespace) -> int:
    from drape.synthetic.experiment import GeneratedExperiment

    spec = _store_spec(args.db)
    if spec is None or spec["users"] != args.users:
        _generate(args.db, args.users)
        spec = _store_spec(args.db)
    experiment = GeneratedExperiment().experiment.name
    cpus = len(os.sched_getaffinity(0))
    rows = []
    timings = {"sqlite": _time_report(f"sqlite:///{args.db}", spec, args.repeat, experiment)}
    if args.postgres:
        from drape.cli.local_postgres import local_postgres, postgres_bin

        bindir = postgres_bin()
        if bindir is None:
            print("drape bench report: PostgreSQL is not installed; skipping it")
        else:
            with local_postgres(
                bindir, "-c fsync=off -c shared_buffers=1GB -c work_mem=256MB"
            ) as url:
                started = time.perf_counter()
                _copy_to_postgres(args.db, url)
                print(f"copied into PostgreSQL in {time.perf_counter() - started:.0f} s")
                timings["postgresql"] = _time_report(url, spec, args.repeat, experiment)
    for backend, seconds in timings.items():
        rows.append({"store": backend, "events": f"{spec['events']:,}",
                     "exposures": f"{spec['exposures']:,}", "users": f"{spec['users']:,}",
                     "cores": cpus, "best_s": min(seconds), "runs_s": " ".join(f"{s:.1f}" for s in seconds),
                     "target": "<= 30 s" if backend == "sqlite" else ""})  # fmt: skip
    print(
        format_table(
            rows, ["store", "events", "exposures", "users", "cores", "best_s", "runs_s", "target"]
        )
    )
    out = write_report("report", rows, args.out, {"spec": spec, "timings": timings,
                                                  "generator": asdict(GeneratedExperiment())
                                                  | {"users": args.users}})  # fmt: skip
    print(f"wrote {out}")
    return 0
