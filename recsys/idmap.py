"""Stable maps between external ids (strings) and dense matrix indexes.

An id keeps its index for the life of the map: new ids are appended, never
renumbered, so factors and index vectors trained earlier stay aligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd


def as_id_strings(values: pd.Series) -> pd.Series:
    """Ids as strings, the one form every table compares them in: 12, 12.0 (an integer
    column that pandas read as floats because of a gap) and "12" all become "12". Missing
    values stay missing."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and bool((whole == np.floor(whole)).all()):
            values = values.astype("Int64")
    if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        strings = values.map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v))
    else:
        strings = values.astype(str).where(values.notna())
    return strings.astype(object)


def _distinct(
    external_ids: Iterable[str] | pd.Series | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct ids in first-seen order): ``ids[codes]`` rebuilds the input, and code
    -1 marks a missing id. Factorising first keeps lookups of millions of events (often
    Arrow-backed strings) to one pass, with hash lookups of the few distinct ids only."""
    if not isinstance(external_ids, (pd.Series, pd.Index, np.ndarray)):
        external_ids = np.asarray(list(external_ids), dtype=object)
    codes, uniques = pd.factorize(external_ids)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _expand(codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.append(positions, -1)[codes]  # code -1 (a missing id) -> -1


def index_lookup(
    index: pd.Index, external_ids: Iterable[str] | pd.Series | np.ndarray
) -> np.ndarray:
    """Positions of ``external_ids`` in ``index``; -1 where absent."""
    codes, uniques = _distinct(external_ids)
    return _expand(codes, index.get_indexer(uniques))


class IdMap:
    """Append-only id <-> index mapping backed by a pandas Index (vectorised lookups)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = _distinct(ids)[1]
        self._index = pd.Index(self._ids, dtype=object)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def lookup(self, external_ids: Iterable[str] | pd.Series | np.ndarray) -> np.ndarray:
        """Indexes of ``external_ids``; -1 where unknown."""
        return index_lookup(self._index, external_ids)

    def index_of(self, external_id: str) -> int:
        """Index of one id, or -1."""
        try:
            return int(self._index.get_loc(external_id))
        except KeyError:
            return -1

    def extend(self, external_ids: Iterable[str] | pd.Series | np.ndarray) -> np.ndarray:
        """Appends unseen ids (first-seen order); returns the indexes of all given ids."""
        codes, uniques = _distinct(external_ids)
        positions = self._index.get_indexer(uniques)
        new = positions < 0
        if new.any():
            positions[new] = len(self._ids) + np.arange(int(new.sum()))
            self._ids = np.concatenate([self._ids, uniques[new]])
            self._index = pd.Index(self._ids, dtype=object)
        return _expand(codes, positions)

    def save(self, path: Path) -> None:
        Path(path).write_text("\n".join(map(str, self._ids)) + ("\n" if len(self._ids) else ""))

    @classmethod
    def load(cls, path: Path) -> IdMap:
        text = Path(path).read_text()
        return cls(text.splitlines())


class FrozenIds:
    """A read-only :class:`IdMap` held in two arrays: the ids as sorted UTF-8 bytes and the
    index of each. Lookups are binary searches. Saved as ``.npy`` files and loaded memory-
    mapped, one copy of a map of millions of ids serves every process that maps it (a pandas
    Index of Python strings costs each process about 100 bytes an id)."""

    def __init__(self, sorted_ids: np.ndarray, index: np.ndarray) -> None:
        self._sorted = sorted_ids  # dtype S<width>, ascending
        self._index = index  # int64: the map's index of each sorted id
        self._ids: np.ndarray | None = None

    @classmethod
    def of(cls, ids: Iterable[str] | np.ndarray) -> FrozenIds:
        """The map of ``ids`` (distinct, in index order)."""
        encoded = [str(i).encode() for i in np.asarray(list(ids) if not isinstance(ids, np.ndarray)
                                                       else ids, dtype=object)]  # fmt: skip
        if any(e.endswith(b"\0") for e in encoded):
            raise ValueError("an id ending in a NUL character cannot be held in a FrozenIds")
        width = max((len(e) for e in encoded), default=1) or 1
        raw = np.array(encoded, dtype=f"S{width}")
        order = np.argsort(raw, kind="stable")
        if len(raw) > 1 and bool((raw[order][1:] == raw[order][:-1]).any()):
            raise ValueError("ids must be distinct")
        return cls(raw[order], order.astype(np.int64))

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, external_id: object) -> bool:
        return isinstance(external_id, str) and self.index_of(external_id) >= 0

    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (decoded once, then kept)."""
        if self._ids is None:
            ids = np.empty(len(self), dtype=object)
            ids[self._index] = [b.decode() for b in self._sorted.tolist()]
            self._ids = ids
        return self._ids

    def _positions(self, encoded: list[bytes]) -> np.ndarray:
        """The index of each id (UTF-8 encoded), -1 where absent. Queries take the stored
        ids' width: a search across two widths would convert the whole sorted array."""
        if not len(self._sorted):
            return np.full(len(encoded), -1, dtype=np.int64)
        width = self._sorted.dtype.itemsize
        fits = np.array([len(e) <= width for e in encoded], dtype=bool)
        queries = np.array(encoded, dtype=self._sorted.dtype)  # longer ones cut: see ``fits``
        at = np.minimum(np.searchsorted(self._sorted, queries), len(self._sorted) - 1)
        return np.where(fits & (self._sorted[at] == queries), self._index[at], -1)

    def index_of(self, external_id: str) -> int:
        encoded = external_id.encode()
        if not len(self._sorted) or len(encoded) > self._sorted.dtype.itemsize:
            return -1
        at = int(self._sorted.searchsorted(encoded))
        return (
            int(self._index[at]) if at < len(self._sorted) and self._sorted[at] == encoded else -1
        )

    def lookup(self, external_ids: Iterable[str] | pd.Series | np.ndarray) -> np.ndarray:
        codes, uniques = _distinct(external_ids)
        return _expand(codes, self._positions([str(u).encode() for u in uniques.tolist()]))

    def save(self, directory: Path, name: str) -> None:
        np.save(Path(directory) / f"{name}-sorted.npy", self._sorted)
        np.save(Path(directory) / f"{name}-index.npy", self._index)

    @classmethod
    def load(cls, directory: Path, name: str) -> FrozenIds:
        """Memory-mapped, read-only."""
        return cls(
            mapped(Path(directory) / f"{name}-sorted.npy"),
            mapped(Path(directory) / f"{name}-index.npy"),
        )


def mapped(path: Path) -> np.ndarray:
    """The array saved at ``path``, memory-mapped read-only, as a plain ndarray view: the
    ``np.memmap`` subclass costs microseconds on every element read."""
    return np.asarray(np.load(path, mmap_mode="r"))
