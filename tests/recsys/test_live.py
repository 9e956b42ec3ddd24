"""The log's running aggregates: reads added one after another equal one full build."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drape.recsys import datasets, live
from drape.recsys.als import ALSModel, ALSParams
from drape.recsys.hybrid import BlendWeights, HybridModel, HybridParams
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import US_PER_DAY, InteractionMatrix
from drape.recsys.live import LiveLog
from drape.recsys.ranking import RankRequest
from drape.recsys.repurchase import RepurchaseStats
from drape.synthetic.catalog import generate_catalog


@pytest.fixture(scope="module")
def store():
    """The generated replenishment store (views, carts, purchases of replenishable
    garments) in storage order, and a model trained on most shoppers' first 60%."""
    data = datasets.replenishment(n_users=400, seed=3)
    events = data.events.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    cut = int(len(events) * 0.6)
    past = events.iloc[:cut]
    trained = InteractionMatrix.build(
        past[~past["user_id"].str.endswith("7")],  # a tenth of the shoppers are new to the model
        data.weights,
        data.half_life_days,
        int(events["occurred_at_us"].iloc[cut]),
    )
    als = ALSModel.fit(trained.matrix, ALSParams(factors=16, iterations=4))
    vectors = EmbeddingIndex.build(list(data.catalog.ids), data.vectors)
    return data, events, cut, trained, als, vectors


def _build(data, events, now_us, trained) -> LiveLog:
    return LiveLog(data.catalog, events, data.weights, data.half_life_days, ("purchase",),
                   now_us, trained.users.ids, trained.items.ids)  # fmt: skip


def _hybrid(data, view, als, vectors) -> HybridModel:
    return HybridModel(
        data.catalog, view.interactions, als, vectors, view.excluded,
        HybridParams(weights=BlendWeights(engagement=0.5, repurchase=0.5)),
        repurchase=view.repurchase, now_us=view.now_us,
    )  # fmt: skip


def _same_ranking(a, b, tolerance=1e-4) -> bool:
    """Equal garments in equal order, except where two scores are equal up to rounding."""
    return len(a) == len(b) and all(
        x.position == y.position or np.isclose(x.score, y.score, rtol=tolerance)
        for x, y in zip(a, b, strict=True)
    )


def _through_disk(data, incremental: LiveLog, directory) -> LiveLog:
    """``incremental`` saved and loaded back, its arrays memory-mapped read-only."""
    incremental.save(directory, watermark=7)
    loaded = LiveLog.load(directory, data.catalog, data.weights, data.half_life_days,
                          ("purchase",))  # fmt: skip
    matrix = loaded.base.matrix
    assert not any(a.flags.writeable for a in (matrix.data, matrix.indices, matrix.indptr))
    # ^ the mapped read-only pages themselves, not a private copy
    assert LiveLog.saved_about(directory) == {"watermark": 7}
    return loaded


@pytest.mark.parametrize(
    ("compact_every", "saved"), [(None, False), (1_500, False), (None, True), (1_500, True)]
)
def test_reads_added_one_by_one_equal_a_full_build(
    store, monkeypatch, tmp_path, compact_every, saved
):
    """With ``saved``, each base (the first, and every compaction's) is written to disk and
    read back mapped, as a pod's workers share it, before the reads go on."""
    data, events, cut, trained, als, vectors = store
    if compact_every:  # merge the added entries into the base several times on the way
        monkeypatch.setattr(live, "COMPACT_AT", compact_every)
    t0 = int(events["occurred_at_us"].iloc[cut])
    incremental = _build(data, events.iloc[:cut], t0, trained)
    if saved:
        incremental = _through_disk(data, incremental, tmp_path / "base-0")
    bases = {id(incremental.base)}
    reads = np.array_split(np.arange(cut, len(events)), 7)
    for number, read in enumerate(reads):  # each read a minute after its newest event
        incremental.add(
            events.iloc[read], int(events["occurred_at_us"].iloc[read[-1]]) + 60_000_000
        )
        if saved and id(incremental.base) not in bases:
            incremental = _through_disk(data, incremental, tmp_path / f"base-{number + 1}")
        bases.add(id(incremental.base))
    assert (len(bases) > 1 + saved) == bool(compact_every)
    now = int(events["occurred_at_us"].iloc[-1]) + US_PER_DAY
    full = _build(data, events, now, trained).snapshot(now)
    view = incremental.snapshot(now)
    assert incremental.late_events == 0 and view.events == full.events == len(events)
    assert len(view.repurchase) == len(full.repurchase) > 0

    np.testing.assert_allclose(view.popularity, full.popularity, rtol=1e-9)
    np.testing.assert_allclose(view.interactions.column_sums(), full.interactions.column_sums(),
                               rtol=1e-5)  # fmt: skip
    assert list(view.interactions.users.ids) == list(full.interactions.users.ids)
    assert list(view.interactions.items.ids) == list(full.interactions.items.ids)
    at = now + 3 * US_PER_DAY
    for user in events["user_id"].unique():
        cols, values = view.interactions.user_entries(user)
        full_cols, full_values = full.interactions.user_entries(user)
        np.testing.assert_array_equal(cols, full_cols)
        np.testing.assert_allclose(values, full_values, rtol=1e-5)
        np.testing.assert_array_equal(view.interactions.recent_items(user),
                                      full.interactions.recent_items(user))  # fmt: skip
        np.testing.assert_array_equal(view.excluded.get(user, []), full.excluded.get(user, []))
        np.testing.assert_allclose(view.repurchase.scores(user, at)[1],
                                   full.repurchase.scores(user, at)[1], rtol=1e-12)  # fmt: skip

    # What a shopper is shown: the same lists, known and new shoppers alike.
    model, reference = (_hybrid(data, v, als, vectors) for v in (view, full))
    users = events["user_id"].unique()
    assert len(users) > len(trained.users)  # some shoppers arrived after training
    exact = 0
    for user in users:
        request = RankRequest(user, k=20)
        ranked, expected = model.rank(request), reference.rank(request)
        assert _same_ranking(ranked, expected), user
        exact += [r.position for r in ranked] == [r.position for r in expected]
    assert exact >= 0.95 * len(users)


def test_a_late_event_is_counted_and_kept_as_newest():
    catalog = generate_catalog(30, seed=1)
    g = list(catalog.ids)
    frame = pd.DataFrame({
        "event_id": ["a", "b"], "type": ["view", "view"], "user_id": ["ann", "ann"],
        "garment_id": [g[0], g[1]], "occurred_at_us": [10 * US_PER_DAY, 20 * US_PER_DAY],
    })  # fmt: skip
    log = LiveLog(catalog, frame, {"view": 1.0}, 30.0, ("purchase",), 21 * US_PER_DAY)
    late = frame.iloc[:1].assign(event_id="c", garment_id=g[2], occurred_at_us=15 * US_PER_DAY)
    log.add(late, 22 * US_PER_DAY)
    assert log.late_events == 1
    view = log.snapshot()
    recent = [view.interactions.items.ids[c] for c in view.interactions.recent_items("ann")]
    assert recent == [g[0], g[1], g[2]]  # a full build would put g[2] between g[0] and g[1]
    # Its strength is exact all the same: decayed from when it occurred.
    full = LiveLog(catalog, pd.concat([frame, late]), {"view": 1.0}, 30.0, ("purchase",),
                   22 * US_PER_DAY).snapshot()  # fmt: skip
    np.testing.assert_allclose(view.interactions.user_entries("ann")[1],
                               full.interactions.user_entries("ann")[1], rtol=1e-6)  # fmt: skip


def test_snapshots_handed_out_do_not_change():
    catalog = generate_catalog(30, seed=1)
    g = list(catalog.ids)
    frame = pd.DataFrame({
        "event_id": ["a"], "type": ["purchase"], "user_id": ["ann"], "garment_id": [g[0]],
        "occurred_at_us": [10 * US_PER_DAY],
    })  # fmt: skip
    log = LiveLog(catalog, frame, {"purchase": 8.0}, 30.0, ("purchase",), 11 * US_PER_DAY)
    before = log.snapshot()
    log.add(frame.assign(event_id="b", user_id="bob", garment_id=g[1]), 12 * US_PER_DAY)
    log.compact()
    assert len(before.interactions.users) == 1 and before.interactions.users.index_of("bob") < 0
    assert list(before.excluded) == ["ann"] and before.popularity[1] == 0
    after = log.snapshot()
    assert sorted(after.excluded) == ["ann", "bob"] and after.popularity[1] > 0


def test_saved_repurchase_habits_read_and_update_as_built_ones(tmp_path):
    """Habits saved and mapped back, then updated by later purchases (of shoppers with saved
    habits and of new ones), score as habits built from every purchase at once; and saved
    again, the mix of mapped and updated ones reads back the same."""
    data = datasets.replenishment(n_users=300, seed=5)
    events = data.events.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    cut = len(events) // 2
    built = RepurchaseStats.fit(data.catalog, events.iloc[:cut])
    built.save(tmp_path / "first")
    loaded = RepurchaseStats.load(tmp_path / "first", data.catalog)
    updated = loaded.updated(data.catalog, events.iloc[cut:])
    updated.save(tmp_path / "second")
    again = RepurchaseStats.load(tmp_path / "second", data.catalog)
    full = RepurchaseStats.fit(data.catalog, events)

    at = int(events["occurred_at_us"].max()) + 5 * US_PER_DAY
    users = events["user_id"].unique()
    had = {u for u in users if len(built.scores(u, at)[0])}
    bought_again = set(events.iloc[cut:].query("type == 'purchase'")["user_id"]) & had
    assert bought_again and len(full) > len(built) > 0  # both paths are taken
    assert len(loaded) == len(built) and len(updated) == len(again) == len(full)
    for user in [*users, "nobody"]:
        for stats, expected in ((loaded, built), (updated, full), (again, full)):
            positions, scores = stats.scores(user, at)
            expected_positions, expected_scores = expected.scores(user, at)
            np.testing.assert_array_equal(positions, expected_positions)
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)
    np.testing.assert_array_equal(again.category_cycle_days, full.category_cycle_days)
