"""Generated hostile messages on every RPC of every service, through the real servers (a
small count here; `drape bench fuzz --per-rpc N` for the figures): no INTERNAL, UNKNOWN or
UNIMPLEMENTED answer, no call past its deadline, every service still serving, and no leak
of open files or threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drape.cli.bench.fuzz import fuzz, rpcs
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.catalog import write_generated_feed

pytest.importorskip("hypothesis")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.5
    feed = write_generated_feed(16, root / "feed", seed=7)
    running = Stack(config, run_dir=root / "run").start(timeout=180)
    try:
        running.ingest(feed)
        yield running, feed
    finally:
        running.stop()


def test_no_rpc_fails_hangs_or_leaks_on_hostile_input(stack):
    running, feed = stack
    garments = [line.split(",", 1)[0] for line in feed.read_text().splitlines()[1:]]
    report = fuzz(
        running, per_rpc=10, seed=0, hints={"garment_id": garments, "user_id": ["u1", "u2"]}
    )
    rows = {row["rpc"]: row for row in report["rpcs"]}
    assert len(rows) == len(rpcs()) == 12
    failures = {rpc: row["failure"] for rpc, row in rows.items() if row["failure"]}
    assert not failures, failures
    assert all(row["cases"] >= 10 for row in rows.values()), rows
    # Hostile input is mostly refused, and some of it still gets through to a real answer.
    assert (
        sum(row["refused"] for row in rows.values()) > 0
        and sum(row["ok"] for row in rows.values()) > 0
    )
    assert set(report["serving"].values()) == {"SERVING"}, report["serving"]
    for name, usage in report["processes"].items():
        before, after = usage["before"], usage["after"]
        assert after["fds"] <= before["fds"] + 16 and after["threads"] <= before["threads"] + 16, (
            name,
            usage,
        )
