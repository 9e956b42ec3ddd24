"""`drape bench NAME`: benchmarks print a table and write JSON (never timed test assertions).

Each benchmark is a module here with ``run(args)`` and, when it takes flags of its own,
``add_arguments(parser)``; every one takes ``--out`` and ``--seconds``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# name: (module, what it measures)
BENCHMARKS = {
    "events": ("events", "acknowledged events/s and Record latency of the events service"),
    "recommend": ("recommend", "training time and serving throughput at catalog scale"),
    "features": ("features", "encoder embeddings/s in-process vs through Triton"),
    "tryon": ("tryon", "try-on images/s in-process (torch) vs through Triton"),
    "tryon-gpu": ("tryon_gpu", "generator images/s on a CUDA GPU"),
    "previews": ("previews", "Recommend with 8 previews through the whole stack"),
    "report": ("report", "drape report experiment over ~10 million stored events"),
    "chaos": (
        "chaos",
        "each dependency killed and restarted under load: what the storefront saw, recovery",
    ),
    "soak": (
        "soak",
        "minutes of steady load at half capacity: errors, p99 drift, memory, files, threads",
    ),
    "kill": (
        "kill",
        "kill -9 inside train recsys, ingest, export models, train tryon: the last version stays",
    ),
    "fuzz": ("fuzz", "hostile generated messages on every RPC: no server error, no hang"),
    "scale": (
        "scale",
        "training, cold start, refresh with new events, memory and p99 at 1M-20M stored events",
    ),
    "crash": (
        "crash",
        "kill -9 of the events service under writers: every acknowledged event kept once",
    ),
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a benchmark; prints a table and writes JSON")
    benchmarks = bench.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, (module_name, description) in BENCHMARKS.items():
        parser = benchmarks.add_parser(name, help=description, description=description)
        parser.add_argument(
            "--out", type=Path, help=f"JSON output (default: bench-results/{name}.json)"
        )
        parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
        # Benchmarks import their heavy dependencies when they run, so importing them all to
        # read their flags is cheap.
        module = importlib.import_module(f"drape.cli.bench.{module_name}")
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
        parser.set_defaults(func=module.run)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of per-call latencies, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    if ms.size == 0:
        return {
            "p50_ms": float("nan"),
            "p90_ms": float("nan"),
            "p99_ms": float("nan"),
            "max_ms": float("nan"),
        }
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(ms.max()),
    }


def process_tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) that ``pid`` and its child processes have used so far
    (Linux ``/proc``; None elsewhere, or if ``pid`` is gone). Sampled before and after a
    load phase, it gives a service's CPU per request, workers included."""
    if not Path(f"/proc/{pid}/stat").exists():
        return None
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        # After the command name: state, ppid, ..., utime (12th), stime (13th).
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def resident_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A memory figure of process ``pid`` from Linux's ``/proc/PID/status``, in MB: VmRSS
    (resident now) or VmHWM (the most resident so far)."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def peak_resident_mb(pid: int | str = "self") -> float:
    """The most resident memory process ``pid`` has used so far, in MB (Linux's VmHWM)."""
    return resident_mb(pid, "VmHWM")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a service's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def run_clients(client: Callable[[int], None], clients: int) -> float:
    """Runs ``client(slot)`` for slots 0..clients-1 on as many threads at once; the seconds
    until the last one returned."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def timed_phase(
    name: str,
    call: Callable[[], int],
    batch: int,
    clients: int,
    seconds: float,
    rate: str = "items/s",
    warmup: int = 1,
) -> dict[str, Any]:
    """Runs ``call`` (returns items done) from ``clients`` threads for ``seconds``: one table
    row with the throughput (column ``rate``) and the per-call latencies. ``warmup`` untimed
    calls go first (first-call allocations, graph optimisation, kernel autotuning)."""
    for _ in range(warmup):
        call()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    done = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(slot: int) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            done[slot] += call()
            latencies[slot].append(time.perf_counter() - started)

    elapsed = run_clients(client, clients)
    flat = [x for per in latencies for x in per]
    return {
        "phase": name,
        "batch": batch,
        "clients": clients,
        rate: sum(done) / elapsed,
        **latency_summary(flat),
        "calls": len(flat),
    }


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        return f"{value:,.1f}" if isinstance(value, float) else str(value)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def write_report(
    name: str, rows: list[dict[str, Any]], out: Path | None, extra: dict[str, Any]
) -> Path:
    out = out or Path("bench-results") / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **extra,
        "results": rows,
    }
    out.write_text(json.dumps(report, indent=2))
    return out


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


class Background:
    """``count`` daemon threads, each running ``loop(slot)`` until ``stopping`` is set (at
    the end of the ``with`` block, which waits up to ``join_s`` for them)."""

    def __init__(self, loop: Callable[[int], None], count: int, join_s: float) -> None:
        self.stopping = threading.Event()
        self._join_s = join_s
        self._threads = [
            threading.Thread(target=loop, args=(i,), daemon=True) for i in range(count)
        ]

    def __enter__(self) -> Background:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(self._join_s)


@contextlib.contextmanager
def storefront_stack(root: Path, garments: int = 16, seed: int = 2,
                     store_url: str = "") -> Iterator[tuple[Any, list[str]]]:  # fmt: skip
    """The whole stack on loopback with a generated feed ingested (product shots and all),
    events in ``store_url`` (default SQLite under ``root``); yields it and the garment ids,
    and stops it after."""
    from drape.cli.stack import Stack, ephemeral
    from drape.services.runtime.config import DrapeConfig
    from drape.synthetic.catalog import write_generated_feed

    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.events.store_url = store_url
    feed = write_generated_feed(garments, root / "feed", seed=seed)
    stack = Stack(config, run_dir=root / "run").start(timeout=180)
    try:
        stack.ingest(feed)
        yield stack, [line.split(",", 1)[0] for line in feed.read_text().splitlines()[1:]]
    finally:
        stack.stop()
