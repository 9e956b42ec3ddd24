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
