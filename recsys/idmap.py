"""Stable maps between external ids (strings) and dense matrix indexes.

An id keeps its index for the life of the map: new ids are appended, never
renumbered, so factors and index vectors trained earlier stay aligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd


class IdMap:
    """Append-only id <-> index mapping backed by a pandas Index (vectorised lookups)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        values = pd.unique(pd.Series(list(ids), dtype=object))
        self._ids = np.asarray(values, dtype=object)
        self._index = pd.Index(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def lookup(self, external_ids: Iterable[str] | pd.Series | np.ndarray) -> np.ndarray:
        """Indexes of ``external_ids``; -1 where unknown."""
        return self._index.get_indexer(pd.Index(np.asarray(list(external_ids), dtype=object)))

    def index_of(self, external_id: str) -> int:
        """Index of one id, or -1."""
        try:
            return int(self._index.get_loc(external_id))
        except KeyError:
            return -1

    def extend(self, external_ids: Iterable[str] | pd.Series) -> np.ndarray:
        """Appends unseen ids (first-seen order); returns the indexes of all given ids."""
        values = pd.Series(np.asarray(list(external_ids), dtype=object))
        new = pd.unique(values[self._index.get_indexer(values) < 0])
        if len(new):
            self._ids = np.concatenate([self._ids, np.asarray(new, dtype=object)])
            self._index = pd.Index(self._ids)
        return self.lookup(values)

    def save(self, path: Path) -> None:
        Path(path).write_text("\n".join(map(str, self._ids)) + ("\n" if len(self._ids) else ""))

    @classmethod
    def load(cls, path: Path) -> IdMap:
        text = Path(path).read_text()
        return cls(text.splitlines())
