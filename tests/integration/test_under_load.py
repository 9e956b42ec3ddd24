"""The whole stack under a storefront's load, the short versions of `drape bench soak`,
`drape bench fuzz` and `drape bench chaos`, on one stack (a generated feed ingested) started
for this module: the soak first, on a fresh stack; the fuzzing next; the outages last, as
they kill and restart services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drape.cli.bench import storefront_stack
from drape.cli.bench.chaos import chaos
from drape.cli.bench.fuzz import fuzz, rpcs
from drape.cli.bench.soak import Storefront, capacity, soak, usage


@pytest.fixture(scope="module")
def storefront(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    with storefront_stack(tmp_path_factory.mktemp("storefront"), seed=4) as running:
        yield running


def test_a_short_soak_has_no_error_and_measures_every_service(storefront):
    """A storefront's mix at a steady rate with no error, and each service's memory, open
    files and threads measured, worker processes included."""
    stack, garments = storefront
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


def test_no_rpc_fails_hangs_or_leaks_on_hostile_input(storefront):
    """Generated hostile messages on every RPC of every service, through the real servers:
    no INTERNAL, UNKNOWN or UNIMPLEMENTED answer, no call past its deadline, every service
    still serving, and no leak of open files or threads."""
    pytest.importorskip("hypothesis")
    running, garments = storefront
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
    for name, usage_of in report["processes"].items():
        before, after = usage_of["before"], usage_of["after"]
        assert after["fds"] <= before["fds"] + 16 and after["threads"] <= before["threads"] + 16, (
            name,
            usage_of,
        )


def test_outages_under_load_degrade_and_recover(storefront):
    """Dependencies killed under a storefront load: while tryon is down Recommend keeps
    answering with previews marked; while events is down Track fails loudly (UNAVAILABLE),
    never silently; each recovers within 5 s of its restart, no call runs past its deadline,
    and no other service restarts."""
    stack, garments = storefront
    front = Storefront(stack.address("gateway"), garments, unique_photos=True)  # no cached previews
    rows = chaos(stack, None, front, ["tryon", "events"], down_s=3.0, rate=8.0)
    by_outage = {row["outage"]: row for row in rows}
    tryon, events = by_outage["tryon"], by_outage["events"]
    assert tryon["recommend_ok"].split("/")[0] == tryon["recommend_ok"].split("/")[1], tryon
    assert not tryon["errors"], tryon  # answered throughout ...
    shown, answered = (
        tryon["previews_shown"].split("/")[0],
        tryon["previews_answered"].split("/")[0],
    )
    assert int(answered) >= 1 and shown == "0", tryon  # ... with the previews marked as not shown
    assert events["errors"] and set(events["errors"]) <= {
        "track:UNAVAILABLE",
        "track:DEADLINE_EXCEEDED",
    }, events
    for row in rows:
        seen = ", ".join(f"{k}={v}" for k, v in row.items())  # all of it, untruncated
        assert row["past_deadline"] == 0, seen
        assert row["recovery_s"] is not None and row["recovery_s"] <= 5.0, seen
        assert not row["others_restarted"], seen
        assert row["as_expected"], seen
