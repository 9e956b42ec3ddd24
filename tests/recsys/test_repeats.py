"""What may be recommended again: the repeat policy, the engagement and repurchase channels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drape.recsys.catalog import Catalog
from drape.recsys.hybrid import BlendWeights, HybridModel, HybridParams
from drape.recsys.interactions import US_PER_DAY, InteractionMatrix
from drape.recsys.ranking import RankRequest, excluded_by_user
from drape.recsys.repurchase import RepurchaseStats, due

W = {"view": 1.0, "tryon_view": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
DAY0 = 1_800_000_000_000_000


def _catalog() -> Catalog:
    return Catalog(
        pd.DataFrame({
            "garment_id": ["coat", "dress", "scarf", "socks", "tights", "shirt"],
            "category": ["coat", "dress", "scarf", "socks", "socks", "shirt"],
            "replenishable": [False, False, False, True, True, False],
        })
    )  # fmt: skip


def _events(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "type": [r[0] for r in rows], "user_id": [r[1] for r in rows],
        "garment_id": [r[2] for r in rows],
        "occurred_at_us": [DAY0 + int(r[3] * US_PER_DAY) for r in rows],
    })  # fmt: skip


def _model(catalog, events, now_day, exclude_after=("purchase",), **weights) -> HybridModel:
    now = DAY0 + int(now_day * US_PER_DAY)
    matrix = InteractionMatrix.build(events, W, 14.0, now)
    blend = BlendWeights(**{c: 0.0 for c in BlendWeights().__dataclass_fields__} | weights)
    return HybridModel(
        catalog, matrix, None, None, excluded_by_user(catalog, events, exclude_after),
        HybridParams(weights=blend, cold_start_fallback=False),
        repurchase=RepurchaseStats.fit(catalog, events), now_us=now,
    )  # fmt: skip


def _ids(model, user, **request) -> list[str]:
    return [model.catalog.ids[r.position] for r in model.rank(RankRequest(user, k=5, **request))]


def test_viewed_and_carted_garments_come_back_bought_ones_do_not():
    catalog = _catalog()
    events = _events([
        ("view", "ann", "coat", 0), ("add_to_cart", "ann", "dress", 1),
        ("purchase", "ann", "shirt", 1), ("view", "ann", "scarf", -60),
    ])  # fmt: skip
    model = _model(catalog, events, now_day=2, engagement=1.0)
    ranked = model.rank(RankRequest("ann", k=5))
    # The cart is the strongest and freshest engagement, the old view the weakest.
    assert [catalog.ids[r.position] for r in ranked] == ["dress", "coat", "scarf"]
    assert all(set(r.channels) == {"engagement"} for r in ranked)
    assert 0 < ranked[-1].score < ranked[0].score <= 1
    # A stricter policy (nothing seen comes back) leaves the channel nothing.
    strict = _model(catalog, events, 2, exclude_after=("purchase", "view", "add_to_cart"),
                    engagement=1.0)  # fmt: skip
    assert _ids(strict, "ann") == []


def test_repurchase_proposes_a_staple_when_it_is_due_and_not_before():
    catalog = _catalog()
    # Socks every 10 days, four times; the last on day 30. Tights once, on day 28.
    events = _events(
        [("purchase", "bob", "socks", d) for d in (0, 10, 20, 30)]
        + [("purchase", "bob", "tights", 28), ("purchase", "eve", "tights", 0),
           ("purchase", "eve", "tights", 20)]
    )  # fmt: skip
    stats = RepurchaseStats.fit(catalog, events)
    socks_tights = catalog.positions(["socks", "tights"])
    # The socks category's cycle: the median interval of anyone's repeat purchases.
    assert stats.category_cycle_days[catalog.category_codes[socks_tights[0]]] == 10.0

    def score(day: float) -> dict[str, float]:
        positions, scores = stats.scores("bob", DAY0 + int(day * US_PER_DAY))
        return dict(zip(catalog.ids[positions], scores, strict=True))

    assert score(40)["socks"] > 0.8  # one cycle on, and a sure habit
    assert score(31)["socks"] < 0.2 < score(40)["socks"]  # just bought
    assert score(40)["socks"] > score(40)["tights"]  # a single purchase is a weaker habit
    assert score(70)["socks"] > score(31)["socks"]  # overdue fades slowly
    assert due(np.array([1.0]))[0] == 1.0
    assert score(0) and stats.scores("nobody", DAY0)[0].size == 0

    # The recommender: the repurchase channel only; bought socks are excluded elsewhere.
    due_now = _model(catalog, events, now_day=40, repurchase=1.0, popularity=0.2)
    ranked = due_now.rank(RankRequest("bob", k=6))
    top = ranked[0]
    assert catalog.ids[top.position] == "socks" and "repurchase" in top.channels
    assert all("popularity" not in r.channels for r in ranked if catalog.ids[r.position] == "socks")
    # Asked right after the last purchase, the same socks score far lower.
    just_bought = DAY0 + int(30.5 * US_PER_DAY)
    early = due_now.rank(RankRequest("bob", k=6, at_us=just_bought))
    socks_early = next(r.score for r in early if catalog.ids[r.position] == "socks")
    assert socks_early < 0.5 * top.score
    # The request's filters still hold for the repurchase channel.
    assert "socks" not in _ids(due_now, "bob", exclude_categories=("socks",))
    # Not replenishable: bought garments never come back.
    catalog_plain = Catalog(catalog.frame.assign(replenishable=False))
    plain = _model(catalog_plain, events, now_day=40, repurchase=1.0)
    assert plain.repurchase is not None and len(plain.repurchase) == 0
    assert _ids(plain, "bob") == []


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"garment_id": [1, 2, 3]}),
    pd.DataFrame({"garment_id": [1.0, 2.0, 3.0], "category": ["a", np.nan, "b"]}),
])  # fmt: skip
def test_a_catalog_needs_only_ids(frame):
    catalog = Catalog(frame)
    assert list(catalog.ids) == ["1", "2", "3"]  # integer ids become the strings events use
    assert catalog.in_stock.all() and not catalog.replenishable.any()
    assert (catalog.category_codes >= 0).all()  # a missing category is the "" category


def test_a_catalog_without_ids_or_with_duplicates_is_refused():
    with pytest.raises(ValueError, match="no garment_id column"):
        Catalog(pd.DataFrame({"title": ["x"]}))
    with pytest.raises(ValueError, match=r"rows \[1\] have no garment_id"):
        Catalog(pd.DataFrame({"garment_id": ["a", None]}))
    with pytest.raises(ValueError, match="duplicate garment ids"):
        Catalog(pd.DataFrame({"garment_id": [7, 7.0]}))


def test_catalogs_saved_before_the_replenishable_column_still_load(tmp_path):
    import sqlite3

    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE garments (garment_id TEXT, title TEXT, category TEXT, "
                   "price_minor INTEGER, currency TEXT, in_stock INTEGER, colour TEXT, "
                   "pattern TEXT, image_uri TEXT)")  # fmt: skip
        db.execute("INSERT INTO garments VALUES ('a', 'A', 'socks', 100, 'EUR', 1, '', '', '')")
    db.close()
    assert not Catalog.load(path).replenishable.any()
    _catalog().save(tmp_path / "new.db")
    assert list(Catalog.load(tmp_path / "new.db").replenishable) == [False] * 3 + [True] * 2 + [
        False
    ]
