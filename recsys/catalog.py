"""The garment catalog: a table of garments stored in SQLite.

Rows are validated on the way in; ``Catalog`` keeps them in a DataFrame whose
row order is the garment's dense index everywhere in ``recsys``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from drape.recsys.idmap import index_lookup

COLUMNS = (
    "garment_id",
    "title",
    "category",
    "price_minor",
    "currency",
    "in_stock",
    "colour",
    "pattern",
    "image_uri",
)


class Catalog:
    """Garments in a fixed order; position ``i`` is garment ``i``'s dense index."""

    def __init__(self, frame: pd.DataFrame) -> None:
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"catalog is missing columns {missing}")
        frame = frame.loc[:, list(COLUMNS)].reset_index(drop=True)
        if frame["garment_id"].duplicated().any():
            dupes = frame.loc[frame["garment_id"].duplicated(), "garment_id"].head(5).tolist()
            raise ValueError(f"catalog has duplicate garment ids, e.g. {dupes}")
        self.frame = frame
        self.ids: np.ndarray = frame["garment_id"].to_numpy(dtype=object)
        self._index = pd.Index(self.ids)
        self.in_stock: np.ndarray = frame["in_stock"].to_numpy(dtype=bool)
        self.category_codes, self.categories = pd.factorize(frame["category"], sort=True)
        # Plain per-column lists: row lookups on the serving path avoid pandas indexing.
        self._columns = {c: frame[c].tolist() for c in COLUMNS}

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, garment_id: object) -> bool:
        return garment_id in self._index

    def positions(self, garment_ids: Iterable[str]) -> np.ndarray:
        """Dense indexes of ``garment_ids``; -1 for ids not in the catalog."""
        return index_lookup(self._index, garment_ids)

    def category_mask(self, categories: Iterable[str]) -> np.ndarray:
        """Boolean mask over garments in any of ``categories``."""
        wanted = self.categories.get_indexer(list(categories))
        return np.isin(self.category_codes, wanted[wanted >= 0])

    def row(self, position: int) -> dict[str, object]:
        """One garment's fields by dense index."""
        return {c: values[position] for c, values in self._columns.items()}

    def save(self, path: Path) -> None:
        """Writes the catalog atomically (a reader never sees half a catalog)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            with sqlite3.connect(tmp) as db:
                self.frame.astype({"in_stock": int}).to_sql("garments", db, index=False)
                db.execute("CREATE UNIQUE INDEX garments_id ON garments (garment_id)")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Catalog:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no catalog at {path}")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            frame = pd.read_sql_query(f"SELECT {', '.join(COLUMNS)} FROM garments", db)
        frame["in_stock"] = frame["in_stock"].astype(bool)
        return cls(frame)
