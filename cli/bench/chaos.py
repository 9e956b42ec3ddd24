"""`drape bench chaos`: the whole stack (events on PostgreSQL) under a steady storefront load
while each dependency in turn is killed with SIGKILL, kept down, and restarted: features,
tryon, splice, Triton, one recommend worker, all of recommend, events, PostgreSQL.

Per outage: what the storefront saw (Recommend answered, previews shown, Track stored, by
status), whether any call ran past its deadline, how long after the restart the affected
calls worked again, and whether any other service restarted. Expected: Recommend keeps
answering (previews marked) while features, tryon, splice or Triton are down; Track fails
loudly and retryably (UNAVAILABLE), never silently, while events or PostgreSQL is down;
recovery within 5 s of the restart; no other service restarted.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from drape.cli.bench import Background, format_table, storefront_stack, write_report

OUTAGES = (
    "features",
    "tryon",
    "splice",
    "triton",
    "recommend-worker",
    "recommend",
    "events",
    "postgres",
)
DEADLINE_S = 3.0
# Which calls an outage may fail, and which must go on.
DEGRADED_ONLY = {"features", "tryon", "splice", "triton", "recommend-worker"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--down-s", type=float, default=5.0, help="how long each dependency stays down"
    )
    parser.add_argument("--rate", type=float, default=8.0, help="storefront calls per second")
    parser.add_argument(
        "--outages", default=",".join(OUTAGES), help=f"comma-separated: {', '.join(OUTAGES)}"
    )


class Load(Background):
    """A steady storefront load in the background; every call's time, kind and outcome."""

    def __init__(self, front, rate: float, clients: int = 8) -> None:
        super().__init__(self._loop, clients, join_s=DEADLINE_S + 10)
        self.front, self.rate, self.clients = front, rate, clients
        self.records: list[tuple[float, str, str, float]] = []  # (sent at, kind, outcome, latency)
        self._lock = threading.Lock()

    def _loop(self, slot: int) -> None:
        period = self.clients / self.rate
        while not self.stopping.is_set():
            kind = self.front.kind()
            sent = time.monotonic()
            outcome = self.front.call(kind, deadline_s=DEADLINE_S)
            with self._lock:
                self.records.append((sent, kind, outcome, time.monotonic() - sent))
            self.stopping.wait(max(0.0, period - (time.monotonic() - sent)))

    def between(self, start: float, end: float) -> list[tuple[float, str, str, float]]:
        with self._lock:
            return [r for r in self.records if start <= r[0] < end]


def _recommend_worker(stack) -> int | None:
    supervisor = stack.endpoints["recommend"].pid
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == supervisor:
                    return int(proc.name)
            except (OSError, ValueError, IndexError):
                continue
    return None


def _works(front, outage: str) -> bool:
    """Whether the calls an outage broke work again."""
    if outage in ("events", "postgres"):
        return front.call("track", deadline_s=DEADLINE_S) == "OK"
    if outage in ("features", "tryon", "splice", "triton"):
        return front.call("previews", deadline_s=10.0) == "OK"  # answered, and previews shown
    return front.call("recommend", deadline_s=DEADLINE_S) == "OK"


def outage(stack, postgres, load: Load, name: str, down_s: float) -> dict[str, Any]:
    """One dependency killed, kept down ``down_s``, restarted; what the storefront saw."""
    others = {
        n: e.pid
        for n, e in stack.endpoints.items()
        if n not in (name, "triton" if name == "triton" else "")
    }
    if name == "recommend-worker":
        others.pop("recommend", None)
    killed_at = time.monotonic()
    if name == "postgres":
        postgres.kill()
    elif name == "recommend-worker":
        worker = _recommend_worker(stack)
        if worker is not None:
            os.kill(worker, signal.SIGKILL)
    else:
        stack.kill(name)
    time.sleep(down_s)
    restart_at = time.monotonic()
    if name == "postgres":
        postgres.start()
    elif name != "recommend-worker":  # its supervisor starts another by itself
        stack.restart(name, timeout=180)
    restarted = time.monotonic()
    recovered = None
    while time.monotonic() - restarted < 60:
        # Recovered once a call sent then works: when it was sent, not when it came back (a
        # previews call takes a second or more on a busy machine, outage or not).
        probe = time.monotonic()
        if _works(load.front, name):
            recovered = probe - restarted
            break
        time.sleep(0.1)
    during = load.between(killed_at, restart_at)
    by_kind = {
        kind: Counter(out for _, k, out, _ in during if k == kind)
        for kind in ("recommend", "previews", "track")
    }
    late = sum(1 for _, _, _, latency in during if latency > DEADLINE_S + 1.0)
    restarted_others = sorted(n for n, pid in others.items() if stack.endpoints[n].pid != pid)

    def share(kind: str, answered: tuple[str, ...] = ("OK",)) -> str:
        counts = by_kind[kind]
        total = sum(counts.values())
        return f"{sum(counts.get(a, 0) for a in answered)}/{total}" if total else "-"

    failing_track = {code for code in by_kind["track"] if code != "OK"}
    expected = (
        (name not in DEGRADED_ONLY or all(set(by_kind[k]) <= {"OK", "MARKED"} for k in ("recommend", "previews")))
        and (name not in ("events", "postgres") or failing_track <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"})
        and late == 0 and recovered is not None and recovered <= 5.0 and not restarted_others
    )  # fmt: skip
    return {"outage": name, "down_s": round(restart_at - killed_at, 1), "recommend_ok": share("recommend"),
            "previews_answered": share("previews", ("OK", "MARKED")), "previews_shown": share("previews"),
            "track_ok": share("track"),
            "errors": dict(sum((Counter({f"{k}:{c}": n for c, n in v.items() if c not in ("OK", "MARKED")})
                                for k, v in by_kind.items()), Counter())),
            "past_deadline": late, "restart_s": round(restarted - restart_at, 1),
            "recovery_s": round(recovered, 1) if recovered is not None else None,
            "others_restarted": restarted_others, "as_expected": expected}  # fmt: skip


def chaos(
    stack, postgres, front, outages: list[str], down_s: float, rate: float
) -> list[dict[str, Any]]:
    rows = []
    with Load(front, rate) as load:
        time.sleep(3)  # the load settles
        for name in outages:
            rows.append(outage(stack, postgres, load, name, down_s))
            time.sleep(2)
    return rows


def run(args: argparse.Namespace) -> int:
    from drape.cli.bench.soak import Storefront
    from drape.cli.local_postgres import LocalPostgres, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        print("drape bench chaos: PostgreSQL is not installed (scripts/install.sh installs it)")
        return 2
    outages = [o.strip() for o in args.outages.split(",") if o.strip()]
    postgres = LocalPostgres(bindir).start()
    try:
        with tempfile.TemporaryDirectory(prefix="drape-chaos-") as tmp, \
                storefront_stack(Path(tmp), 24, seed=1, store_url=postgres.url) as (stack, garments):  # fmt: skip
            front = Storefront(
                stack.address("gateway"), garments, unique_photos=True
            )  # no cached previews
            rows = chaos(stack, postgres, front, outages, args.down_s, args.rate)
    finally:
        postgres.stop()
    print(f"each dependency killed for {args.down_s:g} s under {args.rate:g} storefront calls/s "
          f"(deadline {DEADLINE_S:g} s); OK/calls during the outage")  # fmt: skip
    print(format_table(rows, ["outage", "recommend_ok", "previews_answered", "previews_shown", "track_ok",
                              "past_deadline", "restart_s", "recovery_s", "as_expected"]))  # fmt: skip
    for row in rows:
        print(f"  {row['outage']}: errors {row['errors'] or 'none'}; other services restarted: "
              f"{row['others_restarted'] or 'none'}")  # fmt: skip
    out = write_report(
        "chaos",
        rows,
        args.out,
        {"down_s": args.down_s, "rate": args.rate, "deadline_s": DEADLINE_S},
    )
    print(f"wrote {out}")
    return 0 if all(r["as_expected"] for r in rows) else 1
