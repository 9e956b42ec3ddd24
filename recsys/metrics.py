"""Top-k ranking metrics with binary relevance.

NDCG and MAP follow the definitions of ``implicit.evaluation.ranking_metrics_at_k``
(ideal DCG and AP normalised over min(k, |relevant|)), so the two cross-check;
precision is hits / k and recall hits / |relevant|, averaged over users.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class RankingMetrics:
    precision: float
    recall: float
    ndcg: float
    map: float
    users: int

    def as_dict(self, k: int) -> dict[str, float]:
        return {
            f"precision@{k}": self.precision,
            f"recall@{k}": self.recall,
            f"ndcg@{k}": self.ndcg,
            f"map@{k}": self.map,
            "users": self.users,
        }


def user_metrics(
    ranked: Sequence[int], relevant: set[int], k: int
) -> tuple[float, float, float, float]:
    """(precision, recall, ndcg, ap) of one user's ranked list against their relevant items."""
    hits = np.array([item in relevant for item in list(ranked)[:k]], dtype=np.float64)
    n_hits = hits.sum()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[: min(k, len(relevant))].sum()
    ndcg = float((hits * discounts[: len(hits)]).sum() / ideal) if ideal else 0.0
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    ap = float((precision_at * hits).sum() / min(k, len(relevant))) if relevant else 0.0
    return n_hits / k, n_hits / max(len(relevant), 1), ndcg, ap


def ranking_metrics(rankings: Iterable[tuple[Sequence[int], set[int]]], k: int) -> RankingMetrics:
    """Means over users (users without relevant items are skipped)."""
    rows = [user_metrics(ranked, relevant, k) for ranked, relevant in rankings if relevant]
    if not rows:
        return RankingMetrics(0.0, 0.0, 0.0, 0.0, 0)
    p, r, n, m = np.mean(rows, axis=0)
    return RankingMetrics(float(p), float(r), float(n), float(m), len(rows))


def coverage(rankings: Iterable[Sequence[int]], n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    seen: set[int] = set()
    for ranked in rankings:
        seen.update(ranked)
    return len(seen) / max(n_items, 1)
