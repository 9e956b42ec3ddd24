"""Collaborative filtering with implicit-feedback ALS.

Implements Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback
Datasets" (ICDM 2008) through the `implicit` library: conjugate-gradient ALS on
CPU, or on GPU when CUDA is available (same call, chosen once at fit time).
Serving always runs on CPU factors. A user with new interactions is folded in
(one least-squares solve against the item factors) without retraining.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    # Confidence scaling: an interaction of strength r has confidence c = alpha * r
    # (implicit's convention: c - 1 weighs the observed item beyond the zeros).
    alpha: float = 2.0
    # Sweeps of both halves. Held-out NDCG@10 stops rising by about 10 (MovieLens falls past
    # it, the generated logs stay flat; docs/benchmarks.md, Training at 20M events), and
    # each costs about 10 s at 20M events on 2 cores.
    iterations: int = 10
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError(f"ALS needs factors and iterations >= 1, got {self}")
        if not (self.regularization >= 0.0 and self.alpha > 0.0):
            raise ValueError(f"ALS needs regularization >= 0 and alpha > 0, got {self}")


def gpu_available() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except ImportError:
        return False


class ALSModel:
    """User and item factors; scores are their dot products."""

    def __init__(
        self, user_factors: np.ndarray, item_factors: np.ndarray, params: ALSParams
    ) -> None:
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.params = params
        # Gram matrix of the item factors, reused by every fold-in.
        self._yty = self.item_factors.T @ self.item_factors

    @classmethod
    def fit(
        cls, user_items: sp.csr_matrix, params: ALSParams = ALSParams(), use_gpu: bool | None = None
    ) -> ALSModel:
        """Trains on a users x items confidence matrix (rows are users: mind the orientation)."""
        from implicit.als import AlternatingLeastSquares

        use_gpu = gpu_available() if use_gpu is None else use_gpu
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            alpha=params.alpha,
            iterations=params.iterations,
            random_state=params.random_state,
            use_gpu=use_gpu,
        )
        from threadpoolctl import threadpool_limits

        # implicit parallelises over users itself; a BLAS thread pool underneath slows it 2-3x.
        with threadpool_limits(1, "blas"):
            model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=False)
        if use_gpu:
            model = model.to_cpu()
        if model.user_factors.shape[0] != user_items.shape[0]:
            raise RuntimeError("ALS returned factors of the wrong orientation")
        return cls(model.user_factors, model.item_factors, params)

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]

    def fold_in(self, row: sp.csr_matrix) -> np.ndarray:
        """Factor of a user from their (new) interactions, items fixed (one ALS half-step).

        Solves (YᵀY + Yᵀ(Cᵤ - I)Y + λI) xᵤ = YᵀCᵤpᵤ exactly with c = alpha * r, the
        equation `implicit` solves for every user during training.
        """
        row = sp.csr_matrix(row)
        items, strength = row.indices, row.data.astype(np.float64)
        if items.size == 0:
            return np.zeros(self.item_factors.shape[1], dtype=np.float32)
        y = self.item_factors[items].astype(np.float64)
        confidence = self.params.alpha * strength
        a = (
            self._yty
            + (y.T * (confidence - 1.0)) @ y
            + self.params.regularization * np.eye(y.shape[1])
        )
        b = y.T @ confidence
        return np.linalg.solve(a, b).astype(np.float32)

    def user_vector(
        self, user_index: int, row: sp.csr_matrix | None = None, recalculate: bool = False
    ) -> np.ndarray:
        """A known user's trained factor, or a folded-in one."""
        if recalculate or user_index < 0 or user_index >= len(self.user_factors):
            return self.fold_in(row if row is not None else sp.csr_matrix((1, self.n_items)))
        return self.user_factors[user_index]

    def scores(self, user_vector: np.ndarray) -> np.ndarray:
        """Predicted preference of the user for every item."""
        return self.item_factors @ user_vector

    def similar_items(self, item_index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Items whose factors are closest in cosine to ``item_index``'s (itself excluded)."""
        norms = np.linalg.norm(self.item_factors, axis=1) + 1e-9
        sims = (self.item_factors @ self.item_factors[item_index]) / (norms * norms[item_index])
        sims[item_index] = -np.inf
        top = np.argpartition(-sims, min(n, len(sims) - 1))[:n]
        top = top[np.argsort(-sims[top])]
        return top, sims[top]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "user_factors.npy", self.user_factors)
        np.save(directory / "item_factors.npy", self.item_factors)
        (directory / "als.json").write_text(json.dumps(asdict(self.params)))

    @classmethod
    def load(cls, directory: Path) -> ALSModel:
        directory = Path(directory)
        params = ALSParams(**json.loads((directory / "als.json").read_text()))
        # Mapped, not read: the workers of a pod (and the pods of a node) share one copy of
        # the factors in the page cache instead of holding one each.
        return cls(
            np.load(directory / "user_factors.npy", mmap_mode="r"),
            np.load(directory / "item_factors.npy", mmap_mode="r"),
            params,
        )
