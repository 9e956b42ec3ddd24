"""Bring your own data: event logs and item tables from CSV or Parquet, validated.

``load_events`` reads an export of interactions, whatever its column names and time
format, into the event store's columns (``user_id``, ``garment_id``, ``type``,
``occurred_at_us``; optional ``basket_id``, ``strength``, ``rating``). ``load_items`` reads
an item table with any attributes into a :class:`Catalog` and, where it has text or
categories, item vectors. Both name the row, column and reason of every problem and refuse
the file rather than guess; ``drop_invalid`` skips the rows at fault instead, and says how many.

Rows are numbered from 1, the header not counted (in a CSV file, row N is line N + 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from drape.recsys.catalog import Catalog
from drape.recsys.idmap import as_id_strings
from drape.recsys.interactions import type_weights

# Accepted names for each column, compared lower-case with spaces and dashes as "_".
EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "user", "userid", "customer_id", "customer", "customerid",
                "shopper_id", "visitor_id", "visitorid", "client_id", "member_id"),
    "garment_id": ("garment_id", "item_id", "item", "itemid", "product_id", "product",
                   "productid", "article_id", "article", "sku", "stockcode", "movieid"),
    "occurred_at": ("occurred_at", "occurred_at_us", "timestamp", "time", "ts", "datetime", "date", "event_time",
                    "created_at", "order_date", "invoicedate", "t_dat", "event_timestamp"),
    "type": ("type", "event_type", "event", "action", "interaction", "behavior", "behaviour"),
    "weight": ("weight", "strength", "value", "confidence"),
    "basket_id": ("basket_id", "basket", "order_id", "order", "orderid", "session_id",
                  "session", "transaction_id", "transactionid", "invoice", "invoiceno",
                  "invoice_no"),
    "rating": ("rating", "stars", "score"),
}  # fmt: skip
ITEM_ALIASES: dict[str, tuple[str, ...]] = {
    "garment_id": EVENT_ALIASES["garment_id"],
    "category": ("category", "product_type", "product_group", "product_type_name",
                 "product_group_name", "department", "genre", "section", "class", "aisle"),
    "title": ("title", "name", "product_name", "prod_name", "description"),
    "replenishable": ("replenishable",),
    "in_stock": ("in_stock",),
}  # fmt: skip
# The --column names of the required columns.
SHORT = {"user_id": "user", "garment_id": "item", "occurred_at": "time"}
# How many problems an error lists one by one (all are counted).
LISTED = 20
# Dimensions of the item vectors made from text.
TEXT_DIMENSIONS = 64


@dataclass(frozen=True)
class Problem:
    row: int | None  # 1-based data row; None for the whole file or column
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        return f"{where}column {self.column!r}: {self.reason}"


class DataError(ValueError):
    """A file Drape will not read as it is; ``problems`` says where and why."""

    def __init__(self, path: Path | str, problems: Sequence[Problem], hint: str = "") -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = [f"{self.path}: {len(self.problems):,} problem(s)"]
        lines += [f"  {p}" for p in self.problems[:LISTED]]
        if len(self.problems) > LISTED:
            lines.append(f"  ... and {len(self.problems) - LISTED:,} more")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


@dataclass
class Loaded:
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV, TSV or Parquet file (compressed CSV too), every column as read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
            if ".txt" in suffixes:  # the separator is guessed
                return pd.read_csv(path, sep=None, engine="python")
            return pd.read_csv(path, sep="\t" if ".tsv" in suffixes else ",")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(path, [Problem(None, "*", f"cannot be read: {exc}")]) from exc
    raise DataError(path, [Problem(None, "*", "not .csv, .tsv, .txt or .parquet (optionally .gz)")])


def _normal(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def find_columns(
    frame: pd.DataFrame, aliases: Mapping[str, tuple[str, ...]], given: Mapping[str, str]
) -> tuple[dict[str, str], list[Problem]]:
    """Drape's column -> the file's, by explicit choice (``given``) or by known names."""
    by_normal = {_normal(c): c for c in frame.columns}
    found: dict[str, str] = {}
    problems = []
    for ours, theirs in given.items():
        if ours not in aliases:
            problems.append(
                Problem(None, ours, f"is not a column Drape reads ({', '.join(aliases)})")
            )
        elif theirs not in frame.columns:
            problems.append(Problem(None, theirs, f"given for {ours} but the file has no such "
                                    f"column (it has {list(frame.columns)})"))  # fmt: skip
        else:
            found[ours] = theirs
    taken = set(found.values())
    for ours, names in aliases.items():
        if ours in found or ours in given:
            continue
        for name in names:
            column = by_normal.get(name)
            if column is not None and column not in taken:
                found[ours] = column
                taken.add(column)
                break
    return found, problems


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask) + 1


def parse_times(values: pd.Series, column: str) -> tuple[np.ndarray, list[Problem], str]:
    """Unix microseconds from epoch seconds, milliseconds, microseconds or nanoseconds
    (told apart by magnitude), ISO 8601 or other common date strings, or datetimes (naive
    ones are taken as UTC). Returns the times (0 where unreadable), the problems and what
    form was read."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        form = "datetimes"
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() >= 0.99 * values.notna().sum() and numeric.notna().any():
            magnitude = float(np.nanmedian(np.abs(numeric.to_numpy(dtype=np.float64))))
            unit, per_us = next(
                (u, f) for limit, u, f in ((1e11, "s", 1e6), (1e14, "ms", 1e3),
                                           (1e17, "us", 1.0), (np.inf, "ns", 1e-3))
                if magnitude < limit
            )  # fmt: skip
            bad = numeric.isna().to_numpy() | ~np.isfinite(numeric.to_numpy(dtype=np.float64))
            micros = np.where(bad, 0, numeric.fillna(0).to_numpy(dtype=np.float64) * per_us)
            problems = [
                Problem(int(r), column, f"{values.iloc[r - 1]!r} is not a time") for r in _rows(bad)
            ]
            return micros.astype(np.int64), problems, f"epoch {unit}"
        text = values.astype("string").str.strip()
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        form = "ISO 8601"
        if stamps.isna().sum() > text.isna().sum():
            mixed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
            if mixed.notna().sum() > stamps.notna().sum():
                stamps, form = mixed, "date strings"
    bad = stamps.isna().to_numpy()
    problems = [
        Problem(int(r), column, f"{values.iloc[r - 1]!r} is not a time (epoch s/ms/us/ns, "
                "ISO 8601 or a datetime)")
        for r in _rows(bad)
    ]  # fmt: skip
    epoch = pd.Timestamp(0, tz="UTC")
    micros = (stamps.fillna(epoch) - epoch) // pd.Timedelta(microseconds=1)
    return micros.to_numpy(dtype=np.int64), problems, form


def load_events(
    path: Path,
    weights: Mapping[str, float],
    columns: Mapping[str, str] | None = None,
    drop_invalid: bool = False,
) -> Loaded:
    """The event log at ``path`` in the event store's columns (see the module docstring).

    Each row needs a user, an item and a time; its strength is ``weights[type]``, times the
    ``weight`` column where there is one. Without a type column every row is a purchase
    (a purchase log); without either, a weight column alone gives each row's strength.
    """
    raw = read_table(path)
    found, problems = find_columns(raw, EVENT_ALIASES, columns or {})
    for needed in ("user_id", "garment_id", "occurred_at"):
        if needed not in found:
            names = ", ".join(EVENT_ALIASES[needed][:6])
            problems.append(Problem(None, needed, f"missing: name it one of {names}, ... or map "
                                    f"it with --column {SHORT[needed]}=NAME "
                                    f"(columns: {list(raw.columns)})"))  # fmt: skip
    if problems:
        raise DataError(path, problems)
    notes = ["columns: " + ", ".join(f"{ours} <- {theirs!r}" for ours, theirs in found.items())]
    n = len(raw)
    if n == 0:
        raise DataError(path, [Problem(None, "*", "holds no rows")])
    out = pd.DataFrame(index=pd.RangeIndex(n))
    bad = np.zeros(n, dtype=bool)
    for ours in ("user_id", "garment_id"):
        values = as_id_strings(raw[found[ours]])
        empty = values.isna().to_numpy() | (values.fillna("").str.strip() == "").to_numpy()
        problems += [Problem(int(r), found[ours], "is empty") for r in _rows(empty)]
        bad |= empty
        out[ours] = values.fillna("").str.strip()
    micros, time_problems, form = parse_times(raw[found["occurred_at"]], found["occurred_at"])
    problems += time_problems
    bad[[p.row - 1 for p in time_problems if p.row]] = True
    out["occurred_at_us"] = micros
    notes.append(f"times read as {form}")
    if "type" in found:
        types = raw[found["type"]].astype("string").str.strip().str.lower()
        out["type"] = types.fillna("").to_numpy(dtype=object)
        if "weight" not in found:
            unknown = sorted(set(out["type"]) - set(weights))
            for kind in unknown:
                rows = _rows((out["type"] == kind).to_numpy())
                problems.append(Problem(int(rows[0]), found["type"],
                                        f"type {kind!r} ({len(rows):,} row{'s' * (len(rows) != 1)}) has no weight; "
                                        f"weighted types: {', '.join(sorted(weights))} (give it "
                                        f"one with --weight {kind or 'TYPE'}=W)"))  # fmt: skip
                bad[rows - 1] = True
    else:
        out["type"] = "purchase"
        notes.append("no type column: every row is a purchase")
    if "weight" in found:
        strength = pd.to_numeric(raw[found["weight"]], errors="coerce").to_numpy(dtype=np.float64)
        wrong = ~np.isfinite(strength) | (strength < 0)
        problems += [
            Problem(int(r), found["weight"], f"{raw[found['weight']].iloc[r - 1]!r} is not a "
                    "finite weight >= 0")
            for r in _rows(wrong)
        ]  # fmt: skip
        bad |= wrong
        out["strength"] = np.where(wrong, 0.0, strength)
        if "type" not in found:
            out["type"] = "event"
            notes.append("no type column: each row weighs its weight column")
    if "rating" in found:
        rating = pd.to_numeric(raw[found["rating"]], errors="coerce")
        wrong = raw[found["rating"]].notna().to_numpy() & rating.isna().to_numpy()
        problems += [
            Problem(
                int(r), found["rating"], f"{raw[found['rating']].iloc[r - 1]!r} is not a number"
            )
            for r in _rows(wrong)
        ]
        bad |= wrong
        out["rating"] = rating.to_numpy(dtype=np.float64)
    if "basket_id" in found:
        out["basket_id"] = as_id_strings(raw[found["basket_id"]]).to_numpy()
    if problems and not drop_invalid:
        problems.sort(key=lambda p: (p.row or 0, p.column))
        raise DataError(path, problems, "fix these rows, or skip them with --drop-invalid")
    if bad.any():
        notes.append(f"skipped {int(bad.sum()):,} invalid rows of {n:,}")
    out = out[~bad].reset_index(drop=True)
    out.insert(0, "event_id", np.arange(len(out)).astype(str))
    strength = type_weights(out["type"], {**weights, "event": 1.0}) * out.get(
        "strength", pd.Series(1.0, index=out.index)
    ).to_numpy(dtype=np.float64)
    if not (strength > 0).any():
        raise DataError(path, [Problem(None, "type", "every event weighs zero: the interaction "
                                       "matrix would be empty (check --weight)")])  # fmt: skip
    return Loaded(out, notes)


def load_items(
    path: Path, columns: Mapping[str, str] | None = None
) -> tuple[Catalog, np.ndarray | None, list[str]]:
    """An item table with any attributes: the catalog, item vectors (or None when it has
    neither a category nor text) and notes. Vectors: the category and every other column of
    at most 200 distinct values, one-hot; text columns (titles, descriptions) as TF-IDF
    reduced to 64 dimensions; each part normalised."""
    raw = read_table(path)
    found, problems = find_columns(raw, ITEM_ALIASES, columns or {})
    if "garment_id" not in found:
        problems.append(Problem(None, "garment_id", "missing: name it one of "
                                f"{', '.join(ITEM_ALIASES['garment_id'][:6])}, ... or map it "
                                f"with --item-column item=NAME (columns: {list(raw.columns)})"))  # fmt: skip
    if problems:
        raise DataError(path, problems)
    ids = as_id_strings(raw[found["garment_id"]])
    empty = ids.isna().to_numpy()
    duplicate = ids.duplicated().to_numpy() & ~empty
    problems = [Problem(int(r), found["garment_id"], "is empty") for r in _rows(empty)]
    problems += [
        Problem(int(r), found["garment_id"], f"{ids.iloc[r - 1]!r} appears again")
        for r in _rows(duplicate)
    ]
    if problems:
        raise DataError(path, problems)
    frame = pd.DataFrame({"garment_id": ids})
    for ours in ("category", "title", "replenishable", "in_stock"):
        if ours in found:
            frame[ours] = raw[found[ours]].to_numpy()
    if "replenishable" in frame:
        frame["replenishable"] = _truth(frame["replenishable"], path, found["replenishable"])
    if "in_stock" in frame:
        frame["in_stock"] = _truth(frame["in_stock"], path, found["in_stock"])
    catalog = Catalog(frame)
    notes = ["item columns: " + ", ".join(f"{o} <- {t!r}" for o, t in found.items())]
    parts, used = [], []
    rest = [c for c in raw.columns if c != found["garment_id"]]
    for column in rest:
        values = raw[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)
                or isinstance(values.dtype, pd.CategoricalDtype)):  # fmt: skip
            continue  # numbers (prices, sizes) say little about taste as they are
        text = values.astype("string").fillna("")
        if text.str.split().str.len().mean() >= 2:
            parts.append(_tfidf(text))
            used.append(f"{column} (text)")
        elif values.nunique() <= 200:
            codes = pd.factorize(text)[0]
            parts.append(sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes))))
            used.append(f"{column} (one-hot)")
    if not parts:
        notes.append("no category or text column: no item vectors (embedding channels off)")
        return catalog, None, notes
    dense = [_reduce(part) for part in parts]
    vectors = np.concatenate(dense, axis=1).astype(np.float32)
    notes.append(f"item vectors ({vectors.shape[1]} dimensions) from " + ", ".join(used))
    return catalog, vectors, notes


def _truth(values: pd.Series, path: Path, column: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    known = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    wrong = text.notna().to_numpy() & ~text.isin(list(known)).fillna(False).to_numpy()
    if wrong.any():
        raise DataError(path, [
            Problem(int(r), column, f"{values.iloc[r - 1]!r} is not true/false") for r in _rows(wrong)
        ])  # fmt: skip
    return text.map(known).fillna(False).astype(bool)


def _tfidf(text: pd.Series) -> sp.csr_matrix:
    tokens = text.str.lower().str.findall(r"[^\W_]{2,}")
    exploded = tokens.explode().dropna()
    vocabulary, codes = np.unique(exploded.to_numpy(dtype=str), return_inverse=True)
    rows = exploded.index.to_numpy()
    counts = sp.csr_matrix((np.ones(len(codes)), (rows, codes)), shape=(len(text), len(vocabulary)))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=len(vocabulary))
    idf = np.log((1 + len(text)) / (1 + df)) + 1.0
    tfidf = counts.multiply(idf[None, :]).tocsr()
    return tfidf


def _reduce(part: sp.csr_matrix) -> np.ndarray:
    """Rows normalised, reduced to at most TEXT_DIMENSIONS by a truncated SVD."""
    part = sp.csr_matrix(part, dtype=np.float64)
    if part.shape[1] > TEXT_DIMENSIONS:
        from scipy.sparse.linalg import svds

        k = min(TEXT_DIMENSIONS, min(part.shape) - 1)
        u, s, _ = svds(part, k=k, random_state=0)
        dense = u * s
    else:
        dense = part.toarray()
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.where(norms > 0, norms, 1.0)
