from __future__ import annotations

import numpy as np
import pytest

from drape.recsys.index import EmbeddingIndex, IndexSpec, choose_kind


def _data(n: int = 3000, d: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, d))
    x = (centers[rng.integers(0, 40, n)] + 0.4 * rng.normal(size=(n, d))).astype(np.float32)
    return [f"g{i}" for i in range(n)], x, rng


@pytest.mark.parametrize(("kind", "min_recall"), [("flat", 1.0), ("hnsw", 0.95), ("ivfpq", 0.9)])
def test_recall_against_exact_search(kind, min_recall):
    ids, x, rng = _data()
    index = EmbeddingIndex.build(ids, x, IndexSpec(kind=kind))
    queries = x[rng.integers(0, len(x), 100)] + 0.05 * rng.normal(size=(100, x.shape[1])).astype(
        np.float32
    )
    assert index.recall(queries, 10) >= min_recall


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_remove_readd_and_persist(tmp_path, kind):
    ids, x, _ = _data(n=1200)
    index = EmbeddingIndex.build(ids, x, IndexSpec(kind=kind))
    found, _ = index.search(x[5], 1)
    assert found[0][0] == "g5"
    assert index.remove(["g5", "unknown"]) == 1
    assert "g5" not in index and len(index) == 1199
    assert "g5" not in index.search(x[5], 20)[0][0]
    index.add(["g5"], x[5:6] * 2)  # re-added (scale does not matter for cosine)
    assert index.search(x[5], 1)[0][0][0] == "g5"
    index.save(tmp_path)
    loaded = EmbeddingIndex.load(tmp_path)
    assert len(loaded) == 1200 and loaded.kind == kind
    assert loaded.search(x[7], 1)[0][0][0] == "g7"


def test_mass_removal_triggers_rebuild_and_stays_correct():
    ids, x, _ = _data(n=1000)
    index = EmbeddingIndex.build(ids, x, IndexSpec(kind="hnsw"))
    index.remove(ids[:600])
    assert index._index.ntotal == 400  # rebuilt without the dead labels
    got, _ = index.search(x[700], 5)
    assert got[0][0] == "g700" and all(int(g[1:]) >= 600 for g in got[0])


def test_inner_product_metric_keeps_magnitude():
    index = EmbeddingIndex.build(
        ["small", "big"], np.array([[1.0, 0.0], [3.0, 0.1]]), IndexSpec(kind="flat", metric="ip")
    )
    ids, scores = index.search(np.array([1.0, 0.0]), 2)
    assert list(ids[0]) == ["big", "small"]
    np.testing.assert_allclose(scores[0], [3.0, 1.0], rtol=1e-6)


def test_bad_vectors_are_rejected():
    index = EmbeddingIndex(4)
    with pytest.raises(ValueError, match="NaN"):
        index.add(["a"], np.array([[np.nan, 0, 0, 0]]))
    with pytest.raises(ValueError, match="dimension"):
        index.add(["a"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="duplicate ids"):
        index.add(["a", "a"], np.ones((2, 4)))
    assert index.search(np.ones(4), 3)[0][0].size == 0


def test_choose_kind():
    assert (
        choose_kind(1000) == "flat"
        and choose_kind(100_000) == "hnsw"
        and choose_kind(10_000_000) == "ivfpq"
    )


def test_labels_name_the_same_neighbours_as_ids_across_removal_and_readding():
    ids, x, rng = _data(n=800)
    index = EmbeddingIndex.build(ids, x, IndexSpec(kind="hnsw"))
    index.remove(["g3", "g4"])
    index.add(["g3"], x[3:4])  # a new label for g3; the old one stays dead
    queries = x[rng.integers(0, len(x), 20)]
    found, scores = index.search(queries, 15)
    labels, label_scores = index.search_labels(queries, 15)
    for row_ids, row_labels, a, b in zip(found, labels, scores, label_scores, strict=True):
        assert row_labels.dtype == np.int64
        assert index.label_ids[row_labels].tolist() == row_ids.tolist()
        assert np.array_equal(a, b) and "g4" not in row_ids.tolist()
    assert len(index.label_ids) == 801
