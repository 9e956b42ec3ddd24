"""What the recommend service derives from the event log, updated by new events only.

A full build reads every stored event once: the interaction matrix, each user's latest
garments, popularity, the repeat policy's exclusions and the repurchase habits. After that,
:meth:`LiveLog.add` takes only the events stored since the last read, in time proportional
to their number, not to the log's size:

- Strengths are kept *anchored*: decayed to one fixed time (the anchor) rather than to now.
  An event's anchored strength never changes, so new events' strengths simply add up, and
  one factor ``0.5 ** ((now - anchor) / half_life)`` turns the sums into today's.
- The matrix is a base (rows and columns of the last full build) and the entries added since
  (a small matrix of their own, rebuilt from their triplets at each read). A user's row is
  the two rows merged; the column sums are the base's plus the new entries'.
- Users and garments seen since the base get rows and columns after the base's, in a map of
  their own: the base's map, which may hold millions of ids, is never rebuilt.
- Each user's latest garments, exclusions and habits change only for the users in the new
  events.

Each read rebuilds the small matrix of added entries from their triplets, so its cost grows
with the entries added since the base: at ``COMPACT_AT`` of them they are merged into a new
base anchored at that read, a cost in proportion to the whole matrix paid once per that many
events. Nothing is read from the store again until a new trained version or catalog asks for
a full build.

Up to float rounding the result equals a full build over the same events. One case is
approximated: an event that occurred before the newest one already known for its user
(delivered late) joins the end of that user's latest garments instead of its place in time;
the next full build puts it there. Such events are counted (``late_events``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from drape.recsys.catalog import Catalog
from drape.recsys.coded import CodedEvents
from drape.recsys.idmap import FrozenIds, IdMap, mapped
from drape.recsys.interactions import (
    RECENT_ITEMS,
    InteractionMatrix,
    anchored_strength,
    decay_factor,
    decayed,
)
from drape.recsys.ranking import excluded_by_user
from drape.recsys.repurchase import RepurchaseStats
from drape.recsys.sequential import timelines

# Added entries merged into the base once there are this many (a read rebuilds their matrix:
# 18 ms at 500,000; the merge itself took 0.9 s into a base of 1M events).
COMPACT_AT = 500_000
_EMPTY_COLS = np.empty(0, dtype=np.int32)
_EMPTY_VALUES = np.empty(0, dtype=np.float32)
# The layout :meth:`LiveLog.save` writes; a saved base of another layout is not read.
SAVED_FORMAT = 1


class LayeredIds:
    """An :class:`IdMap`'s read side over a base map and the ids appended since."""

    def __init__(self, base: IdMap | FrozenIds, extra: IdMap) -> None:
        self.base, self.extra = base, extra

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([self.base.ids, self.extra.ids]) if len(self.extra) else self.base.ids

    def index_of(self, external_id: str) -> int:
        index = self.base.index_of(external_id)
        if index >= 0:
            return index
        index = self.extra.index_of(external_id)
        return len(self.base) + index if index >= 0 else -1

    def lookup(self, external_ids: Sequence[str] | pd.Series | np.ndarray) -> np.ndarray:
        found = self.base.lookup(external_ids)
        missing = found < 0
        if missing.any() and len(self.extra):
            extra = self.extra.lookup(np.asarray(external_ids, dtype=object)[missing])
            found[missing] = np.where(extra >= 0, len(self.base) + extra, -1)
        return found

    def extended(self, external_ids: pd.Series | np.ndarray) -> tuple[LayeredIds, np.ndarray]:
        """A copy with the unseen ids appended, and every given id's index. ``self`` is left
        as it was (requests may be reading it)."""
        found = self.base.lookup(external_ids)
        missing = found < 0
        extra = self.extra
        if missing.any():
            extra = IdMap(self.extra.ids)
            found[missing] = len(self.base) + extra.extend(
                np.asarray(external_ids, dtype=object)[missing]
            )
        return LayeredIds(self.base, extra), found


class OverlayMap(Mapping[str, np.ndarray]):
    """A base mapping with some keys replaced or added (read-only)."""

    def __init__(self, base: Mapping[str, np.ndarray], extra: Mapping[str, np.ndarray]) -> None:
        self.base, self.extra = base, extra

    def __getitem__(self, key: str) -> np.ndarray:
        return self.extra[key] if key in self.extra else self.base[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.extra
        yield from (k for k in self.base if k not in self.extra)

    def __len__(self) -> int:
        return len(self.base) + sum(1 for k in self.extra if k not in self.base)


class RowExclusions(Mapping[str, np.ndarray]):
    """The repeat policy's garments per user (see :func:`excluded_by_user`), stored as one
    array over the rows of a user map: a dict of a small array per user cost about 290 bytes
    a user, 200 MB at 700,000 buyers, in every worker."""

    def __init__(self, users: IdMap | FrozenIds, indptr: np.ndarray, positions: np.ndarray) -> None:
        self.users, self.indptr, self.positions = users, indptr, positions

    @classmethod
    def build(
        cls, users: IdMap | FrozenIds, rows: np.ndarray, positions: np.ndarray
    ) -> RowExclusions:
        """From (user row, catalog position) pairs: sorted and distinct per row."""
        keep = (rows >= 0) & (positions >= 0)
        rows, positions = rows[keep].astype(np.int64), positions[keep].astype(np.int64)
        # One int64 key per pair: sorted as (row, position), at a fraction of the time
        # np.unique(axis=1) takes.
        span = int(positions.max()) + 1 if len(positions) else 1
        pairs = np.unique(rows * span + positions)
        counts = np.bincount(pairs // span, minlength=len(users))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(users, indptr, pairs % span)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        return rows, self.positions

    def __getitem__(self, user: str) -> np.ndarray:
        row = self.users.index_of(user)
        if row < 0 or row + 1 >= len(self.indptr) or self.indptr[row] == self.indptr[row + 1]:
            raise KeyError(user)
        return self.positions[self.indptr[row] : self.indptr[row + 1]]

    def __iter__(self) -> Iterator[str]:
        yield from self.users.ids[np.flatnonzero(np.diff(self.indptr))].tolist()

    def __len__(self) -> int:
        return int(np.count_nonzero(np.diff(self.indptr)))


class LayeredInteractions:
    """:class:`InteractionMatrix`'s serving side (rows, column sums, latest garments) over a
    base matrix and the entries added since, both anchored, times one decay factor."""

    def __init__(
        self,
        base: InteractionMatrix,
        added: sp.csr_matrix,
        users: LayeredIds,
        items: LayeredIds,
        recent: Mapping[int, np.ndarray],
        column_sums: np.ndarray,
        scale: float,
    ) -> None:
        self.base, self.added = base, added
        self.users, self.items = users, items
        self._recent = recent
        self._column_sums = column_sums
        self.scale = scale

    def column_sums(self) -> np.ndarray:
        return self._column_sums

    def user_entries(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        index = self.users.index_of(user_id)
        if index < 0:
            return _EMPTY_COLS, _EMPTY_VALUES
        parts = [_row(m, index) for m in (self.base.matrix, self.added)]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return _EMPTY_COLS, _EMPTY_VALUES
        if len(parts) == 1:
            cols, values = parts[0]
        else:  # an entry in both: one column, summed
            cols, inverse = np.unique(np.concatenate([parts[0][0], parts[1][0]]),
                                      return_inverse=True)  # fmt: skip
            values = np.bincount(inverse, np.concatenate([parts[0][1], parts[1][1]]))
        return cols.astype(np.int32), (values * self.scale).astype(np.float32)

    def user_row(self, user_id: str) -> sp.csr_matrix:
        cols, values = self.user_entries(user_id)
        return sp.csr_matrix(
            (values, cols, np.array([0, len(cols)])), shape=(1, len(self.items)), dtype=np.float32
        )

    def recent_items(self, user_id: str) -> np.ndarray:
        index = self.users.index_of(user_id)
        if index < 0:
            return _EMPTY_COLS
        if index in self._recent:
            return self._recent[index]
        return self.base.recent_items(user_id) if index < len(self.base.users) else _EMPTY_COLS


def _row(matrix: sp.csr_matrix, index: int) -> tuple[np.ndarray, np.ndarray]:
    if index >= matrix.shape[0]:
        return _EMPTY_COLS, _EMPTY_VALUES
    span = slice(matrix.indptr[index], matrix.indptr[index + 1])
    return matrix.indices[span], matrix.data[span].astype(np.float64)


@dataclass(frozen=True)
class LiveSnapshot:
    """What one read of the log gives the rankers: consistent, and never changed after."""

    interactions: LayeredInteractions
    popularity: np.ndarray  # decayed strength per catalog position, at ``now_us``
    excluded: Mapping[str, np.ndarray]
    repurchase: RepurchaseStats
    events: int  # events read in all
    now_us: int


class LiveLog:
    """The running aggregates of an event log (see the module's docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        events: pd.DataFrame | CodedEvents,
        weights: Mapping[str, float],
        half_life_days: float,
        exclude_after: Sequence[str],
        now_us: int,
        users: np.ndarray | None = None,
        items: np.ndarray | None = None,
    ) -> None:
        """A full build over ``events`` (storage order; coded, see :mod:`drape.recsys.coded`,
        for a log too large to hold as strings), decayed to ``now_us``; ``users`` and
        ``items`` (a trained version's ids, in index order) keep their indexes."""
        self._configure(catalog, weights, half_life_days, exclude_after)
        coded = events if isinstance(events, CodedEvents) else CodedEvents.of(events)
        user_map = IdMap(users if users is not None else ())
        item_map = IdMap(items if items is not None else ())
        # As InteractionMatrix.build numbers them: the distinct ids come first seen first.
        rows = user_map.extend(coded.users).astype(np.int32)[coded.user]
        cols = item_map.extend(coded.garments).astype(np.int32)[coded.garment]
        times = coded.occurred_at_us
        # Each step's temporaries let go before the next: at 20M events the log's codes alone
        # are 340 MB, and each array over its events 80-160 MB.
        adds = [name for name, weight in self.weights.items() if weight > 0]
        latest = _latest_by_row(rows, times, coded.of_types(adds), len(user_map))
        positions = catalog.positions(coded.garments).astype(np.int32)[coded.garment]
        bought = coded.of_types(self.exclude_after)
        excluded = RowExclusions.build(user_map, rows[bought], positions[bought])
        del bought
        strength = decayed(coded.weights(self.weights), times, half_life_days, now_us, now_us)
        known = positions >= 0
        if not known.all():  # copies only where some garments left the catalog
            positions, strength_known = positions[known], strength[known]
        else:
            strength_known = strength
        popularity = np.bincount(positions, weights=strength_known, minlength=len(catalog))
        del known, positions, strength_known
        strength = strength.astype(np.float32)  # as the matrix holds it
        base = InteractionMatrix.from_entries(rows, cols, strength, times, user_map, item_map)
        del rows, cols, strength
        self._set_base(base, latest, popularity, now_us)
        self.excluded_base = excluded
        self.repurchase = RepurchaseStats.fit(catalog, coded.frame(coded.of_types(("purchase",))))
        self.events = len(coded)

    def _configure(
        self,
        catalog: Catalog,
        weights: Mapping[str, float],
        half_life_days: float,
        exclude_after: Sequence[str],
    ) -> None:
        """What a built and a loaded log share before their base is set."""
        self.catalog = catalog
        self.weights = dict(weights)
        self.half_life_days = half_life_days
        self.exclude_after = tuple(exclude_after)
        self.events = 0  # events read in all
        self.late_events = 0
        self.compactions = 0  # merges of the added entries into a new base so far

    def _set_base(
        self, base: InteractionMatrix, latest: np.ndarray, popularity: np.ndarray, anchor_us: int
    ) -> None:
        self.base = base
        self.anchor_us = self.read_us = anchor_us
        self.latest_base = latest  # per base row: the newest kept event's time
        self.base_column_sums = base.column_sums()
        self.popularity = popularity  # per catalog position, anchored
        self.users = LayeredIds(base.users, IdMap())
        self.items = LayeredIds(base.items, IdMap())
        self.added = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
        self.recent: dict[int, np.ndarray] = {}
        self.latest: dict[int, int] = {}
        self.excluded_added: dict[str, np.ndarray] = {}
        self.events_since_base = 0

    # -- reads -------------------------------------------------------------------------
    def add(self, events: pd.DataFrame, now_us: int) -> None:
        """Adds the events stored since the last read (storage order), read at ``now_us``."""
        self.read_us = max(self.read_us, now_us)
        if events.empty:
            return
        strength = anchored_strength(
            events, self.weights, self.half_life_days, self.anchor_us, self.read_us
        )
        self.users, rows = self.users.extended(events["user_id"].to_numpy())
        self.items, cols = self.items.extended(events["garment_id"].to_numpy())
        keep = strength > 0  # the others give ids, never entries
        added_rows, added_cols, added_values = self.added
        self.added = (
            np.concatenate([added_rows, rows[keep]]),
            np.concatenate([added_cols, cols[keep]]),
            np.concatenate([added_values, strength[keep]]),
        )
        positions = self.catalog.positions(events["garment_id"])
        known = positions >= 0
        self.popularity = self.popularity + np.bincount(
            positions[known], weights=strength[known], minlength=len(self.catalog)
        )
        self._add_recent(rows[keep], cols[keep], events["occurred_at_us"].to_numpy()[keep])
        self._add_excluded(events)
        self.repurchase = self.repurchase.updated(self.catalog, events)
        self.events += len(events)
        self.events_since_base += len(events)
        if len(self.added[0]) >= COMPACT_AT:
            self.compact()

    def _add_recent(self, rows: np.ndarray, cols: np.ndarray, times: np.ndarray) -> None:
        """Each user's latest garments: the new timeline appended to the kept one."""
        rows_t, cols_t = timelines(rows, cols, times)
        if not len(rows_t):
            return
        recent, latest = dict(self.recent), dict(self.latest)
        distinct = np.unique(rows)
        known = np.array([latest.get(r, self._base_latest(r)) for r in distinct.tolist()],
                         dtype=np.int64)  # fmt: skip
        self.late_events += int((times < known[np.searchsorted(distinct, rows)]).sum())
        newest = pd.Series(times).groupby(rows).max()
        for row, at in zip(newest.index.tolist(), newest.to_numpy().tolist(), strict=True):
            latest[row] = max(at, latest.get(row, self._base_latest(row)))
        starts = np.flatnonzero(np.r_[True, rows_t[1:] != rows_t[:-1]])
        for start, end in zip(
            starts.tolist(), np.r_[starts[1:], len(rows_t)].tolist(), strict=True
        ):
            row = int(rows_t[start])
            kept = recent[row] if row in recent else self._base_recent(row)
            new = cols_t[start:end]
            if len(kept) and kept[-1] == new[0]:  # an immediate repeat: one entry
                new = new[1:]
            recent[row] = np.concatenate([kept, new]).astype(np.int32)[-RECENT_ITEMS:]
        self.recent, self.latest = recent, latest

    def _base_recent(self, row: int) -> np.ndarray:
        if row >= len(self.base.users) or self.base.recent is None:
            return _EMPTY_COLS
        kept = self.base.recent[row]
        return kept[kept >= 0]

    def _base_latest(self, row: int) -> int:
        return int(self.latest_base[row]) if row < len(self.latest_base) else np.iinfo(np.int64).min

    def _add_excluded(self, events: pd.DataFrame) -> None:
        fresh = excluded_by_user(self.catalog, events, self.exclude_after)
        if not fresh:
            return
        added = dict(self.excluded_added)
        for user, positions in fresh.items():
            before = added.get(user, self.excluded_base.get(user))
            added[user] = positions if before is None else np.union1d(before, positions)
        self.excluded_added = added

    # -- views -------------------------------------------------------------------------
    def snapshot(self, now_us: int | None = None) -> LiveSnapshot:
        """The rankers' inputs decayed to ``now_us`` (the last read's time by default)."""
        now_us = self.read_us if now_us is None else now_us
        scale = decay_factor(self.half_life_days, self.anchor_us, now_us)
        rows, cols, values = self.added
        shape = (len(self.users), len(self.items))
        added = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64)
        added.sum_duplicates()
        sums = np.zeros(shape[1])
        sums[: len(self.base_column_sums)] = self.base_column_sums
        sums += np.bincount(cols, weights=values, minlength=shape[1])
        interactions = LayeredInteractions(
            self.base, added, self.users, self.items, self.recent, sums * scale, scale
        )
        excluded = OverlayMap(self.excluded_base, self.excluded_added) if self.excluded_added else (
            self.excluded_base
        )  # fmt: skip
        return LiveSnapshot(interactions, self.popularity * scale, excluded, self.repurchase,
                            self.events, now_us)  # fmt: skip

    def compact(self) -> None:
        """Merges the added entries into a new base anchored at the last read."""
        view = self.snapshot(self.read_us)
        matrix = view.interactions
        n_users, n_items = len(self.users), len(self.items)
        base = self.base.matrix
        padded = sp.csr_matrix((base.data, base.indices, base.indptr),
                               shape=(base.shape[0], n_items))  # fmt: skip
        padded = sp.vstack([padded, sp.csr_matrix((n_users - base.shape[0], n_items))], "csr")
        merged = ((padded.astype(np.float64) + matrix.added) * matrix.scale).astype(np.float32)
        merged.sum_duplicates()
        recent = np.full((n_users, RECENT_ITEMS), -1, dtype=np.int32)
        if self.base.recent is not None:
            recent[: len(self.base.recent)] = self.base.recent
        for row, items in self.recent.items():
            recent[row] = -1
            recent[row, RECENT_ITEMS - len(items) :] = items
        latest = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
        latest[: len(self.latest_base)] = self.latest_base
        for row, at in self.latest.items():
            latest[row] = at
        users, items = IdMap(self.users.ids), IdMap(self.items.ids)
        rows, positions = self.excluded_base.pairs()  # base rows keep their index
        replaced = np.isin(rows, users.lookup(list(self.excluded_added)))
        added = list(self.excluded_added.items())
        rows = np.concatenate(
            [rows[~replaced], *(np.full(len(p), users.index_of(u)) for u, p in added)]
        )
        positions = np.concatenate([positions[~replaced], *(p for _, p in added)])
        excluded = RowExclusions.build(users, rows.astype(np.int64), positions.astype(np.int64))
        self._set_base(
            InteractionMatrix(merged, users, items, recent), latest, view.popularity, self.read_us
        )
        self.excluded_base = excluded
        self.compactions += 1

    # -- a base saved for other processes -----------------------------------------------
    def save(self, directory: Path, **about: object) -> None:
        """Writes the base into ``directory`` (new or empty) as ``.npy`` arrays and a
        ``manifest.json`` that also holds ``about`` (JSON values). Only a base with nothing
        added since can be saved: right after a full build or :meth:`compact`."""
        if len(self.added[0]) or self.recent or self.excluded_added or self.events_since_base:
            raise ValueError("events were added since the base; compact() before saving")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        FrozenIds.of(self.base.users.ids).save(directory, "users")
        FrozenIds.of(self.base.items.ids).save(directory, "items")
        matrix = self.base.matrix
        arrays = {
            "matrix-data": matrix.data, "matrix-indices": matrix.indices,
            "matrix-indptr": matrix.indptr, "latest": self.latest_base,
            "column-sums": self.base_column_sums, "popularity": self.popularity,
            "excluded-indptr": self.excluded_base.indptr,
            "excluded-positions": self.excluded_base.positions,
        }  # fmt: skip
        if self.base.recent is not None:
            arrays["recent"] = self.base.recent
        for name, values in arrays.items():
            np.save(directory / f"{name}.npy", np.ascontiguousarray(values))
        self.repurchase.save(directory)
        manifest = {
            "format": SAVED_FORMAT, "shape": list(matrix.shape), "catalog": len(self.catalog),
            "weights": self.weights, "half_life_days": self.half_life_days,
            "exclude_after": list(self.exclude_after), "anchor_us": self.anchor_us,
            "read_us": self.read_us, "events": self.events, "late_events": self.late_events,
            "about": about,
        }  # fmt: skip
        (directory / "manifest.json").write_text(json.dumps(manifest))

    @staticmethod
    def saved_about(directory: Path) -> dict[str, object]:
        """The ``about`` a saved base was written with."""
        return dict(json.loads((Path(directory) / "manifest.json").read_text())["about"])

    @classmethod
    def load(
        cls,
        directory: Path,
        catalog: Catalog,
        weights: Mapping[str, float],
        half_life_days: float,
        exclude_after: Sequence[str],
    ) -> LiveLog:
        """A saved base, its arrays memory-mapped read-only: every process that loads one
        directory shares its pages. Raises ValueError when it was saved for other settings
        or another catalog's size."""
        directory = Path(directory)
        manifest = json.loads((directory / "manifest.json").read_text())
        expected = {
            "format": SAVED_FORMAT, "catalog": len(catalog), "weights": dict(weights),
            "half_life_days": half_life_days, "exclude_after": list(exclude_after),
        }  # fmt: skip
        differs = [k for k, v in expected.items() if manifest.get(k) != v]
        if differs:
            raise ValueError(f"the base saved in {directory} differs in {', '.join(differs)}")

        def array(name: str) -> np.ndarray:
            return mapped(directory / f"{name}.npy")

        users, items = FrozenIds.load(directory, "users"), FrozenIds.load(directory, "items")
        shape = tuple(manifest["shape"])
        matrix = sp.csr_matrix(
            (array("matrix-data"), array("matrix-indices"), array("matrix-indptr")), shape=shape
        )
        recent = array("recent") if (directory / "recent.npy").exists() else None
        live = cls.__new__(cls)  # not a build: configured as __init__ does, then the base set
        live._configure(catalog, weights, half_life_days, exclude_after)
        live._set_base(InteractionMatrix(matrix, users, items, recent), array("latest"),
                       array("popularity"), int(manifest["anchor_us"]))  # fmt: skip
        live.base_column_sums = array("column-sums")
        live.read_us = int(manifest["read_us"])
        live.excluded_base = RowExclusions(
            users, array("excluded-indptr"), array("excluded-positions")
        )
        live.repurchase = RepurchaseStats.load(directory, catalog)
        live.events, live.late_events = int(manifest["events"]), int(manifest["late_events"])
        return live


def _latest_by_row(
    rows: np.ndarray, times: np.ndarray, kept: np.ndarray, n_rows: int
) -> np.ndarray:
    """Per user row, the time of their newest event that adds strength (``kept``)."""
    latest = np.full(n_rows, np.iinfo(np.int64).min, dtype=np.int64)
    keep = kept & (rows >= 0)
    if keep.all():
        np.maximum.at(latest, rows, times)
    elif keep.any():
        np.maximum.at(latest, rows[keep], times[keep])
    return latest
