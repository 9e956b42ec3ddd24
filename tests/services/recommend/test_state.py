"""The recommend service's refresh: the events since the last read are added to what it
holds, and what it serves equals a fresh start over the same store (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from drape.recsys import artifacts, hybrid, live
from drape.recsys.datasets import attribute_vectors
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import US_PER_DAY
from drape.recsys.ranking import RankRequest
from drape.recsys.training import TrainSettings, train
from drape.services.events.store import EventStore, StoredEvent
from drape.services.recommend import state as state_module
from drape.services.recommend.shared import SharedBases
from drape.services.recommend.state import RecommendState
from drape.services.runtime.config import RecommendConfig
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers


def _append(store: EventStore, events: pd.DataFrame) -> None:
    store.append([StoredEvent(*row) for row in events.itertuples(index=False)])


def _reads(state: RecommendState, kind: str) -> float:
    return state.events_read.labels(kind)._value.get()


def _trained_store(tmp_path, users=150, events=6_000):
    """A catalog, its events in time order, the index cutting the first 70%, a version
    trained on them, and the time of the reads: a day after the last event."""
    catalog = generate_catalog(300, seed=4)
    catalog.save(tmp_path / "catalog.parquet")
    log = generate_shoppers(catalog, users, events, seed=4).events
    log = log.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    cut = int(len(log) * 0.7)
    config = RecommendConfig()
    settings = TrainSettings(config.weights.model_dump(), config.half_life_days, tune=False)
    vectors = EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog))
    trained, _ = train(log.iloc[:cut], catalog, vectors, settings)
    artifacts.save(tmp_path / "artifacts", trained)
    return log, cut, trained.version, int(log["occurred_at_us"].max()) + US_PER_DAY


def _state(tmp_path, store: EventStore, now: int, **options) -> RecommendState:
    return RecommendState(tmp_path / "catalog.parquet", store, RecommendConfig(),
                          tmp_path / "artifacts", clock=lambda: now / 1e6, **options)  # fmt: skip


def _assert_serve_the_same(served, expected, users) -> None:
    """The same lists for every strategy and shopper, but for ties broken by rounding."""
    exact = 0
    for strategy in ("hybrid", "popularity", "als"):
        for user in users:
            request = RankRequest(user, k=10)
            a = served.rank(strategy, request, None)
            b = expected.rank(strategy, request, None)
            assert len(a) == len(b)
            assert all(x.position == y.position or np.isclose(x.score, y.score, rtol=1e-4)
                       for x, y in zip(a, b, strict=True)), (strategy, user)  # fmt: skip
            exact += [r.position for r in a] == [r.position for r in b]
    assert exact >= 0.95 * 3 * len(users)


def test_a_refresh_reads_only_new_events_and_serves_what_a_full_read_would(
    event_store: EventStore, tmp_path
):
    events, cut, version, now = _trained_store(tmp_path)
    _append(event_store, events.iloc[:cut])

    state = _state(tmp_path, event_store, now)
    assert state.refresh()
    assert _reads(state, "full") == cut
    for part in np.array_split(np.arange(cut, len(events)), 3):
        _append(event_store, events.iloc[part])
        _append(event_store, events.iloc[part[:5]])  # duplicates: not stored, not read
        assert state.refresh()
    assert _reads(state, "full") == cut and _reads(state, "incremental") == len(events) - cut

    fresh = _state(tmp_path, event_store, now)
    assert fresh.refresh() and _reads(fresh, "full") == len(events)
    served, expected = state.current(), fresh.current()
    assert served.artifact_version == expected.artifact_version == version
    _assert_serve_the_same(served, expected, [*events["user_id"].unique(), "first-visit"])


def _mapped(state: RecommendState) -> float:
    """How many times ``state`` mapped a base another worker saved."""
    return sum(bucket.get() for bucket in state.refresh_seconds.labels("shared")._buckets)


def test_a_pods_workers_share_one_full_read_and_serve_what_their_own_would(
    event_store: EventStore, tmp_path, monkeypatch, caplog
):
    """Two workers start at once: one reads the log and saves the base, the other maps it.
    Later reads go on from the saved watermark; when one worker merges its added entries
    into a new base, the other maps that one. Both serve what a worker of its own serves."""
    events, cut, _, now = _trained_store(tmp_path)
    _append(event_store, events.iloc[:cut])
    pod = tmp_path / "pod"
    builds = []  # the ALS item indexes built: one for the pod, the others load it
    monkeypatch.setattr(state_module, "als_item_index",
                        lambda *a: builds.append(a) or hybrid.als_item_index(*a))  # fmt: skip
    workers = [_state(tmp_path, event_store, now, shared=SharedBases(pod)) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        assert all(pool.map(RecommendState.refresh, workers))
    assert sorted(_reads(w, "full") for w in workers) == [0, cut]  # one read for the pod
    assert sorted(_mapped(w) for w in workers) == [0, 1]
    assert len(builds) == 1
    assert sorted(p.name for p in pod.iterdir() if p.is_dir()) == [
        "als-index", "base-1-" + str(os.getpid())
    ]  # fmt: skip

    monkeypatch.setattr(live, "COMPACT_AT", 600)  # new bases on the way
    for part in np.array_split(np.arange(cut, len(events)), 3):
        _append(event_store, events.iloc[part])
        assert all(w.refresh() for w in workers)
    generations = [w._live.generation for w in workers]
    assert generations[0] == generations[1] > 1  # the second adopted the first's new base
    assert len(list(pod.glob("base-*"))) == 1  # older bases removed, the index kept
    assert len(builds) == 1 and len(list((pod / "als-index").iterdir())) == 2  # and CURRENT

    # A worker restarted later maps the newest base. Events stored since make it merge a new
    # base on its first read; it saves that one, and the others map it at their next merge.
    extra = events.iloc[-60:].assign(event_id=lambda f: f["event_id"] + "-again")
    _append(event_store, extra)
    monkeypatch.setattr(live, "COMPACT_AT", 10)
    late = _state(tmp_path, event_store, now, shared=SharedBases(pod))
    assert late.refresh() and _reads(late, "full") == 0 and _mapped(late) == 1
    assert len(builds) == 1  # the index loaded, not built
    assert late._live.generation == generations[0] + 1
    assert all(w.refresh() for w in workers)
    assert [w._live.generation for w in workers] == [generations[0] + 1] * 2
    events = pd.concat([events, extra], ignore_index=True)
    fresh = _state(tmp_path, event_store, now)
    assert fresh.refresh()
    users = [*events["user_id"].unique(), "first-visit"]
    for served in (*workers, late):
        _assert_serve_the_same(served.current(), fresh.current(), users)

    # A base or an index that cannot be read is built again, with a warning, not served or
    # crashed on.
    current = pod / (pod / "CURRENT").read_text().strip()
    (current / "matrix-data.npy").write_bytes(b"not an array")
    indexes = pod / "als-index"
    (indexes / (indexes / "CURRENT").read_text().strip() / "faiss.index").write_bytes(b"junk")
    again = _state(tmp_path, event_store, now, shared=SharedBases(pod))
    with caplog.at_level(logging.WARNING, "drape.recommend"):
        assert again.refresh()
    assert _reads(again, "full") == len(events)
    assert "shared base unreadable" in caplog.text
    assert "shared ALS index unreadable" in caplog.text and len(builds) == 2
    _assert_serve_the_same(again.current(), fresh.current(), users)
    late = _state(tmp_path, event_store, now, shared=SharedBases(pod))
    assert late.refresh() and len(builds) == 2  # the index saved again, and loaded


def test_a_new_version_is_read_in_full(event_store: EventStore, tmp_path):
    catalog = generate_catalog(100, seed=5)
    catalog_path = tmp_path / "catalog.parquet"
    catalog.save(catalog_path)
    events = generate_shoppers(catalog, 40, 800, seed=5).events
    _append(event_store, events)
    config = RecommendConfig()
    root = tmp_path / "artifacts"
    state = RecommendState(catalog_path, event_store, config, root)
    assert state.refresh() and state.current().hybrid is None
    settings = TrainSettings(config.weights.model_dump(), config.half_life_days, tune=False)
    artifacts.save(root, train(events, catalog, None, settings)[0])
    assert state.refresh() and state.current().hybrid is not None
    assert _reads(state, "full") == 2 * len(events) and _reads(state, "incremental") == 0
