"""Dependencies killed under a storefront load (a short version of `drape bench chaos`):
while tryon is down Recommend keeps answering with previews marked; while events is down
Track fails loudly (UNAVAILABLE), never silently; each recovers within 5 s of its restart,
no call runs past its deadline, and no other service restarts."""

from __future__ import annotations

from pathlib import Path

from drape.cli.bench import storefront_stack
from drape.cli.bench.chaos import chaos
from drape.cli.bench.soak import Storefront


def test_outages_under_load_degrade_and_recover(tmp_path: Path):
    with storefront_stack(tmp_path, seed=4) as (stack, garments):
        front = Storefront(
            stack.address("gateway"), garments, unique_photos=True
        )  # no cached previews
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
