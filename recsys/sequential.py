"""Sequential rules: the garments shoppers engage with next.

Follows the SR method of Ludewig & Jannach, "Evaluation of session-based
recommendation algorithms" (2018): along every shopper's timeline, each pair of
items i then j that are at most ``window`` steps apart adds 1/gap to the rule
i -> j. Each item keeps its ``max_rules`` strongest successors. A shopper is then
scored by the rules of their ``recent`` latest items, the newest weighing most
(``decay`` per step back).

Unlike co-occurrence over whole histories, the rules keep order and locality: what
a shopper looked at a moment ago predicts what they look at next far better than
what they bought months ago (on MovieLens, blending them with ALS lifts NDCG@10
well beyond ALS alone; see the README).

Timelines collapse immediate repeats (view, try-on, add-to-cart of one garment
count as one step), so the funnel of one garment does not eat the window.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

# Pairs (window steps per timeline entry) summed at once when the rules are fitted: the block
# of earlier items is sized so a block holds about this many. 2M events, window 10: 20M pairs,
# so 5 blocks.
PAIRS_PER_BLOCK = 4_000_000


@dataclass(frozen=True)
class SequentialParams:
    # Chosen on MovieLens (see the README). A window of 20 adds ~0.003 NDCG@10 there but
    # costs 1.3x the fit time on 2M events.
    window: int = 10
    max_rules: int = 100
    # At most RECENT_ITEMS (interactions.py): the latest items the matrix keeps per user.
    recent: int = 5
    decay: float = 0.8

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_rules < 1 or self.recent < 1:
            raise ValueError(f"window, max_rules and recent must be >= 1: {self}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")


def timelines(
    user_rows: np.ndarray, item_cols: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) ordered by user, then time (ties keep input order), immediate repeats of
    an item collapsed; entries with a negative row or column are dropped."""
    keep = (user_rows >= 0) & (item_cols >= 0)
    rows, cols = user_rows, item_cols
    if not keep.all():  # copies only where needed: a log's timeline may be millions long
        rows, cols, times = rows[keep], cols[keep], times[keep]
    del keep
    order = np.lexsort((times, rows))
    rows, cols = rows[order], cols[order]
    if len(rows):
        new = np.ones(len(rows), dtype=bool)
        new[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols = rows[new], cols[new]
    return rows, cols


def latest_items(rows: np.ndarray, cols: np.ndarray, n_users: int, n: int) -> np.ndarray:
    """``n_users x n`` matrix of each user's last ``n`` items of a timeline, newest last,
    padded with -1 on the left."""
    out = np.full((n_users, n), -1, dtype=np.int32)
    if len(rows) == 0 or n == 0:
        return out
    ends = np.flatnonzero(np.r_[rows[1:] != rows[:-1], True])  # last entry of each user
    starts = np.r_[0, ends[:-1] + 1]
    users = rows[ends]
    for back in range(n):  # n is small (a handful); each pass is vectorised over users
        at = ends - back
        valid = at >= starts
        out[users[valid], n - 1 - back] = cols[at[valid]]
    return out


class SequentialRules:
    """An items x items CSR of rule strengths (rows: the earlier item)."""

    def __init__(self, rules: sp.csr_matrix, params: SequentialParams) -> None:
        self.rules = sp.csr_matrix(rules, dtype=np.float32)
        self.params = params

    @property
    def n_items(self) -> int:
        return self.rules.shape[0]

    @classmethod
    def fit(
        cls, rows: np.ndarray, cols: np.ndarray, n_items: int, params: SequentialParams
    ) -> SequentialRules:
        """Rules from a timeline (see :func:`timelines`) over ``n_items`` columns.

        The pairs are summed for one block of earlier items at a time, and each block's rows
        pruned to ``max_rules`` before the next: the pairs of the whole timeline (``window``
        per step) never exist at once. A block visits only its own items' places in the
        timeline (found once, by one sort), and a place leaves the walk at the first gap that
        reaches another shopper: the work is about ``window`` per entry in all, not per entry
        and block. A row's pairs come in the same order whatever the blocks, so the rules do
        not depend on them."""
        rows, cols = rows.astype(np.int32, copy=False), cols.astype(np.int32, copy=False)
        shape = (n_items, n_items)
        blocks = max(1, -(-params.window * len(rows) // PAIRS_PER_BLOCK))
        bounds = np.linspace(0, n_items, blocks + 1).astype(np.int64)
        # The timeline's places grouped by the block of their item, in timeline order within
        # a block (a stable sort of small keys: a radix sort), so each block walks forward.
        block_of = np.searchsorted(bounds, cols, side="right") - 1
        by_block = np.argsort(block_of.astype(np.uint16 if blocks < 2**16 else np.int64),
                              kind="stable")  # fmt: skip
        starts = np.r_[0, np.cumsum(np.bincount(block_of, minlength=blocks))]
        del block_of
        kept = []
        for block in range(blocks):
            lo, hi = int(bounds[block]), int(bounds[block + 1])
            at = by_block[starts[block] : starts[block + 1]]  # places of this block's items
            earlier, later, weights = [], [], []
            for gap in range(1, params.window + 1):
                at = at[at + gap < len(rows)]
                at = at[rows[at + gap] == rows[at]]  # timelines are by shopper: none further on
                a, b = cols[at], cols[at + gap]
                differ = a != b
                earlier.append(a[differ] - lo)
                later.append(b[differ])
                weights.append(np.full(int(differ.sum()), 1.0 / gap))
            # COO -> CSR sums the duplicate pairs (in float64: each sum rounded once).
            matrix = sp.csr_matrix(
                (np.concatenate(weights), (np.concatenate(earlier), np.concatenate(later))),
                shape=(hi - lo, n_items),
            )
            matrix.data = matrix.data.astype(np.float32)
            kept.append(_strongest_per_row(matrix, params.max_rules))
        rules = sp.vstack(kept, format="csr") if kept else sp.csr_matrix(shape, dtype=np.float32)
        return cls(rules, params)

    def scores(self, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(item columns, scores) reached from a user's recent items (newest last, -1 padded)."""
        recent = recent[-self.params.recent :]
        recent = recent[(recent >= 0) & (recent < self.n_items)]
        if recent.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        weights = self.params.decay ** np.arange(len(recent) - 1, -1, -1, dtype=np.float32)
        # A weighted sum of a handful of sparse rows, on the raw CSR arrays: scipy's
        # per-call overhead would cost more than the arithmetic.
        indptr = self.rules.indptr
        slices = [slice(indptr[i], indptr[i + 1]) for i in recent]
        targets = np.concatenate([self.rules.indices[s] for s in slices])
        values = np.concatenate(
            [self.rules.data[s] * w for s, w in zip(slices, weights, strict=True)]
        )
        items, where = np.unique(targets, return_inverse=True)
        return items.astype(np.int64), np.bincount(where, values, len(items)).astype(np.float32)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for part in ("data", "indices", "indptr"):
            np.save(directory / f"rules.{part}.npy", getattr(self.rules, part))
        np.save(directory / "rules.shape.npy", np.asarray(self.rules.shape))
        (directory / "sequential.json").write_text(json.dumps(asdict(self.params)))

    @classmethod
    def load(cls, directory: Path) -> SequentialRules:
        directory = Path(directory)
        params = SequentialParams(**json.loads((directory / "sequential.json").read_text()))
        if (directory / "rules.npz").exists():  # versions trained before the rules were mapped
            return cls(sp.load_npz(directory / "rules.npz").tocsr(), params)
        # Mapped, as the ALS factors are: one copy in the page cache for every worker.
        data, indices, indptr = (np.load(directory / f"rules.{part}.npy", mmap_mode="r")
                                 for part in ("data", "indices", "indptr"))  # fmt: skip
        shape = tuple(int(n) for n in np.load(directory / "rules.shape.npy"))
        return cls(sp.csr_matrix((data, indices, indptr), shape=shape, copy=False), params)


def _strongest_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keeps the ``k`` largest entries of every row (ties: the lower column), in one
    vectorised sort of the rows that have more than ``k``."""
    counts = np.diff(matrix.indptr)
    long_rows = counts > k
    if not long_rows.any():
        return matrix
    row_of = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts)
    entries = np.flatnonzero(long_rows[row_of])
    # Non-negative float32 values order like their bit patterns: one int64 key sorts by
    # row, then by value descending.
    bits = matrix.data[entries].astype(np.float32).view(np.uint32).astype(np.int64)
    entries = entries[np.argsort((row_of[entries] << 32) | (0xFFFFFFFF - bits), kind="stable")]
    long_counts = counts[long_rows]
    rank = np.arange(len(entries)) - np.repeat(np.cumsum(long_counts) - long_counts, long_counts)
    keep = np.ones(matrix.nnz, dtype=bool)
    keep[entries[rank >= k]] = False
    indptr = np.r_[0, np.cumsum(np.minimum(counts, k))]
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
