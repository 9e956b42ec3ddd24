"""Synthetic shoppers with a known preference structure, for demos, tests and benchmarks.

Each shopper has a taste over categories and colours (sparse Dirichlet draws);
each garment a long-tailed base popularity. An interaction picks a category and
a colour from the shopper's taste, then a garment of that cell by popularity,
so that evaluation has a ground truth: a good recommender recovers the taste.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog

# Funnel depth of one interaction: most are views, few end in a purchase.
STAGES = ("view", "tryon_view", "add_to_cart", "purchase")
STAGE_P = (0.62, 0.2, 0.11, 0.07)


@dataclass
class SyntheticShoppers:
    events: pd.DataFrame
    user_ids: np.ndarray
    category_taste: np.ndarray  # users x categories (rows sum to 1)
    colour_taste: np.ndarray  # users x colours


def _sample_rows(
    probabilities: np.ndarray, rows: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each entry of ``rows``, one column index drawn from ``probabilities[row]``."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(rows)) * cumulative[rows, -1]
    return (cumulative[rows] < draws[:, None]).sum(axis=1)


def generate_shoppers(
    catalog: Catalog,
    n_users: int,
    n_events: int,
    seed: int = 0,
    start_us: int | None = None,
    days: float = 60.0,
    rating_rate: float = 0.03,
) -> SyntheticShoppers:
    """Events of ``n_users`` synthetic shoppers over ``days`` days (columns of the event store).

    ``start_us`` defaults to ``days`` before now, so that time decay leaves them weight.
    """
    rng = np.random.default_rng(seed)
    if start_us is None:
        start_us = time.time_ns() // 1000 - int(days * 86_400e6)
    frame = catalog.frame
    cat_codes, categories = pd.factorize(frame["category"], sort=True)
    col_codes, colours = pd.factorize(frame["colour"], sort=True)
    category_taste = rng.dirichlet(np.full(len(categories), 0.3), size=n_users)
    colour_taste = rng.dirichlet(np.full(len(colours), 0.5), size=n_users)
    popularity = rng.pareto(1.5, size=len(catalog)) + 0.05
    activity = rng.lognormal(0.0, 1.0, size=n_users)

    users = rng.choice(n_users, size=n_events, p=activity / activity.sum())
    cat = _sample_rows(category_taste, users, rng)
    col = _sample_rows(colour_taste, users, rng)
    cell = cat * len(colours) + col
    item_cell = cat_codes * len(colours) + col_codes
    items = np.full(n_events, -1, dtype=np.int64)
    for c in np.unique(cell):
        members = np.flatnonzero(item_cell == c)
        wanted = np.flatnonzero(cell == c)
        if members.size == 0:
            # No garment in that cell: fall back to the category by popularity.
            members = np.flatnonzero(cat_codes == c // len(colours))
        p = popularity[members] / popularity[members].sum()
        items[wanted] = rng.choice(members, size=wanted.size, p=p)

    types = np.array(STAGES, dtype=object)[rng.choice(len(STAGES), size=n_events, p=STAGE_P)]
    # Ratings follow how well the garment matches the shopper's taste.
    is_rating = rng.random(n_events) < rating_rate
    match = category_taste[users, cat] * len(categories) * colour_taste[users, col] * len(colours)
    rating = np.clip(np.round(1 + 4 * (1 - np.exp(-match)) + rng.normal(0, 0.6, n_events)), 1, 5)
    types[is_rating] = "rating"
    occurred = start_us + np.sort(rng.random(n_events)) * days * 86_400e6
    user_ids = np.array([f"u{u:06d}" for u in range(n_users)], dtype=object)
    events = pd.DataFrame(
        {
            "event_id": [f"s{seed}-{i:08d}" for i in range(n_events)],
            "type": types,
            "user_id": user_ids[users],
            "garment_id": catalog.ids[items],
            "occurred_at_us": occurred.astype(np.int64),
            "received_at_us": occurred.astype(np.int64),
            "experiment": "",
            "variant": "",
            "rating": np.where(is_rating, rating, 0).astype(np.int16),
            "recommendation_id": "",
            "value_minor": np.where(
                types == "purchase", frame["price_minor"].to_numpy()[items], 0
            ).astype(np.int64),
        }
    )
    return SyntheticShoppers(events, user_ids, category_taste, colour_taste)
