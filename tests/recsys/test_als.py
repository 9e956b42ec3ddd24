from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

from drape.recsys.als import ALSModel, ALSParams


def _matrix(users: int = 120, items: int = 200, seed: int = 1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(users, items, density=0.06, format="csr", random_state=seed, dtype=np.float32)
    m.data[:] = rng.integers(1, 5, m.nnz)
    return m


@pytest.mark.parametrize(
    "bad", [{"factors": 0}, {"iterations": 0}, {"regularization": -0.1}, {"alpha": 0.0},
            {"alpha": float("nan")}],
)  # fmt: skip
def test_unusable_params_are_refused(bad):
    with pytest.raises(ValueError, match="ALS needs"):
        ALSParams(**bad)


def test_factors_have_users_as_rows():
    m = _matrix(users=50, items=300)
    model = ALSModel.fit(m, ALSParams(factors=8, iterations=3), use_gpu=False)
    assert model.user_factors.shape == (50, 8)
    assert model.item_factors.shape == (300, 8)


def test_fold_in_matches_implicit_recalculate_user():
    """Our exact solve (the reference) against the library's own fast path."""
    m = _matrix()
    params = ALSParams(factors=12, iterations=10, alpha=2.0, regularization=0.1)
    lib = AlternatingLeastSquares(
        factors=12, iterations=10, alpha=2.0, regularization=0.1, random_state=0
    )
    lib.fit(m, show_progress=False)
    model = ALSModel(lib.user_factors, lib.item_factors, params)
    for user in (0, 7, 33):
        np.testing.assert_allclose(
            model.fold_in(m[user]), lib.recalculate_user(user, m[user]), atol=1e-4
        )


def test_fold_in_of_a_new_user_ranks_their_taste_first():
    # Two blocks of users/items with disjoint tastes.
    block = np.kron(np.eye(2), np.ones((30, 40))).astype(np.float32) * 3
    model = ALSModel.fit(sp.csr_matrix(block), ALSParams(factors=4, iterations=15), use_gpu=False)
    newcomer = sp.csr_matrix(
        np.r_[np.zeros(40), np.eye(40)[0] * 3].reshape(1, -1).astype(np.float32)
    )
    scores = model.scores(model.fold_in(newcomer))
    assert scores[40:].mean() > scores[:40].mean()
    assert not model.fold_in(sp.csr_matrix((1, 80))).any()


def test_save_load_roundtrip(tmp_path):
    model = ALSModel.fit(_matrix(), ALSParams(factors=6, iterations=2), use_gpu=False)
    model.save(tmp_path)
    loaded = ALSModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    assert loaded.params == model.params
