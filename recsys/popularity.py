"""Popularity ranking: the A/B control and the cold-start fallback.

Scores each garment by the time-decayed, type-weighted sum of all shoppers'
interactions with it. Garments nobody touched rank last, newest catalog order
first among equals (stable). The repeat policy's garments (by default each shopper's
purchases) are filtered out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog
from drape.recsys.interactions import interaction_strength
from drape.recsys.ranking import Ranked, RankRequest, eligible_mask, excluded_by_user, top_k

CHANNEL = "popularity"


class PopularityRanker:
    """Most popular garments, with the repeat policy's and the request's filters applied."""

    name = "popularity"

    def __init__(
        self, catalog: Catalog, scores: np.ndarray, excluded: Mapping[str, np.ndarray], version: str
    ) -> None:
        self.catalog = catalog
        self.scores = scores
        self.version = version
        self._excluded = excluded
        # Descending score; stable so ties keep catalog order.
        self._order = np.argsort(-scores, kind="stable")

    @classmethod
    def fit(
        cls,
        catalog: Catalog,
        events: pd.DataFrame,
        weights: Mapping[str, float],
        half_life_days: float,
        now_us: int,
        version: str = "",
        excluded: Mapping[str, np.ndarray] | None = None,
    ) -> PopularityRanker:
        """Builds the ranker from an event frame (columns of the event store);
        ``excluded`` (from :func:`excluded_by_user`) defaults to each user's purchases."""
        positions = catalog.positions(events["garment_id"])
        known = positions >= 0
        strength = interaction_strength(events, weights, half_life_days, now_us)
        scores = np.bincount(positions[known], weights=strength[known], minlength=len(catalog))
        if excluded is None:
            excluded = excluded_by_user(catalog, events)
        return cls(catalog, scores, excluded, version or f"popularity-{now_us // 1_000_000}")

    def excluded(self, user_id: str) -> np.ndarray:
        return self._excluded.get(user_id, np.empty(0, dtype=np.int64))

    def rank(self, request: RankRequest, photo_embedding: object = None) -> list[Ranked]:
        """Most popular eligible garments (a photo does not change popularity)."""
        mask = eligible_mask(self.catalog, request, self.excluded(request.user_id))
        chosen = top_k(self._order, mask, request.k)
        return [
            Ranked(int(p), float(self.scores[p]), {CHANNEL: (float(self.scores[p]), i + 1)})
            for i, p in enumerate(chosen)
        ]
