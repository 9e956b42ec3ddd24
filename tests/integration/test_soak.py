"""A short soak of the whole stack (`drape bench soak --minutes M` for the figures): a
storefront's mix at a steady rate with no error, and each service's memory, open files and
threads measured, worker processes included."""

from __future__ import annotations

from pathlib import Path

from drape.cli.bench import storefront_stack
from drape.cli.bench.soak import Storefront, capacity, soak, usage


def test_a_short_soak_has_no_error_and_measures_every_service(tmp_path: Path):
    with storefront_stack(tmp_path) as (stack, garments):
        pids = {name: e.pid for name, e in stack.endpoints.items()}
        front = Storefront(stack.address("gateway"), garments)
        # The capacity probe sets the soak's default rate (once it read 0 calls/s).
        assert capacity(front, seconds=2, clients=2) > 0
        report = soak(front, pids, rate=6, minutes=0.25, warmup_s=4, bucket_s=5)
        # recommend runs worker processes: their threads are counted with the supervisor's.
        assert usage(stack.endpoints["recommend"].pid)["threads"] > 4
    assert not report["errors"], report["errors"]
    assert len(report["rows"]) == 3 and sum(r["calls"] for r in report["rows"]) >= 80
    assert set(report["processes"]) >= {
        "gateway",
        "recommend",
        "features",
        "tryon",
        "splice",
        "events",
    }
    assert all(p["rss_mb"][0] > 0 for p in report["processes"].values())
