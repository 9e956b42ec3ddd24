"""The garment catalog: a table of garments stored in SQLite.

Rows are validated on the way in; ``Catalog`` keeps them in a DataFrame whose
row order is the garment's dense index everywhere in ``recsys``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from contextlib import closing
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from drape.recsys.idmap import as_id_strings, index_lookup

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
    "replenishable",
)
# Every column but the id may be absent (a product export rather than a fashion feed):
# these values stand in. A missing category puts every garment in one, "".
DEFAULTS: dict[str, object] = {
    "title": "",
    "category": "",
    "price_minor": 0,
    "currency": "",
    "in_stock": True,
    "colour": "",
    "pattern": "",
    "image_uri": "",
    # Bought again and again (socks, basics, cosmetics): the repurchase channel may propose
    # a garment of such a category to a shopper who bought it, when it is due again.
    "replenishable": False,
}
_TEXT = ("title", "category", "currency", "colour", "pattern", "image_uri")


class Catalog:
    """Garments in a fixed order; position ``i`` is garment ``i``'s dense index."""

    def __init__(self, frame: pd.DataFrame) -> None:
        if "garment_id" not in frame.columns:
            raise ValueError(f"catalog has no garment_id column (columns: {list(frame.columns)})")
        frame = frame.reset_index(drop=True)
        frame = frame.assign(**{c: v for c, v in DEFAULTS.items() if c not in frame.columns})
        frame = frame.loc[:, list(COLUMNS)]
        missing_id = frame["garment_id"].isna()
        if missing_id.any():
            rows = np.flatnonzero(missing_id)[:5].tolist()
            raise ValueError(f"catalog rows {rows} have no garment_id")
        frame["garment_id"] = as_id_strings(frame["garment_id"])
        if frame["garment_id"].duplicated().any():
            dupes = frame.loc[frame["garment_id"].duplicated(), "garment_id"].head(5).tolist()
            raise ValueError(f"catalog has duplicate garment ids, e.g. {dupes}")
        # Absent text is empty text: a garment without a category joins the "" category.
        for column in _TEXT:
            frame[column] = frame[column].fillna("").astype(str)
        for column in ("in_stock", "replenishable"):
            frame[column] = frame[column].fillna(DEFAULTS[column]).astype(bool)
        frame["price_minor"] = (
            pd.to_numeric(frame["price_minor"], errors="coerce").fillna(0).astype(np.int64)
        )
        self.frame = frame
        self.ids: np.ndarray = frame["garment_id"].to_numpy(dtype=object)
        self._index = pd.Index(self.ids)
        self.in_stock: np.ndarray = frame["in_stock"].to_numpy(dtype=bool)
        self.replenishable: np.ndarray = frame["replenishable"].to_numpy(dtype=bool)
        self.category_codes, self.categories = pd.factorize(frame["category"], sort=True)
        # Plain per-column lists: row lookups on the serving path avoid pandas indexing.
        self._columns = {c: frame[c].tolist() for c in COLUMNS}

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the garments and all their fields in order: the same in every process
        that loads the same catalog, wherever its file came from."""
        rows = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        return hashlib.sha256(rows.tobytes()).hexdigest()[:16]

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
                self.frame.astype({"in_stock": int, "replenishable": int}).to_sql(
                    "garments", db, index=False
                )
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
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            # Catalogs written before a column existed load with its default.
            present = {row[1] for row in db.execute("PRAGMA table_info(garments)")}
            wanted = [c for c in COLUMNS if c in present]
            frame = pd.read_sql_query(f"SELECT {', '.join(wanted)} FROM garments", db)
        return cls(frame)
