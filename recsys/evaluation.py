"""Offline evaluation of the recommenders on a time-based split.

Protocol (``evaluate``):

1. Events are split by time into train (first 80%), validation (next 10%) and
   test (last 10%): by one global cut, or per user along each user's own
   timeline where users are active in short bursts (MovieLens: a global cut
   leaves almost no test user with any history). A random 10% of the items are *cold*: all their events are
   removed from train and validation, as if they were added to the catalog at
   the test period.
2. ALS hyper-parameters are tuned for ALS-only NDCG@10 on validation; the blend
   weights of the hybrid are then tuned for hybrid NDCG@10 on validation
   (coordinate ascent starting from ALS-only, so it can only match or beat it there).
3. Every model is refit on train + validation and scored on test users who have
   history and a relevant test event: warm metrics rank the warm items; the
   cold-start slice ranks the cold items (only embedding channels can reach them,
   so ALS-only scores zero there by construction).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from drape.recsys.als import ALSModel, ALSParams
from drape.recsys.catalog import Catalog
from drape.recsys.datasets import EvalDataset
from drape.recsys.hybrid import (
    CHANNELS,
    BlendWeights,
    Candidates,
    HybridModel,
    HybridParams,
)
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import InteractionMatrix
from drape.recsys.metrics import coverage, ranking_metrics, user_metrics
from drape.recsys.ranking import RankRequest, purchases_by_user
from drape.recsys.sequential import SequentialParams, SequentialRules

K = 10
K_COLD = 20
ALS_GRID = {"factors": (32, 64, 128), "regularization": (0.01, 0.1), "alpha": (1.0, 4.0, 16.0)}
WEIGHT_GRID = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
SEQUENTIAL = SequentialParams()  # the rules' defaults, as `drape train recsys` uses them
MODELS = {
    "popularity": BlendWeights.only("popularity"),
    "als": BlendWeights.only("collaborative"),
    "sequential": BlendWeights.only("sequential"),
    "embedding": BlendWeights.only("visual"),
}


@dataclass
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cold_items: np.ndarray


def time_split(data: EvalDataset, cold_share: float = 0.1, seed: int = 0) -> Split:
    """80/10/10 by time: one global cut, or each user's own chronology (``data.split``)."""
    events = data.events.sort_values("occurred_at_us", kind="stable")
    if data.split == "per_user":
        by_user = events.groupby("user_id", sort=False)
        position = (by_user.cumcount() / by_user["user_id"].transform("size")).to_numpy()
    else:
        position = events["occurred_at_us"].rank(method="first", pct=True).to_numpy()
    rng = np.random.default_rng(seed)
    cold = rng.choice(data.catalog.ids, size=int(len(data.catalog) * cold_share), replace=False)
    is_cold = events["garment_id"].isin(set(cold)).to_numpy()
    train = events[(position < 0.8) & ~is_cold]
    validation = events[(position >= 0.8) & (position < 0.9) & ~is_cold]
    return Split(train, validation, events[position >= 0.9], cold)


def _subset(catalog: Catalog, keep: np.ndarray) -> Catalog:
    return Catalog(catalog.frame[keep].reset_index(drop=True))


@dataclass
class Fitted:
    """What a split's training period produced; models for any blend are built from it."""

    catalog: Catalog
    matrix: InteractionMatrix
    als: ALSModel
    embeddings: EmbeddingIndex
    purchases: dict[str, np.ndarray]
    sequential: SequentialRules | None = None

    def model(self, weights: BlendWeights) -> HybridModel:
        return HybridModel(
            self.catalog,
            self.matrix,
            self.als,
            self.embeddings,
            self.purchases,
            HybridParams(weights=weights, cold_start_fallback=False),
            sequential=self.sequential,
        )


def fit(
    data: EvalDataset,
    catalog: Catalog,
    vectors: np.ndarray,
    events: pd.DataFrame,
    params: ALSParams,
) -> Fitted:
    now = int(events["occurred_at_us"].max())
    matrix = InteractionMatrix.build(
        events, data.weights, data.half_life_days, now, keep_timeline=True
    )
    als = ALSModel.fit(matrix.matrix, params, use_gpu=False)
    return Fitted(
        catalog,
        matrix,
        als,
        EmbeddingIndex.build(catalog.ids, vectors),
        purchases_by_user(catalog, events),
        matrix.sequential_rules(SEQUENTIAL),
    )


def truth(
    data: EvalDataset, period: pd.DataFrame, catalog: Catalog, history_users: set[str]
) -> dict[str, set[int]]:
    """Each user's relevant items in ``period`` (catalog positions), for users with history."""
    relevant = period[data.relevant.loc[period.index].to_numpy()]
    positions = catalog.positions(relevant["garment_id"])
    frame = relevant.assign(position=positions)
    frame = frame[(frame["position"] >= 0) & frame["user_id"].isin(history_users)]
    return {user: set(group.tolist()) for user, group in frame.groupby("user_id")["position"]}


def _rankings(
    model: HybridModel, users: dict[str, set[int]], k: int, exclude: tuple[str, ...] = ()
) -> list[tuple[list[int], set[int]]]:
    out = []
    for user, relevant in users.items():
        request = RankRequest(user, k=k, include_out_of_stock=True, exclude_garment_ids=exclude)
        ranked = model.rank(request)
        out.append(([r.position for r in ranked], relevant))
    return out


def tune_als(
    data: EvalDataset,
    fit_on: Callable[[ALSParams], Fitted],
    users: dict[str, set[int]],
    log: Callable[[str], None],
) -> ALSParams:
    best, best_score = ALSParams(), -1.0
    for factors, reg, alpha in itertools.product(*ALS_GRID.values()):
        params = ALSParams(factors=factors, regularization=reg, alpha=alpha, iterations=15)
        fitted = fit_on(params)
        score = ranking_metrics(_rankings(fitted.model(MODELS["als"]), users, K), K).ndcg
        log(f"  als factors={factors} reg={reg} alpha={alpha}: val ndcg@{K} {score:.4f}")
        if score > best_score:
            best, best_score = params, score
    return best


def tune_blend(
    model: HybridModel, users: dict[str, set[int]], k: int = K, rounds: int = 2
) -> tuple[BlendWeights, float]:
    """Coordinate ascent over channel weights for validation NDCG@k (candidates computed once)."""
    cached: list[tuple[Candidates, set[int]]] = [
        (model.candidates(RankRequest(user, k=k, include_out_of_stock=True)), relevant)
        for user, relevant in users.items()
    ]

    def score(weights: BlendWeights) -> float:
        total = 0.0
        for candidates, relevant in cached:
            top, _ = model.blend(candidates, k, weights)
            total += user_metrics(candidates.positions[top].tolist(), relevant, k)[2]
        return total / max(len(cached), 1)

    # Start from ALS alone; offline data has no photos, so the photo weight stays as configured.
    weights = replace(BlendWeights.only("collaborative"), photo=model.params.weights.photo)
    best = score(weights)
    for _ in range(rounds):
        for channel in CHANNELS:
            if channel == "photo":
                continue  # offline data has no shopper photos
            for value in WEIGHT_GRID:
                trial = replace(weights, **{channel: value})
                if trial.array().sum() == 0:
                    continue
                trial_score = score(trial)
                if trial_score > best + 1e-9:
                    weights, best = trial, trial_score
    return weights, best


def evaluate(
    data: EvalDataset, log: Callable[[str], None] = print, tune: bool = True
) -> dict[str, object]:
    """Runs the whole protocol; returns the report (rows per model, tuned settings, timings)."""
    started = time.perf_counter()
    split = time_split(data)
    is_cold = np.isin(data.catalog.ids, split.cold_items)
    warm_catalog, warm_vectors = _subset(data.catalog, ~is_cold), data.vectors[~is_cold]
    log(f"{data.name}: {len(data.events):,} events, {len(data.catalog):,} items ({is_cold.sum()} cold); "
        f"train {len(split.train):,} / validation {len(split.validation):,} / test {len(split.test):,}")  # fmt: skip

    def fit_train(params: ALSParams) -> Fitted:
        return fit(data, warm_catalog, warm_vectors, split.train, params)

    val_users = truth(data, split.validation, warm_catalog, set(split.train["user_id"]))
    als_params = tune_als(data, fit_train, val_users, log) if tune else ALSParams()
    weights, val_ndcg = tune_blend(fit_train(als_params).model(BlendWeights()), val_users)
    log(f"tuned: {als_params}; blend {asdict(weights)} (validation ndcg@{K} {val_ndcg:.4f})")

    history = pd.concat([split.train, split.validation])
    final = fit(data, warm_catalog, warm_vectors, history, als_params)
    users = set(history["user_id"])
    test_users = truth(data, split.test, warm_catalog, users)
    # The cold slice: the same models over the whole catalog, restricted to the cold items.
    joint = Fitted(
        data.catalog,
        final.matrix,
        final.als,
        EmbeddingIndex.build(data.catalog.ids, data.vectors),
        final.purchases,
        final.sequential,
    )
    cold_users = truth(data, split.test, data.catalog, users)
    cold_users = {u: {p for p in r if is_cold[p]} for u, r in cold_users.items()}
    warm_ids = tuple(warm_catalog.ids.tolist())
    rows = []
    for name, blend in {**MODELS, "hybrid": weights}.items():
        warm_rank = _rankings(final.model(blend), test_users, K_COLD)
        warm10 = ranking_metrics(((r[:K], t) for r, t in warm_rank), K)
        warm20 = ranking_metrics(warm_rank, K_COLD)
        cold = ranking_metrics(
            _rankings(joint.model(blend), cold_users, K_COLD, exclude=warm_ids), K_COLD
        )
        rows.append({
            "model": name, **warm10.as_dict(K), f"recall@{K_COLD}": warm20.recall,
            "coverage@10": coverage((r[:K] for r, _ in warm_rank), len(warm_catalog)),
            f"cold_recall@{K_COLD}": cold.recall, "cold_users": cold.users,
        })  # fmt: skip
    return {
        "dataset": data.name,
        "protocol": f"time split 80/10/10 ({data.split}), 10% items held out as cold, tuned on validation",
        "als": asdict(als_params),
        "sequential": asdict(SEQUENTIAL),
        "blend": asdict(weights),
        "seconds": round(time.perf_counter() - started, 1),
        "results": rows,
    }
