"""What every ranker takes and returns, and the filters they all apply.

A ranker maps a :class:`RankRequest` to :class:`Ranked` items; callers never
care which ranker (popularity, ALS, hybrid) they hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog


@dataclass(frozen=True)
class RankRequest:
    user_id: str
    k: int
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    exclude_garment_ids: tuple[str, ...] = ()
    include_out_of_stock: bool = False
    # When the shopper asks (Unix µs): what is due for repurchase depends on it. 0 = the
    # model's own clock (at serving, its last refresh).
    at_us: int = 0


@dataclass
class Ranked:
    """One ranked garment; ``channels`` maps channel name to (score, 1-based rank)."""

    position: int
    score: float
    channels: dict[str, tuple[float, int]] = field(default_factory=dict)


class Ranker(Protocol):
    name: str
    version: str

    def rank(
        self, request: RankRequest, photo_embedding: np.ndarray | None = None
    ) -> list[Ranked]: ...


def eligible_mask(catalog: Catalog, request: RankRequest, excluded: np.ndarray) -> np.ndarray:
    """Garments a request may return: in stock, in the wanted categories, not excluded by the
    request or for the shopper (``excluded``: see :func:`excluded_by_user`)."""
    mask = (
        np.ones(len(catalog), dtype=bool)
        if request.include_out_of_stock
        else catalog.in_stock.copy()
    )
    if request.categories:
        mask &= catalog.category_mask(request.categories)
    if request.exclude_categories:
        mask &= ~catalog.category_mask(request.exclude_categories)
    if request.exclude_garment_ids:
        excluded = catalog.positions(request.exclude_garment_ids)
        mask[excluded[excluded >= 0]] = False
    if excluded.size:
        mask[excluded] = False
    return mask


def top_k(order: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` positions of ``order`` that ``mask`` allows.

    Scans growing prefixes of ``order`` rather than the whole array: with most
    garments eligible, a few hundred entries suffice even for a 100k catalog.
    """
    if k <= 0:
        return order[:0]
    end = min(len(order), 4 * k)
    while True:
        chosen = order[:end][mask[order[:end]]]
        if len(chosen) >= k or end == len(order):
            return chosen[:k]
        end = min(len(order), end * 4)


# The repeat policy's default: a garment bought is not recommended to its buyer again
# (replenishable ones come back through the repurchase channel); one viewed, tried on or
# left in the cart stays a candidate, often the best one.
EXCLUDE_AFTER = ("purchase",)


def excluded_by_user(
    catalog: Catalog, events: pd.DataFrame, after: Iterable[str] = EXCLUDE_AFTER
) -> dict[str, np.ndarray]:
    """Catalog positions no longer recommended to each user: those they had an event of a
    type in ``after`` with (the repeat policy), sorted and distinct."""
    bought = events[events["type"].isin(list(after)).to_numpy()]
    positions = catalog.positions(bought["garment_id"])
    keep = positions >= 0
    if not keep.any():
        return {}
    codes, users = pd.factorize(bought["user_id"].to_numpy()[keep])
    positions = positions[keep]
    order = np.lexsort((positions, codes))
    codes, positions = codes[order], positions[order]
    distinct = np.r_[True, (codes[1:] != codes[:-1]) | (positions[1:] != positions[:-1])]
    codes, positions = codes[distinct], positions[distinct]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return dict(zip(users[codes[starts]], np.split(positions, starts[1:]), strict=True))
