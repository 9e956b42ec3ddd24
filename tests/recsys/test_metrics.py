from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k

from drape.recsys.metrics import coverage, ranking_metrics, user_metrics


def test_hand_computed_values():
    precision, recall, ndcg, ap = user_metrics([5, 1, 9, 2], {1, 2, 7}, k=4)
    assert precision == 0.5 and recall == pytest.approx(2 / 3)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg == pytest.approx(dcg / idcg)
    assert ap == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert coverage([[1, 2], [2, 3]], 10) == 0.3


def test_ndcg_and_map_agree_with_implicit_evaluation():
    """Cross-check on the same split: implicit's metrics of its own ALS vs ours of the same lists."""
    rng = np.random.default_rng(0)
    dense = (rng.random((150, 120)) < 0.08).astype(np.float32) * rng.integers(1, 5, (150, 120))
    full = sp.csr_matrix(dense)
    test_mask = sp.random(150, 120, density=1.0, random_state=1, format="csr").toarray() < 0.2
    train = sp.csr_matrix(dense * ~test_mask)
    test = sp.csr_matrix((dense * test_mask > 0).astype(np.float32))
    model = AlternatingLeastSquares(factors=8, iterations=5, random_state=0)
    model.fit(train, show_progress=False)
    theirs = ranking_metrics_at_k(model, train, test, K=10, show_progress=False)
    lists = []
    for user in range(full.shape[0]):
        relevant = set(test[user].indices.tolist())
        if relevant:
            ids, _ = model.recommend(user, train[user], N=10, filter_already_liked_items=True)
            lists.append((ids.tolist(), relevant))
    ours = ranking_metrics(lists, 10)
    assert ours.ndcg == pytest.approx(theirs["ndcg"], rel=1e-6)
    assert ours.map == pytest.approx(theirs["map"], rel=1e-6)
