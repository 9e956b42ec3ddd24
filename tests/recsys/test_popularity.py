from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drape.recsys.catalog import Catalog
from drape.recsys.interactions import US_PER_DAY, interaction_strength
from drape.recsys.popularity import PopularityRanker
from drape.recsys.ranking import RankRequest
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers

NOW = 1_800_000_000_000_000
WEIGHTS = {"view": 1.0, "tryon_view": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def _frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "garment_id", "type", "occurred_at_us"])


def _catalog(n: int = 6, out_of_stock: tuple[int, ...] = ()) -> Catalog:
    frame = generate_catalog(n, seed=3).frame
    frame["in_stock"] = [i not in out_of_stock for i in range(n)]
    frame["category"] = ["coat", "coat", "dress", "dress", "shirt", "shirt"][:n]
    return Catalog(frame)


def test_strength_weights_and_decay():
    events = _frame(
        [
            ("u", "g", "purchase", NOW),
            ("u", "g", "view", NOW - 14 * US_PER_DAY),
            ("u", "g", "rating", NOW),
        ]
    )
    strength = interaction_strength(events, WEIGHTS, half_life_days=14, now_us=NOW)
    np.testing.assert_allclose(strength, [8.0, 0.5, 0.0])


def test_reference_scores_and_order():
    catalog = _catalog()
    ids = catalog.ids
    events = _frame(
        [
            ("a", ids[2], "view", NOW),
            ("b", ids[2], "view", NOW),  # 2.0
            ("a", ids[4], "purchase", NOW),  # 8.0
            ("c", ids[0], "add_to_cart", NOW - 14 * US_PER_DAY),  # 2.0 after decay
            ("c", "not-in-catalog", "purchase", NOW),  # ignored
        ]
    )
    ranker = PopularityRanker.fit(catalog, events, WEIGHTS, 14, NOW)
    # Reference: a plain loop over events.
    expected = np.zeros(len(catalog))
    for row in events.itertuples():
        if row.garment_id in catalog:
            age = (NOW - row.occurred_at_us) / US_PER_DAY
            expected[catalog.positions([row.garment_id])[0]] += WEIGHTS[row.type] * 0.5 ** (
                age / 14
            )
    np.testing.assert_allclose(ranker.scores, expected)
    ranked = ranker.rank(RankRequest("newcomer", k=3))
    assert [r.position for r in ranked] == [4, 0, 2]  # ties keep catalog order
    assert ranked[0].channels == {"popularity": (8.0, 1)}


def test_filters_bought_stock_categories_and_exclusions():
    catalog = _catalog(out_of_stock=(1,))
    ids = catalog.ids
    events = _frame([("a", ids[4], "purchase", NOW), ("a", ids[5], "view", NOW)])
    ranker = PopularityRanker.fit(catalog, events, WEIGHTS, 14, NOW)
    positions = lambda **kw: [r.position for r in ranker.rank(RankRequest(k=10, **kw))]  # noqa: E731
    assert 4 not in positions(user_id="a")  # already bought
    assert 4 in positions(user_id="b")
    assert 1 not in positions(user_id="b")  # out of stock
    assert 1 in positions(user_id="b", include_out_of_stock=True)
    assert set(positions(user_id="b", categories=("dress",))) == {2, 3}
    assert set(positions(user_id="b", exclude_categories=("coat", "shirt"))) == {2, 3}
    assert 5 not in positions(user_id="b", exclude_garment_ids=(ids[5], "unknown-id"))
    assert positions(user_id="b", categories=("hats",)) == []


def test_k_caps_the_list_and_empty_history_still_ranks():
    catalog = generate_catalog(50, seed=1)
    ranker = PopularityRanker.fit(catalog, _frame([]), WEIGHTS, 14, NOW)
    assert len(ranker.rank(RankRequest("u", k=10))) == 10


def test_popularity_beats_random_on_synthetic_shoppers():
    """Sanity of the whole pipeline: popular items of the past are bought again later."""
    catalog = generate_catalog(400, seed=0)
    data = generate_shoppers(catalog, 300, 20_000, seed=0, start_us=NOW - 60 * US_PER_DAY)
    split = NOW - 10 * US_PER_DAY
    train, test = (
        data.events[data.events.occurred_at_us < split],
        data.events[data.events.occurred_at_us >= split],
    )
    ranker = PopularityRanker.fit(catalog, train, WEIGHTS, 14, split)
    top = {
        catalog.ids[r.position]
        for r in ranker.rank(RankRequest("x", k=20, include_out_of_stock=True))
    }
    purchases = test[test.type == "purchase"]["garment_id"]
    hit_rate = purchases.isin(top).mean()
    random_rate = 20 / len(catalog)
    assert hit_rate > 3 * random_rate


@pytest.mark.parametrize("n", [0, 1, 17])
def test_catalog_roundtrip(tmp_path, n):
    catalog = generate_catalog(n, seed=2)
    catalog.save(tmp_path / "c.db")
    loaded = Catalog.load(tmp_path / "c.db")
    pd.testing.assert_frame_equal(loaded.frame, catalog.frame, check_dtype=False)


def test_catalog_rejects_duplicates_and_missing_file(tmp_path):
    frame = generate_catalog(3, seed=2).frame
    frame.loc[2, "garment_id"] = frame.loc[0, "garment_id"]
    with pytest.raises(ValueError, match="duplicate garment ids"):
        Catalog(frame)
    with pytest.raises(FileNotFoundError):
        Catalog.load(tmp_path / "none.db")


@pytest.mark.parametrize("k", [0, 1, 3, 50, 400])
def test_top_k_matches_the_full_scan(k):
    rng = np.random.default_rng(k)
    order = rng.permutation(1000)
    mask = rng.random(1000) < 0.05  # sparse: forces the prefix to grow
    from drape.recsys.ranking import top_k

    np.testing.assert_array_equal(top_k(order, mask, k), order[mask[order]][:k])
