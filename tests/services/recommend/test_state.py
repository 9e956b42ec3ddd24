"""The recommend service's refresh: the events since the last read are added to what it
holds, and what it serves equals a fresh start over the same store (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from drape.recsys import artifacts
from drape.recsys.datasets import attribute_vectors
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import US_PER_DAY
from drape.recsys.ranking import RankRequest
from drape.recsys.training import TrainSettings, train
from drape.services.events.store import EventStore, StoredEvent
from drape.services.recommend.state import RecommendState
from drape.services.runtime.config import RecommendConfig
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers


def _append(store: EventStore, events: pd.DataFrame) -> None:
    store.append([StoredEvent(*row) for row in events.itertuples(index=False)])


def _reads(state: RecommendState, kind: str) -> float:
    return state.events_read.labels(kind)._value.get()


def test_a_refresh_reads_only_new_events_and_serves_what_a_full_read_would(
    event_store: EventStore, tmp_path
):
    catalog = generate_catalog(300, seed=4)
    catalog_path = tmp_path / "catalog.parquet"
    catalog.save(catalog_path)
    events = generate_shoppers(catalog, 150, 6_000, seed=4).events
    events = events.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    cut = int(len(events) * 0.7)
    config = RecommendConfig()
    settings = TrainSettings(config.weights.model_dump(), config.half_life_days, tune=False)
    vectors = EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog))
    trained, _ = train(events.iloc[:cut], catalog, vectors, settings)
    root = tmp_path / "artifacts"
    artifacts.save(root, trained)
    now = int(events["occurred_at_us"].max()) + US_PER_DAY
    _append(event_store, events.iloc[:cut])

    state = RecommendState(catalog_path, event_store, config, root, clock=lambda: now / 1e6)
    assert state.refresh()
    assert _reads(state, "full") == cut
    for part in np.array_split(np.arange(cut, len(events)), 3):
        _append(event_store, events.iloc[part])
        _append(event_store, events.iloc[part[:5]])  # duplicates: not stored, not read
        assert state.refresh()
    assert _reads(state, "full") == cut and _reads(state, "incremental") == len(events) - cut

    fresh = RecommendState(catalog_path, event_store, config, root, clock=lambda: now / 1e6)
    assert fresh.refresh() and _reads(fresh, "full") == len(events)
    served, expected = state.current(), fresh.current()
    assert served.artifact_version == expected.artifact_version == trained.version
    exact = 0
    users = [*events["user_id"].unique(), "first-visit"]
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
