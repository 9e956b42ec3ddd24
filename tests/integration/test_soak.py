"""A short soak of the whole stack (`drape bench soak --minutes M` for the figures): a
storefront's mix at a steady rate with no error, and each service's memory, open files and
threads measured, worker processes included."""

from __future__ import annotations

from pathlib import Path

from drape.cli.bench.soak import Storefront, soak, usage
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.catalog import write_generated_feed


def test_a_short_soak_has_no_error_and_measures_every_service(tmp_path: Path):
    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    feed = write_generated_feed(16, tmp_path / "feed", seed=2)
    stack = Stack(config, run_dir=tmp_path / "run").start(timeout=180)
    try:
        stack.ingest(feed)
        garments = [line.split(",", 1)[0] for line in feed.read_text().splitlines()[1:]]
        pids = {name: e.pid for name, e in stack.endpoints.items()}
        report = soak(Storefront(stack.address("gateway"), garments), pids, rate=6, minutes=0.25, warmup_s=4,
                      bucket_s=5)  # fmt: skip
        # recommend runs worker processes: their threads are counted with the supervisor's.
        assert usage(stack.endpoints["recommend"].pid)["threads"] > 4
    finally:
        stack.stop()
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
