"""A generated fashion catalog: the catalog table, and the same catalog as a feed with
rendered product shots, as a storefront would hand it to `drape ingest`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from drape.models.images import encode_jpeg
from drape.recsys.catalog import Catalog
from drape.synthetic.garments import render_garment
from drape.synthetic.vocabulary import CATEGORIES, COLOURS, PATTERNS

# The columns of a generated feed, as a storefront's export would name them.
FEED_COLUMNS = ("garment_id", "title", "category", "price", "currency", "in_stock", "attributes",
                "image")  # fmt: skip


def generate_catalog(n: int, seed: int = 0, out_of_stock: float = 0.05) -> Catalog:
    """A synthetic fashion catalog: categories x colours x patterns, realistic prices."""
    rng = np.random.default_rng(seed)
    category = rng.choice(CATEGORIES, size=n)
    colour = rng.choice(COLOURS, size=n)
    pattern = rng.choice(PATTERNS, size=n, p=(0.5, 0.15, 0.15, 0.1, 0.1))
    base = {c: 1500 + 1000 * i for i, c in enumerate(CATEGORIES)}
    price = np.array([base[c] for c in category]) * rng.lognormal(0, 0.3, size=n)
    ids = np.array([f"g{i:06d}" for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "garment_id": ids,
            "title": [
                f"{c.title()} {p} {cat}"
                for c, p, cat in zip(colour, pattern, category, strict=True)
            ],
            "category": category,
            "price_minor": (np.round(price / 100) * 100 - 1).astype(np.int64),
            "currency": "EUR",
            "in_stock": rng.random(n) >= out_of_stock,
            "colour": colour,
            "pattern": pattern,
            "image_uri": "",
        }
    )
    return Catalog(frame)


def write_generated_feed(n: int, out_dir: Path, seed: int = 0) -> Path:
    """Writes ``out_dir/catalog.csv`` and ``out_dir/images/<id>.jpg``; returns the CSV."""
    catalog = generate_catalog(n, seed=seed)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frame = catalog.frame.copy()
    for row in frame.itertuples():
        shot = render_garment(row.category, row.colour, row.pattern, rng)
        (images / f"{row.garment_id}.jpg").write_bytes(encode_jpeg(shot.image, quality=92))
    feed = frame.rename(columns={"price_minor": "price"})
    feed["price"] = (feed["price"] / 100).map(lambda p: f"{p:.2f}")
    feed["image"] = feed["garment_id"] + ".jpg"
    feed["attributes"] = [
        json.dumps({"colour": c, "pattern": p})
        for c, p in zip(feed["colour"], feed["pattern"], strict=True)
    ]
    path = out_dir / "catalog.csv"
    feed[list(FEED_COLUMNS)].to_csv(path, index=False)
    return path
