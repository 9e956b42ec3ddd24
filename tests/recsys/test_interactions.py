from __future__ import annotations

import numpy as np
import pandas as pd

from drape.recsys.idmap import IdMap
from drape.recsys.interactions import US_PER_DAY, InteractionMatrix

NOW = 1_800_000_000_000_000
W = {"view": 1.0, "purchase": 8.0, "impression": 0.0}


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "garment_id", "type", "occurred_at_us"])


def test_matrix_is_users_by_items_and_sums_duplicates():
    events = _events(
        [
            ("a", "x", "view", NOW),
            ("a", "x", "purchase", NOW),
            ("b", "y", "view", NOW - 14 * US_PER_DAY),
            ("c", "z", "impression", NOW),
        ]
    )
    m = InteractionMatrix.build(events, W, 14, NOW)
    assert m.matrix.shape == (3, 3)  # c and z got ids though impressions weigh nothing
    assert m.matrix[m.users.index_of("a"), m.items.index_of("x")] == 9.0
    assert m.matrix[m.users.index_of("b"), m.items.index_of("y")] == 0.5
    assert m.matrix.nnz == 2
    # Reference: a plain loop.
    dense = np.zeros((3, 3))
    for u, g, t, at in events.itertuples(index=False):
        dense[m.users.index_of(u), m.items.index_of(g)] += W[t] * 0.5 ** (
            (NOW - at) / US_PER_DAY / 14
        )
    np.testing.assert_allclose(m.matrix.toarray(), dense)


def test_rebuild_keeps_ids_stable_and_appends_new_ones():
    first = InteractionMatrix.build(
        _events([("a", "x", "view", NOW), ("b", "y", "view", NOW)]), W, 14, NOW
    )
    second = InteractionMatrix.build(
        _events([("c", "z", "view", NOW), ("a", "x", "view", NOW)]),
        W,
        14,
        NOW,
        first.users,
        first.items,
    )
    assert list(second.users.ids) == ["a", "b", "c"] and list(second.items.ids) == ["x", "y", "z"]
    assert second.user_row("nobody").nnz == 0 and second.user_row("nobody").shape == (1, 3)


def test_idmap_roundtrip(tmp_path):
    ids = IdMap(["a", "b", "a", "c"])
    assert list(ids.ids) == ["a", "b", "c"]
    assert list(ids.lookup(["c", "zz"])) == [2, -1]
    ids.save(tmp_path / "ids.txt")
    assert list(IdMap.load(tmp_path / "ids.txt").ids) == ["a", "b", "c"]
    assert len(IdMap.load(_empty(tmp_path))) == 0


def _empty(tmp_path):
    IdMap().save(tmp_path / "e.txt")
    return tmp_path / "e.txt"


def test_idmap_takes_arrow_strings_and_missing_ids_like_object_arrays():
    ids = IdMap(["a", "b"])
    arrow = pd.Series(["c", "a", None, "c", "b"], dtype="string[pyarrow]")
    assert list(ids.lookup(arrow)) == [-1, 0, -1, -1, 1]
    # New ids are appended in first-seen order; a missing id gets no index.
    assert list(ids.extend(arrow)) == [2, 0, -1, 2, 1]
    assert list(ids.ids) == ["a", "b", "c"]
    assert list(ids.extend(np.array(["d", "a"], dtype=object))) == [3, 0]
    assert list(ids.lookup(iter(["d", "zz"]))) == [3, -1]
