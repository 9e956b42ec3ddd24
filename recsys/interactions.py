"""Implicit feedback: event strength (weighted by type, decayed with age) and the
users x items confidence matrix that collaborative filtering trains on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from drape.recsys.idmap import IdMap
from drape.recsys.sequential import SequentialParams, SequentialRules, latest_items, timelines

US_PER_DAY = 86_400 * 1_000_000
# Latest items kept per user for the sequential channel (it reads at most this many).
RECENT_ITEMS = 20


def interaction_strength(
    events: pd.DataFrame,
    weights: Mapping[str, float],
    half_life_days: float,
    now_us: int,
) -> np.ndarray:
    """Confidence each event adds: ``weights[type] * 0.5 ** (age / half_life)``.

    Events of types missing from ``weights`` count zero; events from the future
    (clock skew) count as new. A ``strength`` column, when present (explicit
    ratings), multiplies the type weight.
    """
    return anchored_strength(events, weights, half_life_days, now_us, now_us)


def type_weights(types: pd.Series, weights: Mapping[str, float]) -> np.ndarray:
    """Each event type's weight (0 for a type ``weights`` does not name), as float64."""
    return types.map(weights).fillna(0.0).to_numpy(dtype=np.float64)


def anchored_strength(
    events: pd.DataFrame,
    weights: Mapping[str, float],
    half_life_days: float,
    anchor_us: int,
    read_us: int,
) -> np.ndarray:
    """Each event's strength decayed to ``anchor_us`` (grown, for events after it), events
    later than ``read_us`` (the clock when they were read) counting as read then. Strengths
    anchored at one time add up across reads, and ``0.5 ** ((now - anchor) / half_life)``
    turns their sum into :func:`interaction_strength`'s at ``now``."""
    type_weight = type_weights(events["type"], weights)
    if "strength" in events.columns:
        type_weight = type_weight * events["strength"].to_numpy(dtype=np.float64)
    return decayed(type_weight, events["occurred_at_us"].to_numpy(), half_life_days, anchor_us,
                   read_us)  # fmt: skip


def decayed(
    weight: np.ndarray, occurred_at_us: np.ndarray, half_life_days: float, anchor_us: int,
    read_us: int,
) -> np.ndarray:  # fmt: skip
    """:func:`anchored_strength` of events of these undecayed weights and times (worked out
    in place: one array of temporaries for a log of millions of events, not five)."""
    # As floats from the start: times in microseconds are exact in a float64 (below 2**53),
    # so their difference is the integer one.
    days = np.minimum(np.asarray(occurred_at_us, dtype=np.int64), read_us, dtype=np.float64)
    days -= anchor_us
    days /= US_PER_DAY
    days /= half_life_days
    np.exp2(days, out=days)
    days *= weight
    return days


def decay_factor(half_life_days: float, since_us: int, now_us: int) -> float:
    """How much a strength anchored at ``since_us`` has decayed by ``now_us``."""
    return float(np.exp2(-((now_us - since_us) / US_PER_DAY) / half_life_days))


@dataclass
class InteractionMatrix:
    """Users x items CSR of summed interaction strength, with the id maps that index it."""

    matrix: sp.csr_matrix
    users: IdMap
    items: IdMap
    # Each user's latest items (columns) in time order, newest last, -1 padded: the
    # queries of the sequential channel.
    recent: np.ndarray | None = None
    # The (user rows, item columns) timeline the matrix was built from (see
    # :func:`drape.recsys.sequential.timelines`); kept only when asked for (training).
    timeline: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        events: pd.DataFrame,
        weights: Mapping[str, float],
        half_life_days: float,
        now_us: int,
        users: IdMap | None = None,
        items: IdMap | None = None,
        keep_timeline: bool = False,
    ) -> InteractionMatrix:
        """Aggregates events into a CSR matrix (vectorised; duplicates are summed).

        Given maps are extended, never renumbered: a user or item keeps its row or
        column across rebuilds, and new ones are appended. Events whose strength
        is zero (impressions, ratings by default) do not create entries, but their
        users and items still get ids.
        """
        users = users if users is not None else IdMap()
        items = items if items is not None else IdMap()
        rows = users.extend(events["user_id"])
        cols = items.extend(events["garment_id"])
        strength = interaction_strength(events, weights, half_life_days, now_us)
        return cls.from_entries(rows, cols, strength, events["occurred_at_us"].to_numpy(),
                                users, items, keep_timeline)  # fmt: skip

    @classmethod
    def from_entries(
        cls,
        rows: np.ndarray,
        cols: np.ndarray,
        strength: np.ndarray,
        occurred_at_us: np.ndarray,
        users: IdMap,
        items: IdMap,
        keep_timeline: bool = False,
    ) -> InteractionMatrix:
        """From each event's row, column, strength and time (see :meth:`build`)."""
        keep = strength > 0
        if not keep.all():  # copies only where some events give no entry
            rows, cols = rows[keep], cols[keep]
            strength, occurred_at_us = strength[keep], occurred_at_us[keep]
        # The timeline first: its sort holds the most memory, and the matrix is not made yet.
        timeline = timelines(rows, cols, occurred_at_us)
        recent = latest_items(*timeline, len(users), RECENT_ITEMS)
        kept = timeline if keep_timeline else None
        del timeline
        matrix = sp.csr_matrix(
            (strength.astype(np.float32, copy=False), (rows, cols)),
            shape=(len(users), len(items)),
        )
        matrix.sum_duplicates()
        return cls(matrix, users, items, recent, kept)

    def sequential_rules(self, params: SequentialParams) -> SequentialRules:
        """Sequential rules over this matrix's columns, from the timeline it was built with."""
        if self.timeline is None:
            raise ValueError("the interaction matrix was built without keep_timeline=True")
        return SequentialRules.fit(*self.timeline, len(self.items), params)

    def column_sums(self) -> np.ndarray:
        """Each item's summed strength over all users (float64)."""
        return np.asarray(self.matrix.sum(axis=0, dtype=np.float64)).ravel()

    def recent_items(self, user_id: str) -> np.ndarray:
        """The user's latest item columns, newest last (empty for an unknown user)."""
        index = self.users.index_of(user_id)
        if index < 0 or self.recent is None or index >= len(self.recent):
            return np.empty(0, dtype=np.int32)
        row = self.recent[index]
        return row[row >= 0]

    def user_entries(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(item columns, strengths) of the user's row, without building a sparse row."""
        index = self.users.index_of(user_id)
        if index < 0 or index >= self.matrix.shape[0]:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
        span = slice(self.matrix.indptr[index], self.matrix.indptr[index + 1])
        return self.matrix.indices[span], self.matrix.data[span]

    def user_row(self, user_id: str) -> sp.csr_matrix:
        """The user's row (empty 1 x items for an unknown user)."""
        index = self.users.index_of(user_id)
        if index < 0:
            return sp.csr_matrix((1, len(self.items)), dtype=np.float32)
        return self.matrix[index]
