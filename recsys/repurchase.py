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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog

US_PER_DAY = 86_400 * 1_000_000
# When no shopper bought any garment of a category twice yet.
DEFAULT_CYCLE_DAYS = 30.0
# Weight of the category's cycle, in purchases, when it is blended with a shopper's own.
PRIOR_PURCHASES = 1.0
EARLY_SIGMA, LATE_SIGMA, FLOOR = 0.5, 1.0, 0.1


@dataclass
class _UserHabits:
    positions: np.ndarray  # catalog positions, int64
    days: np.ndarray  # separate days each was bought
    last_us: np.ndarray  # the last purchase
    cycle_us: np.ndarray  # the expected interval


def due(ratio: np.ndarray) -> np.ndarray:
    """How due a purchase is, ``ratio`` cycles after the last one: 1 at one cycle."""
    log_r = np.log(np.maximum(ratio, 1e-3))
    sigma = np.where(log_r < 0, EARLY_SIGMA, LATE_SIGMA)
    return np.exp(-(log_r**2) / (2 * sigma**2))


class RepurchaseStats:
    """Per shopper, the replenishable garments they bought: how often, when last, their cycle."""

    def __init__(self, habits: dict[str, _UserHabits], category_cycle_days: np.ndarray) -> None:
        self._habits = habits
        self.category_cycle_days = category_cycle_days

    def __len__(self) -> int:
        return len(self._habits)

    @classmethod
    def fit(cls, catalog: Catalog, events: pd.DataFrame) -> RepurchaseStats:
        """From purchase events (columns of the event store) of replenishable garments."""
        n_categories = len(catalog.categories)
        if not catalog.replenishable.any() or events.empty:
            return cls({}, np.full(n_categories, DEFAULT_CYCLE_DAYS))
        bought = events[(events["type"] == "purchase").to_numpy()]
        positions = catalog.positions(bought["garment_id"])
        keep = positions >= 0
        keep[keep] = catalog.replenishable[positions[keep]]
        frame = pd.DataFrame({
            "user": bought["user_id"].to_numpy()[keep],
            "position": positions[keep],
            "day": bought["occurred_at_us"].to_numpy()[keep] // US_PER_DAY,
            "at": bought["occurred_at_us"].to_numpy()[keep],
        })  # fmt: skip
        if frame.empty:
            return cls({}, np.full(n_categories, DEFAULT_CYCLE_DAYS))
        # One purchase per garment and day: a basket that lists a garment twice is one.
        frame = frame.sort_values(["user", "position", "at"], kind="stable")
        frame = frame.drop_duplicates(["user", "position", "day"], keep="last")
        same = (frame["user"].to_numpy()[1:] == frame["user"].to_numpy()[:-1]) & (
            frame["position"].to_numpy()[1:] == frame["position"].to_numpy()[:-1]
        )
        gaps = np.diff(frame["day"].to_numpy()).astype(np.float64)
        gap_category = catalog.category_codes[frame["position"].to_numpy()[1:]]
        category_cycle = np.full(n_categories, np.nan)
        if same.any():
            medians = pd.Series(gaps[same]).groupby(gap_category[same]).median()
            category_cycle[medians.index.to_numpy()] = medians.to_numpy()
            fallback = float(np.median(gaps[same]))
        else:
            fallback = DEFAULT_CYCLE_DAYS
        category_cycle = np.where(np.isnan(category_cycle), fallback, category_cycle)
        category_cycle = np.maximum(category_cycle, 1.0)

        per_item = frame.groupby(["user", "position"], sort=False).agg(
            days=("day", "size"), first=("day", "min"), last_us=("at", "max")
        )
        per_item = per_item.reset_index()
        positions = per_item["position"].to_numpy(dtype=np.int64)
        days = per_item["days"].to_numpy(dtype=np.int64)
        prior = category_cycle[catalog.category_codes[positions]]
        own_span = per_item["last_us"].to_numpy() // US_PER_DAY - per_item["first"].to_numpy()
        # Mean own interval over (days - 1) intervals, blended with the category's cycle.
        cycle_days = (own_span + PRIOR_PURCHASES * prior) / (days - 1 + PRIOR_PURCHASES)
        cycle_us = np.maximum(cycle_days, 1.0) * US_PER_DAY
        last_us = per_item["last_us"].to_numpy(dtype=np.int64)
        habits: dict[str, _UserHabits] = {}
        users = per_item["user"].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(users)], strict=True):
            span = slice(start, end)
            habits[str(users[start])] = _UserHabits(
                positions[span], days[span], last_us[span], cycle_us[span]
            )
        return cls(habits, category_cycle)

    def scores(self, user_id: str, at_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(catalog positions, scores in [0, 1]) of the shopper's habits at time ``at_us``."""
        habits = self._habits.get(user_id)
        if habits is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        ratio = (at_us - habits.last_us) / habits.cycle_us
        certainty = 1.0 - 0.5 ** habits.days.astype(np.float64)
        return habits.positions, certainty * (FLOOR + (1.0 - FLOOR) * due(ratio))
