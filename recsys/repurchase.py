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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog
from drape.recsys.idmap import FrozenIds, mapped

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


@dataclass(frozen=True)
class SavedHabits:
    """Many shoppers' habits in arrays, read-only (memory-mapped where loaded): shopper ``u``
    of ``users`` has the habits ``user_ptr[u]:user_ptr[u + 1]``, each a garment
    (``positions``), the days it was bought (``days[days_ptr[k]:days_ptr[k + 1]]``, sorted)
    and its last purchase (``last_us``)."""

    users: FrozenIds
    user_ptr: np.ndarray
    positions: np.ndarray
    days_ptr: np.ndarray
    days: np.ndarray
    last_us: np.ndarray

    def of(self, user_id: str) -> range:
        """The habits of ``user_id`` (an empty range for a shopper without any)."""
        row = self.users.index_of(user_id)
        return range(0) if row < 0 else range(int(self.user_ptr[row]), int(self.user_ptr[row + 1]))

    def key_days(self, key: int) -> np.ndarray:
        return np.asarray(self.days[self.days_ptr[key] : self.days_ptr[key + 1]])


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
        saved: SavedHabits | None = None,
        new_users: int = 0,
    ) -> None:
        self._category = category_codes  # catalog position -> category code
        # The habits of a saved base (shared by a pod's workers), and those of shoppers who
        # bought since, whole: a shopper in ``_habits`` is looked up there only.
        self._saved = saved
        self._days = days or {}  # (user, position) -> the separate days it was bought, sorted
        self._last_us = last_us or {}  # (user, position) -> its last purchase
        self._habits = habits or {}  # user -> positions bought, ascending
        self._new_users = new_users  # shoppers in ``_habits`` but not in ``saved``
        # Intervals in days between consecutive purchases of one garment by one shopper: per
        # category, and over all categories last.
        self._gaps = gaps or [Counter() for _ in range(n_categories + 1)]
        overall = _median(self._gaps[-1]) if self._gaps[-1] else DEFAULT_CYCLE_DAYS
        cycle = [_median(c) if c else overall for c in self._gaps[:-1]]
        self.category_cycle_days = np.maximum(np.asarray(cycle, dtype=np.float64), 1.0)

    def __len__(self) -> int:
        """Shoppers with at least one habit."""
        if self._saved is None:
            return len(self._habits)
        return len(self._saved.users) + self._new_users

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
        new_users = self._new_users
        category = catalog.category_codes
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            user, position = str(distinct_users[codes[start]]), int(positions[start])
            if user not in habits:  # first purchase since the saved base: copy them over
                new_users += self._copy_saved(user, days, last_us, habits)
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
        return RepurchaseStats(category, len(catalog.categories), days, last_us, habits, gaps,
                               self._saved, new_users)  # fmt: skip

    def _copy_saved(
        self,
        user: str,
        days: dict[tuple[str, int], np.ndarray],
        last_us: dict[tuple[str, int], int],
        habits: dict[str, tuple[int, ...]],
    ) -> int:
        """Copies ``user``'s saved habits into the dicts; 1 if they had none saved."""
        saved = self._saved
        if saved is None or not (found := saved.of(user)):
            return 1
        for k in found:
            key = (user, int(saved.positions[k]))
            days[key] = saved.key_days(k)
            last_us[key] = int(saved.last_us[k])
        habits[user] = tuple(saved.positions[found.start : found.stop].tolist())
        return 0

    def save(self, directory: Path) -> None:
        """Writes these statistics as ``repurchase-*.npy`` arrays into ``directory``: no
        pickle, and :meth:`load` maps them."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        saved = self._saved
        users = [u for u in (saved.users.ids.tolist() if saved else []) if u not in self._habits]
        # Sorted only so that the same statistics always make the same files (FrozenIds
        # indexes each shopper by its place in this list, whatever the order).
        users = sorted([*users, *self._habits], key=str.encode)
        positions, user_ptr, all_days, last_us = [], [0], [], []
        for user in users:
            if user in self._habits:
                for p in self._habits[user]:
                    positions.append(p)
                    all_days.append(self._days[(user, p)])
                    last_us.append(self._last_us[(user, p)])
            else:
                assert saved is not None
                found = saved.of(user)
                positions.extend(saved.positions[found.start : found.stop].tolist())
                all_days.extend(saved.key_days(k) for k in found)
                last_us.extend(saved.last_us[found.start : found.stop].tolist())
            user_ptr.append(len(positions))
        FrozenIds.of(users).save(directory, "repurchase-users")  # index = place in ``users``
        gaps = [(c, gap, n) for c, counts in enumerate(self._gaps) for gap, n in counts.items()]
        arrays = {
            "user-ptr": np.asarray(user_ptr, dtype=np.int64),
            "positions": np.asarray(positions, dtype=np.int64),
            "days-ptr": np.cumsum([0, *map(len, all_days)]).astype(np.int64),
            "days": np.concatenate(all_days).astype(np.int64)
            if all_days
            else np.empty(0, np.int64),
            "last-us": np.asarray(last_us, dtype=np.int64),
            "gaps": np.asarray(gaps, dtype=np.int64).reshape(-1, 3),
        }
        for name, values in arrays.items():
            np.save(Path(directory) / f"repurchase-{name}.npy", values)

    @classmethod
    def load(cls, directory: Path, catalog: Catalog) -> RepurchaseStats:
        """The statistics :meth:`save` wrote, for the same catalog, memory-mapped."""

        def array(name: str) -> np.ndarray:
            return mapped(Path(directory) / f"repurchase-{name}.npy")

        saved = SavedHabits(FrozenIds.load(directory, "repurchase-users"), array("user-ptr"),
                            array("positions"), array("days-ptr"), array("days"),
                            array("last-us"))  # fmt: skip
        gaps = [Counter() for _ in range(len(catalog.categories) + 1)]
        for category, gap, count in array("gaps").tolist():
            gaps[category][gap] = count
        return cls(catalog.category_codes, len(catalog.categories), gaps=gaps, saved=saved)

    def scores(self, user_id: str, at_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(catalog positions, scores in [0, 1]) of the shopper's habits at time ``at_us``."""
        positions = self._habits.get(user_id)
        if positions is not None:
            keys = [(user_id, p) for p in positions]
            days = np.array([len(self._days[k]) for k in keys], dtype=np.float64)
            first = np.array([self._days[k][0] for k in keys], dtype=np.int64)
            last_us = np.array([self._last_us[k] for k in keys], dtype=np.int64)
        elif self._saved is not None and (found := self._saved.of(user_id)):
            span = slice(found.start, found.stop)
            starts = np.asarray(self._saved.days_ptr[found.start : found.stop + 1])
            positions = np.asarray(self._saved.positions[span])
            days = np.diff(starts).astype(np.float64)
            first = np.asarray(self._saved.days[starts[:-1]], dtype=np.int64)
            last_us = np.asarray(self._saved.last_us[span], dtype=np.int64)
        else:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
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
