"""A log coded a chunk at a time holds the same events, and builds the same aggregates, as
the frame it was read from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drape.recsys import datasets
from drape.recsys.coded import CodedEvents, EventCoder
from drape.recsys.idmap import IdMap
from drape.recsys.interactions import US_PER_DAY, InteractionMatrix, anchored_strength
from drape.recsys.live import LiveLog
from drape.recsys.ranking import excluded_by_user
from drape.recsys.repurchase import RepurchaseStats

COLUMNS = ["type", "user_id", "garment_id", "occurred_at_us"]


@pytest.fixture(scope="module")
def log():
    """The replenishment store in storage order, its last 300 rows standing for compacted
    aggregates (a strength each, as a full read of the store ends)."""
    data = datasets.replenishment(n_users=300, seed=5)
    events = data.events.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    events = events[COLUMNS]
    stored, aggregates = events.iloc[:-300], events.iloc[-300:].reset_index(drop=True)
    rng = np.random.default_rng(5)
    aggregates = aggregates.assign(strength=rng.uniform(0.1, 3.0, len(aggregates)))
    whole = pd.concat([stored.assign(strength=1.0), aggregates], ignore_index=True)
    return data, stored, aggregates, whole


def _coded(stored: pd.DataFrame, aggregates: pd.DataFrame, chunks: int = 7) -> CodedEvents:
    coder = EventCoder()
    for part in np.array_split(np.arange(len(stored)), chunks):
        coder.add(stored.iloc[part])
    coder.add(aggregates)
    return coder.finish()


def test_chunks_coded_give_the_events_back(log):
    data, stored, aggregates, whole = log
    coded = _coded(stored, aggregates)
    assert len(coded) == len(whole)
    back = coded.frame(np.ones(len(coded), dtype=bool))
    pd.testing.assert_frame_equal(back, whole)
    # Codes are first seen first, as an IdMap extended by the whole column numbers them.
    assert coded.users.tolist() == IdMap(whole["user_id"]).ids.tolist()
    assert coded.garments.tolist() == pd.unique(whole["garment_id"]).tolist()
    assert (coded.user.dtype, coded.garment.dtype, coded.type.dtype) == (
        np.int32, np.int32, np.int8,
    )  # fmt: skip
    weights = coded.weights(data.weights)
    expected = whole["type"].map(data.weights).fillna(0.0).to_numpy() * whole["strength"]
    np.testing.assert_array_equal(weights, expected.to_numpy())
    purchases = coded.of_types(("purchase",))
    assert purchases.tolist() == (whole["type"] == "purchase").tolist()


def test_a_log_without_strengths_keeps_none():
    frame = pd.DataFrame({"type": ["view", "purchase"], "user_id": ["u1", "u2"],
                          "garment_id": ["g1", "g1"], "occurred_at_us": [1, 2]})  # fmt: skip
    coded = CodedEvents.of(frame)
    assert coded.strength is None and coded.types == ("view", "purchase")
    assert coded.weights({"purchase": 8.0}).tolist() == [0.0, 8.0]
    empty = EventCoder().finish()
    assert len(empty) == 0 and empty.weights({"view": 1.0}).tolist() == []


def test_events_without_an_id_or_a_column_are_refused():
    frame = pd.DataFrame({"type": ["view"], "user_id": [None], "garment_id": ["g1"],
                          "occurred_at_us": [1]})  # fmt: skip
    with pytest.raises(ValueError, match="events without a user_id"):
        EventCoder().add(frame)
    with pytest.raises(ValueError, match=r"without the columns \['occurred_at_us'\]"):
        EventCoder().add(frame.drop(columns="occurred_at_us"))


def test_a_build_from_coded_chunks_equals_one_from_the_frame(log):
    data, stored, aggregates, whole = log
    now = int(whole["occurred_at_us"].max()) + US_PER_DAY
    # A trained version's maps: the first half's shoppers and garments keep their indexes.
    half = whole.iloc[: len(whole) // 2]
    users, items = IdMap(half["user_id"]), IdMap(half["garment_id"])

    def build(events) -> LiveLog:
        return LiveLog(data.catalog, events, data.weights, data.half_life_days, ("purchase",),
                       now, users.ids, items.ids)  # fmt: skip

    coded, framed = build(_coded(stored, aggregates)), build(whole)
    # What a full build made of the frame itself, column by column, before logs were coded.
    reference = InteractionMatrix.build(whole, data.weights, data.half_life_days, now,
                                        IdMap(users.ids), IdMap(items.ids))  # fmt: skip
    strength = anchored_strength(whole, data.weights, data.half_life_days, now, now)
    positions = data.catalog.positions(whole["garment_id"])
    popularity = np.bincount(positions[positions >= 0], weights=strength[positions >= 0],
                             minlength=len(data.catalog))  # fmt: skip
    excluded = excluded_by_user(data.catalog, whole, ("purchase",))
    repurchase = RepurchaseStats.fit(data.catalog, whole)
    assert len(users) == len(half["user_id"].unique())  # the given maps are not changed
    at = now + 2 * US_PER_DAY
    for built in (coded, framed):
        assert built.base.users.ids.tolist() == reference.users.ids.tolist()
        assert built.base.items.ids.tolist() == reference.items.ids.tolist()
        assert (built.base.matrix != reference.matrix).nnz == 0
        np.testing.assert_array_equal(built.base.recent, reference.recent)
        np.testing.assert_allclose(built.popularity, popularity, rtol=1e-12)
        assert built.events == len(whole)
        assert dict(built.excluded_base).keys() == excluded.keys()
        for user, garments in excluded.items():
            np.testing.assert_array_equal(built.excluded_base[user], garments)
        assert len(built.repurchase) == len(repurchase) > 0
        for user in whole["user_id"].unique():
            np.testing.assert_array_equal(built.repurchase.scores(user, at)[1],
                                          repurchase.scores(user, at)[1])  # fmt: skip
    np.testing.assert_array_equal(coded.latest_base, framed.latest_base)
