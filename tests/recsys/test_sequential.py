from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from drape.recsys.catalog import Catalog
from drape.recsys.hybrid import BlendWeights, HybridModel, HybridParams
from drape.recsys.interactions import RECENT_ITEMS, InteractionMatrix
from drape.recsys.ranking import RankRequest
from drape.recsys.sequential import (
    SequentialParams,
    SequentialRules,
    _strongest_per_row,
    latest_items,
    timelines,
)
from drape.synthetic.catalog import generate_catalog

NOW = 1_800_000_000_000_000


def test_timelines_order_by_user_then_time_and_collapse_immediate_repeats():
    rows = np.array([1, 0, 0, 0, 1, 0, -1, 0])
    cols = np.array([5, 2, 2, 3, 6, 2, 9, -1])
    times = np.array([10, 30, 10, 20, 5, 40, 0, 50])
    r, c = timelines(rows, cols, times)
    # user 0: 2 (t10), 3 (t20), 2 (t30), 2 (t40: repeat, collapsed); user 1: 6 (t5), 5 (t10)
    assert r.tolist() == [0, 0, 0, 1, 1]
    assert c.tolist() == [2, 3, 2, 6, 5]


def test_latest_items_are_newest_last_and_left_padded():
    rows, cols = np.array([0, 0, 0, 2]), np.array([7, 8, 9, 4])
    out = latest_items(rows, cols, n_users=3, n=2)
    assert out.tolist() == [[8, 9], [-1, -1], [-1, 4]]


def test_rules_weigh_successors_by_inverse_gap_within_window_and_user():
    # user 0: 0 -> 1 -> 2 -> 3; user 1: 3 -> 0 (users never pair across each other)
    rows, cols = np.array([0, 0, 0, 0, 1, 1]), np.array([0, 1, 2, 3, 3, 0])
    rules = SequentialRules.fit(rows, cols, 4, SequentialParams(window=2)).rules.toarray()
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[0, 1] = expected[1, 2] = expected[2, 3] = 1.0  # gap 1
    expected[0, 2] = expected[1, 3] = 0.5  # gap 2; 0 -> 3 is beyond the window
    expected[3, 0] = 1.0
    np.testing.assert_allclose(rules, expected)


@pytest.mark.parametrize("pairs_per_block", [10**9, 5_000, 701])
def test_rules_are_every_pair_in_the_window_whatever_the_blocks(monkeypatch, pairs_per_block):
    # Timelines of 300 shoppers over 60 garments, against the rules summed pair by pair.
    rng = np.random.default_rng(4)
    user_rows = rng.integers(0, 300, 6000)
    rows, cols = timelines(user_rows, rng.zipf(1.5, 6000) % 60, rng.integers(0, 10**6, 6000))
    params = SequentialParams(window=4, max_rules=60)
    expected = np.zeros((60, 60))
    for i in range(len(rows)):
        for gap in range(1, params.window + 1):
            j = i + gap
            if j < len(rows) and rows[j] == rows[i] and cols[j] != cols[i]:
                expected[cols[i], cols[j]] += 1.0 / gap
    monkeypatch.setattr("drape.recsys.sequential.PAIRS_PER_BLOCK", pairs_per_block)
    rules = SequentialRules.fit(rows, cols, 60, params).rules
    np.testing.assert_allclose(rules.toarray(), expected, rtol=1e-6)
    # Pruned to the strongest successors per garment, whatever the blocks.
    pruned = SequentialRules.fit(rows, cols, 60, SequentialParams(window=4, max_rules=3)).rules
    assert np.diff(pruned.indptr).max() == 3
    np.testing.assert_array_equal(
        pruned.toarray(),
        _strongest_per_row(sp.csr_matrix(expected.astype(np.float32)), 3).toarray(),
    )


def test_pruning_keeps_each_rows_strongest_rules_ties_to_the_lower_column():
    rng = np.random.default_rng(0)
    dense = rng.integers(0, 4, size=(50, 40)).astype(np.float32) / 2
    import scipy.sparse as sp

    pruned = _strongest_per_row(sp.csr_matrix(dense), 5).toarray()
    for row, kept in zip(dense, pruned, strict=True):
        nonzero = np.flatnonzero(row)
        expected = sorted(nonzero, key=lambda c: (-row[c], c))[:5]
        assert sorted(np.flatnonzero(kept)) == sorted(expected)
        np.testing.assert_array_equal(kept[expected], row[expected])


def test_scores_decay_with_age_and_skip_unknown_columns():
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 3])
    model = SequentialRules.fit(rows, cols, 4, SequentialParams(window=1, recent=2, decay=0.5))
    # Latest items: 1 (older), 0 (newest); 9 is a garment added since training.
    items, scores = model.scores(np.array([-1, 9, 1, 0]))
    assert dict(zip(items.tolist(), scores.tolist(), strict=True)) == {2: 1.0, 3: 0.5}
    assert model.scores(np.array([-1, -1]))[0].size == 0


def test_rules_save_and_load(tmp_path):
    model = SequentialRules.fit(
        np.array([0, 0, 0]), np.array([1, 0, 2]), 3, SequentialParams(window=3, decay=0.7)
    )
    model.save(tmp_path / "seq")
    loaded = SequentialRules.load(tmp_path / "seq")
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.rules.toarray(), model.rules.toarray())


@pytest.mark.parametrize(
    "bad", [{"window": 0}, {"max_rules": 0}, {"recent": 0}, {"decay": 0.0}, {"decay": 1.5}]
)
def test_bad_params_are_refused(bad):
    with pytest.raises(ValueError):
        SequentialParams(**bad)


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "garment_id", "type", "occurred_at_us"])


def test_matrix_keeps_each_users_latest_items():
    events = _events(
        [("a", f"g{i}", "view", NOW + i) for i in range(RECENT_ITEMS + 3)]
        + [("b", "g1", "impression", NOW), ("b", "g2", "view", NOW)]
    )
    matrix = InteractionMatrix.build(events, {"view": 1.0}, 14, NOW + 100)
    latest = matrix.items.ids[matrix.recent_items("a")]
    assert latest.tolist() == [f"g{i}" for i in range(3, RECENT_ITEMS + 3)]
    # Zero-strength events (impressions) are not part of the timeline.
    assert matrix.items.ids[matrix.recent_items("b")].tolist() == ["g2"]
    assert matrix.recent_items("nobody").size == 0
    assert matrix.timeline is None
    with pytest.raises(ValueError, match="keep_timeline"):
        matrix.sequential_rules(SequentialParams())


def test_hybrid_sequential_channel_proposes_what_comes_next():
    catalog = Catalog(generate_catalog(30, seed=1, out_of_stock=0.0).frame)
    ids = catalog.ids
    # Many shoppers go ids[0] -> ids[1] -> ids[2]; shopper "me" just looked at ids[0].
    rows = []
    for u in range(20):
        rows += [(f"u{u}", ids[j], "view", NOW + 10 * u + j) for j in range(3)]
    rows.append(("me", ids[0], "view", NOW + 500))
    matrix = InteractionMatrix.build(
        _events(rows), {"view": 1.0}, 14, NOW + 1000, keep_timeline=True
    )
    rules = matrix.sequential_rules(SequentialParams(window=2))
    model = HybridModel(
        catalog, matrix, None, None, {}, HybridParams(weights=BlendWeights.only("sequential")),
        sequential=rules,
    )  # fmt: skip
    ranked = model.rank(RankRequest("me", k=2))
    assert [ids[r.position] for r in ranked] == [ids[1], ids[2]]
    assert all(set(r.channels) == {"sequential"} for r in ranked)
    assert ranked[0].channels["sequential"][1] == 1  # rank within the channel
    # Filters hold: an excluded successor is skipped, the next one takes its place.
    ranked = model.rank(RankRequest("me", k=1, exclude_garment_ids=(ids[1],)))
    assert [ids[r.position] for r in ranked] == [ids[2]]
    # Without rules (artifacts trained before the channel existed), the channel is absent.
    plain = HybridModel(catalog, matrix, None, None, {}, HybridParams(weights=BlendWeights()))
    assert all("sequential" not in r.channels for r in plain.rank(RankRequest("me", k=5)))
