"""A generated store whose shoppers come back: replenishment cycles and re-engagement.

The catalog is the generated fashion catalog plus staples of four replenishable
categories (socks, underwear, basics, cosmetics), each with its own typical cycle.

Each shopper belongs to one of a few segments; a segment favours some staples, so that
collaborative filtering has something to learn. A shopper keeps one to four staples and
buys each on their own cycle (the category's cycle times a personal factor, with
jitter), from a random phase, for a year. Staples due within a few days of each other go
into one order. Between orders the shopper browses fashion of their taste (views, a few
add-to-carts); some garments viewed are bought days or weeks later, in an order, and
never twice. Every purchase carries its order's ``basket_id``.

What a recommender faces in the last order: staples due again (the repurchase channel),
fashion viewed or carted before (the engagement channel), and a little new fashion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog
from drape.synthetic.catalog import generate_catalog

US_PER_DAY = 86_400 * 1_000_000
STAPLES = {"socks": 60.0, "underwear": 90.0, "basics": 45.0, "cosmetics": 30.0}
STAPLE_COLOURS = ("black", "white", "grey", "navy", "beige")
SEGMENTS = 8
# Staples due within this many days of the first one go into the same order.
ORDER_WINDOW_DAYS = 5.0
# A staple's interval varies by this share; this share of its due dates the shopper buys
# elsewhere (the next one is a cycle later).
CYCLE_JITTER = 0.25
SKIPPED = 0.2


@dataclass
class ReplenishmentStore:
    catalog: Catalog
    events: pd.DataFrame  # the event store's columns plus basket_id


def _catalog(n_fashion: int, per_staple: int, seed: int) -> Catalog:
    fashion = generate_catalog(n_fashion, seed=seed, out_of_stock=0.0).frame
    rng = np.random.default_rng(seed + 1)
    rows = []
    for category in STAPLES:
        for i in range(per_staple):
            colour = str(rng.choice(STAPLE_COLOURS))
            rows.append({
                "garment_id": f"s-{category}-{i:03d}", "title": f"{colour.title()} {category} {i}",
                "category": category, "price_minor": int(rng.integers(300, 3000)),
                "currency": "EUR", "in_stock": True, "colour": colour, "pattern": "solid",
                "image_uri": "", "replenishable": True,
            })  # fmt: skip
    return Catalog(pd.concat([fashion, pd.DataFrame(rows)], ignore_index=True))


def generate_replenishment(
    n_users: int = 1500,
    n_fashion: int = 2000,
    per_staple: int = 40,
    days: float = 365.0,
    seed: int = 0,
    start_us: int = 1_735_689_600_000_000,
) -> ReplenishmentStore:
    rng = np.random.default_rng(seed)
    catalog = _catalog(n_fashion, per_staple, seed)
    frame = catalog.frame
    staple_pos = np.flatnonzero(catalog.replenishable)
    fashion_pos = np.flatnonzero(~catalog.replenishable)
    # Each segment favours a few staples (Zipf-like within the segment's own order).
    segment_order = [rng.permutation(staple_pos) for _ in range(SEGMENTS)]
    zipf = 1.0 / np.arange(1, len(staple_pos) + 1) ** 1.2
    zipf /= zipf.sum()
    fashion_cat = pd.factorize(frame["category"].to_numpy()[fashion_pos], sort=True)[0]
    fashion_col = pd.factorize(frame["colour"].to_numpy()[fashion_pos], sort=True)[0]
    popularity = rng.pareto(1.5, size=len(fashion_pos)) + 0.05

    events: list[tuple[str, str, int, str, str]] = []  # type, user, position, time, basket
    orders = 0
    for u in range(n_users):
        user = f"r{u:05d}"
        segment = rng.integers(SEGMENTS)
        staples = segment_order[segment][
            rng.choice(len(staple_pos), size=rng.integers(1, 7), replace=False, p=zipf)
        ]
        due: list[tuple[float, int]] = []
        for position in staples:
            cycle = STAPLES[frame["category"].iat[position]] * rng.lognormal(0.0, 0.25)
            t = rng.uniform(0, cycle)
            while t < days:
                if rng.random() >= SKIPPED:
                    due.append((t, int(position)))
                t += cycle * max(0.4, rng.normal(1.0, CYCLE_JITTER))
        # Fashion: a taste cell (category, colour); views through the year, some bought later.
        taste_cat = rng.integers(fashion_cat.max() + 1)
        taste_col = rng.integers(fashion_col.max() + 1)
        cell = np.flatnonzero((fashion_cat == taste_cat) | (fashion_col == taste_col))
        p = popularity[cell] / popularity[cell].sum()
        n_views = rng.poisson(25)
        view_times = np.sort(rng.uniform(0, days, n_views))
        viewed = fashion_pos[cell[rng.choice(len(cell), size=n_views, p=p)]]
        for t, position in zip(view_times, viewed, strict=True):
            events.append(("view", user, int(position), float(t), ""))
        later: list[tuple[float, int]] = []
        for t, position in zip(view_times, viewed, strict=True):
            if rng.random() < 0.25:
                events.append(("add_to_cart", user, int(position), float(t) + 0.01, ""))
                if rng.random() < 0.6:
                    later.append((float(t) + rng.exponential(10.0), int(position)))
        # Orders: staples due close together, fashion bought (once) with the next order.
        due.sort()
        bought_fashion: set[int] = set()
        i = 0
        while i < len(due):
            opened = due[i][0]
            items = []
            while i < len(due) and due[i][0] <= opened + ORDER_WINDOW_DAYS:
                items.append(due[i][1])
                i += 1
            at = opened + ORDER_WINDOW_DAYS / 2
            for t, position in later:
                if t <= at and position not in bought_fashion:
                    items.append(position)
                    bought_fashion.add(position)
            if rng.random() < 0.35:  # now and then, something new of their taste
                items.extend(fashion_pos[cell[rng.choice(len(cell), size=rng.integers(1, 3), p=p)]])
            if rng.random() < 0.1:  # or a staple their segment likes, for once
                items.append(int(segment_order[segment][rng.choice(len(staple_pos), p=zipf)]))
            basket = f"o{orders:07d}"
            orders += 1
            for position in dict.fromkeys(int(i) for i in items):
                events.append(("purchase", user, position, at, basket))
    kinds, users, positions, times, baskets = zip(*events, strict=True)
    occurred = start_us + (np.asarray(times) * US_PER_DAY).astype(np.int64)
    out = pd.DataFrame({
        "event_id": [f"rp{seed}-{i:08d}" for i in range(len(events))],
        "type": np.asarray(kinds, dtype=object),
        "user_id": np.asarray(users, dtype=object),
        "garment_id": catalog.ids[np.asarray(positions)],
        "occurred_at_us": occurred,
        "basket_id": pd.Series(baskets, dtype=object).replace("", None).to_numpy(),
    })  # fmt: skip
    out = out.sort_values("occurred_at_us", kind="stable").reset_index(drop=True)
    return ReplenishmentStore(catalog, out)
