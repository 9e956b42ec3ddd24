"""Retention: old events compacted into aggregates keep what the recommender computes from
the log; the archive holds exactly the events removed (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd

from drape.recsys.interactions import US_PER_DAY
from drape.recsys.live import LiveLog
from drape.services.events.retention import Archive
from drape.services.events.store import EventStore, StoredEvent
from drape.synthetic.catalog import generate_catalog

NOW = 1_800_000_000_000_000
WEIGHTS = {"view": 1.0, "add_to_cart": 4.0, "purchase": 8.0}
HALF_LIFE = 14.0


def _log(catalog, n: int = 3_000, seed: int = 2) -> list[StoredEvent]:
    rng = np.random.default_rng(seed)
    garments = np.asarray(catalog.ids)[rng.integers(0, 40, n)]
    users = rng.integers(0, 30, n)
    types = np.asarray(list(WEIGHTS))[rng.choice(3, n, p=[0.7, 0.2, 0.1])]
    times = np.sort(rng.integers(NOW - 300 * US_PER_DAY, NOW - US_PER_DAY, n))
    return [
        StoredEvent(f"e{i}", str(t), f"u{u}", str(g), int(at), int(at), "exp", "a", 0, "", 0)
        for i, (t, u, g, at) in enumerate(zip(types, users, garments, times, strict=True))
    ]


def _view(store: EventStore, catalog):
    events, _ = store.read_new(None)
    return LiveLog(catalog, events, WEIGHTS, HALF_LIFE, ("purchase",), NOW).snapshot(NOW)


def test_compaction_keeps_what_the_recommender_computes(event_store: EventStore, tmp_path):
    catalog = generate_catalog(60, seed=2)
    log = _log(catalog)
    event_store.append(log)
    before = _view(event_store, catalog)

    cut = NOW - 100 * US_PER_DAY
    old = {e.event_id for e in log if e.occurred_at_us < cut}
    archive = Archive(str(tmp_path / "archive"), cut)
    done = event_store.compact(cut, HALF_LIFE, archive)
    assert done.events == len(old) and event_store.count() == len(log) - len(old)
    archived = pd.read_parquet(done.archive)
    assert set(archived["event_id"]) == old and len(archived) == len(old)
    assert list(archived.columns)[:5] == [
        "event_id",
        "type",
        "user_id",
        "garment_id",
        "occurred_at_us",
    ]
    assert done.groups == len(event_store.read_aggregates()) < len(old)

    # A second compaction merges into the aggregates already kept.
    later = NOW - 50 * US_PER_DAY
    again = event_store.compact(later, HALF_LIFE, None)
    assert again.events == sum(1 for e in log if cut <= e.occurred_at_us < later)
    assert again.archive is None

    after = _view(event_store, catalog)
    np.testing.assert_allclose(after.popularity, before.popularity, rtol=1e-9)
    users = {e.user_id for e in log}
    for user in users:
        cols, values = after.interactions.user_entries(user)
        want_cols, want = before.interactions.user_entries(user)
        ids = after.interactions.items.ids[cols]
        assert sorted(ids) == sorted(before.interactions.items.ids[want_cols])
        order, want_order = np.argsort(ids), np.argsort(before.interactions.items.ids[want_cols])
        np.testing.assert_allclose(values[order], want[want_order], rtol=1e-5)
        np.testing.assert_array_equal(after.excluded.get(user, []), before.excluded.get(user, []))
    # Training reads the same log.
    frame = event_store.read_frame(columns=("type", "user_id", "garment_id", "occurred_at_us"))
    assert len(frame) == event_store.count() + done.groups + (again.groups - done.groups)
    assert frame["strength"].max() > 1 and (frame["strength"] > 0).all()


def test_nothing_old_means_nothing_done(event_store: EventStore, tmp_path):
    catalog = generate_catalog(60, seed=2)
    event_store.append(_log(catalog, n=50))
    done = event_store.compact(NOW - 400 * US_PER_DAY, HALF_LIFE, Archive(str(tmp_path), 0))
    assert done.events == 0 and done.archive is None and event_store.count() == 50


def test_drape_events_compact(tmp_path):
    from drape.services.events.store import open_event_store

    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_event_store(url)
    now = int(pd.Timestamp.now(tz="UTC").value // 1000)
    store.append([StoredEvent(f"e{i}", "view", "u1", "g1", now - d * US_PER_DAY, now, "", "", 0, "", 0)
                  for i, d in enumerate((400, 300, 200, 10))])  # fmt: skip
    store.close()
    env = {**os.environ, "DRAPE_DATA_DIR": str(tmp_path), "DRAPE_EVENTS__STORE_URL": url}
    result = subprocess.run([sys.executable, "-m", "drape.cli.main", "events", "compact"],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Ten half-lives of 14 days: the three events older than 140 days.
    assert "compacted 3 events older than 140 days" in result.stdout
    assert str(tmp_path / "archive" / "events") in result.stdout
    refused = subprocess.run([sys.executable, "-m", "drape.cli.main", "events", "compact",
                              "--older-than-days", "0"], env=env, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "must be positive" in refused.stderr
