"""Generated hostile messages on every RPC of every service, through the real servers (a
small count here; `drape bench fuzz --per-rpc N` for the figures): no INTERNAL, UNKNOWN or
UNIMPLEMENTED answer, no call past its deadline, every service still serving, and no leak
of open files or threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape.cli.bench import storefront_stack
from drape.cli.bench.fuzz import fuzz, rpcs

pytest.importorskip("hypothesis")


def test_no_rpc_fails_hangs_or_leaks_on_hostile_input(tmp_path: Path):
    with storefront_stack(tmp_path, seed=7) as (running, garments):
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
