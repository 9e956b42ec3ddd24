"""What every ranker takes and returns, and the filters they all apply.

A ranker maps a :class:`RankRequest` to :class:`Ranked` items; callers never
care which ranker (popularity, ALS, hybrid) they hold.
"""

from __future__ import annotations

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


def eligible_mask(catalog: Catalog, request: RankRequest, bought: np.ndarray) -> np.ndarray:
    """Garments a request may return: in stock, in the wanted categories, not excluded or bought."""
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
    if bought.size:
        mask[bought] = False
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


def purchases_by_user(catalog: Catalog, events: pd.DataFrame) -> dict[str, np.ndarray]:
    """Catalog positions each user bought (the "already bought" filter), sorted and distinct."""
    bought = events[events["type"] == "purchase"]
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
