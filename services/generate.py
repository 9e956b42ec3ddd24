"""`drape generate catalog`: a catalog feed (CSV + product shots) to try `drape ingest` on,
from the generated catalog and the generated garment renderer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.garment_set import render_garment
from models.images import encode_jpeg
from recsys.catalog import generate_catalog


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
    columns = [
        "garment_id",
        "title",
        "category",
        "price",
        "currency",
        "in_stock",
        "attributes",
        "image",
    ]
    path = out_dir / "catalog.csv"
    feed[columns].to_csv(path, index=False)
    return path


def run_generate(args: argparse.Namespace) -> int:
    path = write_generated_feed(args.garments, args.out, args.seed)
    print(f"wrote {args.garments:,} garments: {path} and {args.out / 'images'}")
    print(f"next: drape ingest {path} --images {args.out / 'images'}")
    return 0
