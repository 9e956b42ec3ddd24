"""Repurchase: garments of replenishable categories a shopper buys again and again.

For each shopper and each replenishable garment they bought, the statistics keep how many
separate days they bought it and when last. Its cycle is the shopper's own mean interval
between those days, shrunk towards the category's typical cycle (the median interval
between consecutive purchases of one garment by one shopper, over the category), or the
category's cycle alone after a single purchase.

The channel scores a garment by how sure the habit is (``1 - 0.5 ** purchases``) times how
due it is: ``r`` = time since the last purchase / cycle, and due(r) a log-normal bump that
peaks at ``r = 1``, falls fast before (sigma 0.5 in log r: half a cycle scores 0.38) and slowly
after (sigma 1: three cycles still score 0.55, in case the shopper bought it elsewhere). A
floor of 0.1 keeps a habit in the candidates between its peaks. Scores lie in [0, 1] and
mean the same for every shopper, so the blend takes them as they are.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog

US_PER_DAY = 86_400 * 1_000_000
# When no shopper bought any garment of a category twice yet.
DEFAULT_CYCLE_DAYS = 30.0
# Weight of the category's cycle, in purchases, when it is blended with a shopper's own.
PRIOR_PURCHASES = 1.0
EARLY_SIGMA, LATE_SIGMA, FLOOR = 0.5, 1.0, 0.1


def due(ratio: np.ndarray) -> np.ndarray:
    """How due a purchase is, ``ratio`` cycles after the last one: 1 at one cycle."""
    log_r = np.log(np.maximum(ratio, 1e-3))
    sigma = np.where(log_r < 0, EARLY_SIGMA, LATE_SIGMA)
    return np.exp(-(log_r**2) / (2 * sigma**2))


def _median(counts: Counter[int]) -> float:
    """The median of values given by their counts (the mean of the middle two for an even
    count), as ``pandas.Series.median`` would give it for the values written out."""
    values = sorted(counts)
    cumulative = np.cumsum([counts[v] for v in values])
    total = int(cumulative[-1])
    low = values[int(np.searchsorted(cumulative, (total - 1) // 2, side="right"))]
    high = values[int(np.searchsorted(cumulative, total // 2, side="right"))]
    return (low + high) / 2.0


class RepurchaseStats:
    """Per shopper, the replenishable garments they bought: on which days, when last.

    New purchases update it in time proportional to their number (:meth:`updated`): the
    category cycles are medians kept as counts of whole-day intervals, and each habit's
    cycle is worked out when it is scored, from the cycles of that moment.
    """

    def __init__(
        self,
        category_codes: np.ndarray,
        n_categories: int,
        days: dict[tuple[str, int], np.ndarray] | None = None,
        last_us: dict[tuple[str, int], int] | None = None,
        habits: dict[str, tuple[int, ...]] | None = None,
        gaps: list[Counter[int]] | None = None,
    ) -> None:
        self._category = category_codes  # catalog position -> category code
        self._days = days or {}  # (user, position) -> the separate days it was bought, sorted
        self._last_us = last_us or {}  # (user, position) -> its last purchase
        self._habits = habits or {}  # user -> positions bought, ascending
        # Intervals in days between consecutive purchases of one garment by one shopper: per
        # category, and over all categories last.
        self._gaps = gaps or [Counter() for _ in range(n_categories + 1)]
        overall = _median(self._gaps[-1]) if self._gaps[-1] else DEFAULT_CYCLE_DAYS
        cycle = [_median(c) if c else overall for c in self._gaps[:-1]]
        self.category_cycle_days = np.maximum(np.asarray(cycle, dtype=np.float64), 1.0)

    def __len__(self) -> int:
        return len(self._habits)

    @classmethod
    def fit(cls, catalog: Catalog, events: pd.DataFrame) -> RepurchaseStats:
        """From purchase events (columns of the event store) of replenishable garments."""
        return cls(catalog.category_codes, len(catalog.categories)).updated(catalog, events)

    def updated(self, catalog: Catalog, events: pd.DataFrame) -> RepurchaseStats:
        """These statistics with ``events`` added; ``self`` is left as it was (a snapshot that
        requests may still read)."""
        if not catalog.replenishable.any() or events.empty:
            return self
        bought = events[(events["type"] == "purchase").to_numpy()]
        positions = catalog.positions(bought["garment_id"])
        keep = positions >= 0
        keep[keep] = catalog.replenishable[positions[keep]]
        if not keep.any():
            return self
        users = bought["user_id"].to_numpy()[keep]
        positions = positions[keep]
        at = bought["occurred_at_us"].to_numpy()[keep].astype(np.int64)
        codes, distinct_users = pd.factorize(users)
        order = np.lexsort((at, positions, codes))
        codes, positions, at = codes[order], positions[order], at[order]
        starts = np.flatnonzero(
            np.r_[True, (codes[1:] != codes[:-1]) | (positions[1:] != positions[:-1])]
        )
        ends = np.r_[starts[1:], len(codes)]
        days, last_us = dict(self._days), dict(self._last_us)
        habits, gaps = dict(self._habits), [Counter(c) for c in self._gaps]
        category = catalog.category_codes
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            user, position = str(distinct_users[codes[start]]), int(positions[start])
            key = (user, position)
            new_days = np.unique(at[start:end] // US_PER_DAY)
            old = days.get(key)
            merged = new_days if old is None else np.union1d(old, new_days)
            if old is not None:
                for gap in np.diff(old).tolist():
                    for counts in (gaps[category[position]], gaps[-1]):
                        counts[gap] -= 1
                        if not counts[gap]:
                            del counts[gap]
            for gap in np.diff(merged).tolist():
                gaps[category[position]][gap] += 1
                gaps[-1][gap] += 1
            days[key] = merged
            last_us[key] = max(int(at[end - 1]), last_us.get(key, int(at[end - 1])))
            if old is None:
                habits[user] = tuple(sorted((*habits.get(user, ()), position)))
        return RepurchaseStats(category, len(catalog.categories), days, last_us, habits, gaps)

    def arrays(self) -> dict[str, np.ndarray]:
        """These statistics as plain arrays (see :meth:`from_arrays`): saved without pickle."""
        keys = sorted(self._days)
        days = [self._days[k] for k in keys]
        gaps = [(c, gap, n) for c, counts in enumerate(self._gaps) for gap, n in counts.items()]
        return {
            "users": np.array([u.encode() for u, _ in keys] or [b""], dtype=np.bytes_)[: len(keys)],
            "positions": np.array([p for _, p in keys], dtype=np.int64),
            "days_indptr": np.cumsum([0, *map(len, days)]).astype(np.int64),
            "days": np.concatenate(days).astype(np.int64) if days else np.empty(0, np.int64),
            "last_us": np.array([self._last_us[k] for k in keys], dtype=np.int64),
            "gaps": np.array(gaps, dtype=np.int64).reshape(-1, 3),
        }

    @classmethod
    def from_arrays(cls, catalog: Catalog, arrays: dict[str, np.ndarray]) -> RepurchaseStats:
        """The statistics :meth:`arrays` gave, for the same catalog."""
        users = [u.decode() for u in arrays["users"].tolist()]
        positions = arrays["positions"].tolist()
        indptr, all_days = arrays["days_indptr"], np.asarray(arrays["days"])
        keys = list(zip(users, positions, strict=True))
        days = {k: all_days[indptr[i] : indptr[i + 1]].copy() for i, k in enumerate(keys)}
        last_us = dict(zip(keys, arrays["last_us"].tolist(), strict=True))
        habits: dict[str, tuple[int, ...]] = {}
        for user, position in keys:  # sorted keys: each user's positions ascending
            habits[user] = (*habits.get(user, ()), position)
        gaps = [Counter() for _ in range(len(catalog.categories) + 1)]
        for category, gap, count in arrays["gaps"].tolist():
            gaps[category][gap] = count
        return cls(catalog.category_codes, len(catalog.categories), days, last_us, habits, gaps)

    def scores(self, user_id: str, at_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(catalog positions, scores in [0, 1]) of the shopper's habits at time ``at_us``."""
        positions = self._habits.get(user_id)
        if positions is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        keys = [(user_id, p) for p in positions]
        days = np.array([len(self._days[k]) for k in keys], dtype=np.float64)
        first = np.array([self._days[k][0] for k in keys], dtype=np.int64)
        last_us = np.array([self._last_us[k] for k in keys], dtype=np.int64)
        prior = self.category_cycle_days[self._category[np.asarray(positions)]]
        # Mean own interval over (days - 1) intervals, blended with the category's cycle.
        cycle_days = (last_us // US_PER_DAY - first + PRIOR_PURCHASES * prior) / (
            days - 1 + PRIOR_PURCHASES
        )
        ratio = (at_us - last_us) / (np.maximum(cycle_days, 1.0) * US_PER_DAY)
        certainty = 1.0 - 0.5**days
        return np.asarray(positions, dtype=np.int64), certainty * (
            FLOOR + (1.0 - FLOOR) * due(ratio)
        )
