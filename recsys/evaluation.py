"""Offline evaluation of the recommenders on a time-based split that never cuts a basket.

Protocol (``evaluate``):

1. Events are grouped into baskets (``basket_id`` when the data has one, otherwise one
   user's events at one moment) and split by time, a whole basket on one side of every
   cut (``EvalDataset.split``):

   - ``per_user``: each user's own chronology, 80/10/10 of their events (for data where
     users are active in short bursts: on MovieLens a global cut leaves almost no test user
     with any history);
   - ``global``: one cut for everybody at 80% and 90% of the events;
   - ``last_basket``: each user's last basket with a relevant event is the test, the one
     before it the validation, the rest training (the usual protocol for purchase logs).

   A share of the items (``cold_share``, 10% by default when the data has item vectors) is
   *cold*: all their events are removed from train and validation, as if they were added
   to the catalog at the test period.
2. ALS hyper-parameters are tuned for ALS-only NDCG@10 on validation; the blend weights of
   the hybrid are then tuned for hybrid NDCG@10 on validation (coordinate ascent starting
   from ALS-only, so it can only match or beat it there).
3. Every model is refit on train + validation and scored on test users who have history
   and a relevant test event: warm metrics rank the warm items; the cold-start slice ranks
   the cold items (only embedding channels can reach them).

Time: interactions decay from the end of the training period (its last event), not from
the wall clock; what is due for repurchase is measured at each user's request, the moment
their first held-out event happened.

Reference baselines, in every table, rank without Drape's filters: the most popular
items, each user's own most frequent items (then the most popular), and ALS scores over
every item, past ones included. They show at once whether Drape beats the obvious.
FAISS runs one thread per query, as in serving (a pool per query is 10x slower on 2
cores).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

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
from drape.recsys.ranking import RankRequest, excluded_by_user
from drape.recsys.repurchase import RepurchaseStats
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
BASELINES = ("baseline: popularity, no filter", "baseline: personal frequency",
             "baseline: ALS with repeats")  # fmt: skip


@dataclass
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cold_items: np.ndarray


def basket_keys(events: pd.DataFrame) -> np.ndarray:
    """One code per basket: ``basket_id`` where the data has one, else a user's events at one
    moment (a basket a log writes with one timestamp). Baskets are per user."""
    users = pd.factorize(events["user_id"])[0].astype(np.int64)
    if "basket_id" in events.columns:
        given = events["basket_id"]
        moment = "t" + events["occurred_at_us"].astype(str)
        label = ("b" + given.astype(str)).where(given.notna(), moment).to_numpy()
    else:
        label = events["occurred_at_us"].to_numpy()
    keys = pd.MultiIndex.from_arrays([users, label])
    return pd.factorize(keys)[0].astype(np.int64)


def time_split(data: EvalDataset, cold_share: float | None = None, seed: int = 0) -> Split:
    """Train, validation and test by time (``data.split``); a basket is never split."""
    events = data.events.sort_values("occurred_at_us", kind="stable")
    basket = basket_keys(events)
    # Every event takes the place of its basket's first event.
    first = pd.Series(np.arange(len(events))).groupby(basket).transform("min").to_numpy()
    if data.split == "per_user":
        by_user = events.groupby("user_id", sort=False)
        order = (by_user.cumcount() / by_user["user_id"].transform("size")).to_numpy()
        position = order[first]
        part = np.where(position < 0.8, 0, np.where(position < 0.9, 1, 2))
    elif data.split == "global":
        position = (np.arange(len(events)) / max(len(events), 1))[first]
        part = np.where(position < 0.8, 0, np.where(position < 0.9, 1, 2))
    elif data.split == "last_basket":
        part = _last_basket_parts(events, basket, data.relevant.loc[events.index].to_numpy())
    else:
        raise ValueError(f"unknown split {data.split!r}: per_user, global or last_basket")
    share = data.cold_share if cold_share is None else cold_share
    rng = np.random.default_rng(seed)
    cold = rng.choice(data.catalog.ids, size=int(len(data.catalog) * share), replace=False)
    is_cold = events["garment_id"].isin(set(cold)).to_numpy()
    return Split(
        events[(part == 0) & ~is_cold], events[(part == 1) & ~is_cold], events[part == 2], cold
    )


def _last_basket_parts(
    events: pd.DataFrame, basket: np.ndarray, relevant: np.ndarray
) -> np.ndarray:
    """0/1/2 per event: each user's last basket with a relevant event and everything after it
    is the test; from the relevant basket before it, the validation; the rest, training."""
    frame = pd.DataFrame({
        "user": events["user_id"].to_numpy(), "basket": basket, "relevant": relevant,
        "at": events["occurred_at_us"].to_numpy(),
    })  # fmt: skip
    starts = frame.groupby("basket")["at"].min()
    frame["start"] = starts.loc[frame["basket"]].to_numpy()
    baskets = frame[frame["relevant"]].drop_duplicates("basket")
    from_end = baskets.sort_values("start", kind="stable").groupby("user").cumcount(ascending=False)
    test_from = baskets[from_end == 0].set_index("user")["start"]
    validation_from = baskets[from_end == 1].set_index("user")["start"]
    user_test = frame["user"].map(test_from).to_numpy(dtype=np.float64)
    user_validation = frame["user"].map(validation_from).to_numpy(dtype=np.float64)
    start = frame["start"].to_numpy(dtype=np.float64)
    part = np.zeros(len(frame), dtype=np.int64)
    part[start >= user_validation] = 1  # NaN (no second basket) compares False
    part[start >= user_test] = 2
    return part


def _subset(catalog: Catalog, keep: np.ndarray) -> Catalog:
    return Catalog(catalog.frame[keep].reset_index(drop=True))


@dataclass
class Fitted:
    """What a split's training period produced; models for any blend are built from it."""

    catalog: Catalog
    matrix: InteractionMatrix
    als: ALSModel
    embeddings: EmbeddingIndex | None
    excluded: dict[str, np.ndarray]
    sequential: SequentialRules | None = None
    repurchase: RepurchaseStats | None = None
    now_us: int = 0

    def model(self, weights: BlendWeights) -> HybridModel:
        return HybridModel(
            self.catalog,
            self.matrix,
            self.als,
            self.embeddings,
            self.excluded,
            HybridParams(weights=weights, cold_start_fallback=False),
            sequential=self.sequential,
            repurchase=self.repurchase,
            now_us=self.now_us,
        )


def fit(
    data: EvalDataset,
    catalog: Catalog,
    vectors: np.ndarray | None,
    events: pd.DataFrame,
    params: ALSParams,
) -> Fitted:
    # Decay is measured from the end of the training period, not from today.
    now = int(events["occurred_at_us"].max())
    matrix = InteractionMatrix.build(
        events, data.weights, data.half_life_days, now, keep_timeline=True
    )
    als = ALSModel.fit(matrix.matrix, params, use_gpu=False)
    return Fitted(
        catalog,
        matrix,
        als,
        EmbeddingIndex.build(catalog.ids, vectors) if vectors is not None else None,
        excluded_by_user(catalog, events, data.exclude_after),
        matrix.sequential_rules(SEQUENTIAL),
        RepurchaseStats.fit(catalog, events),
        now,
    )


@dataclass
class Truth:
    """Each evaluated user's relevant items (catalog positions) and the moment they asked."""

    relevant: dict[str, set[int]]
    at_us: dict[str, int]

    def __len__(self) -> int:
        return len(self.relevant)

    def only(self, keep: Callable[[int], bool]) -> Truth:
        relevant = {u: {p for p in r if keep(p)} for u, r in self.relevant.items()}
        return Truth(relevant, self.at_us)


def truth(
    data: EvalDataset, period: pd.DataFrame, catalog: Catalog, history_users: set[str]
) -> Truth:
    """Each user's relevant items in ``period`` (catalog positions), for users with history;
    they ask at their first event of the period."""
    relevant = period[data.relevant.loc[period.index].to_numpy()]
    positions = catalog.positions(relevant["garment_id"])
    frame = relevant.assign(position=positions)
    frame = frame[(frame["position"] >= 0) & frame["user_id"].isin(history_users)]
    asked = period.groupby("user_id")["occurred_at_us"].min()
    users = {user: set(group.tolist()) for user, group in frame.groupby("user_id")["position"]}
    return Truth(users, {u: int(asked[u]) for u in users})


@contextlib.contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS as the services run it: one thread per query (see configure_for_serving)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _bar(items: Iterable, total: int, label: str, show: bool) -> Iterable:
    return tqdm(items, total=total, desc=label, leave=False, disable=not show, file=sys.stderr)


def _rankings(
    model: HybridModel,
    users: Truth,
    k: int,
    exclude: tuple[str, ...] = (),
    label: str = "",
    progress: bool = False,
) -> list[tuple[list[int], set[int]]]:
    out = []
    for user, relevant in _bar(users.relevant.items(), len(users), label, progress):
        request = RankRequest(
            user, k=k, include_out_of_stock=True, exclude_garment_ids=exclude,
            at_us=users.at_us.get(user, 0),
        )  # fmt: skip
        ranked = model.rank(request)
        out.append(([r.position for r in ranked], relevant))
    return out


def tune_als(
    data: EvalDataset,
    fit_on: Callable[[ALSParams], Fitted],
    users: Truth,
    log: Callable[[str], None],
    progress: bool = False,
) -> ALSParams:
    best, best_score = ALSParams(), -1.0
    grid = list(itertools.product(*ALS_GRID.values()))
    for factors, reg, alpha in _bar(grid, len(grid), "tuning ALS", progress):
        # The grid's own sweeps, as its tables were run (see docs/benchmarks.md, Training at
        # 20M events, for the same evaluation with the trained default of 10).
        params = ALSParams(factors=factors, regularization=reg, alpha=alpha, iterations=15)
        fitted = fit_on(params)
        score = ranking_metrics(_rankings(fitted.model(MODELS["als"]), users, K), K).ndcg
        log(f"  als factors={factors} reg={reg} alpha={alpha}: val ndcg@{K} {score:.4f}")
        if score > best_score:
            best, best_score = params, score
    return best


def tune_blend(
    model: HybridModel,
    users: dict[str, set[int]] | Truth,
    k: int = K,
    rounds: int = 2,
    progress: bool = False,
) -> tuple[BlendWeights, float]:
    """Coordinate ascent over channel weights for validation NDCG@k (candidates computed once)."""
    if not isinstance(users, Truth):
        users = Truth(users, {})
    cached: list[tuple[Candidates, set[int]]] = [
        (model.candidates(RankRequest(user, k=k, include_out_of_stock=True,
                                      at_us=users.at_us.get(user, 0))), relevant)
        for user, relevant in _bar(users.relevant.items(), len(users), "blend candidates", progress)
    ]  # fmt: skip

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


def _top(scores: np.ndarray, k: int) -> list[int]:
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, dtype=np.int64)
    return top[np.argsort(-scores[top], kind="stable")].tolist()


def baselines(
    data: EvalDataset, history: pd.DataFrame, final: Fitted, users: Truth, k: int
) -> dict[str, list[tuple[list[int], set[int]]]]:
    """The reference rankings, without Drape's filters (see the module's docstring)."""
    catalog = final.catalog
    positives = history[data.relevant.loc[history.index].to_numpy()]
    positions = catalog.positions(positives["garment_id"])
    known = positions >= 0
    counts = np.bincount(positions[known], minlength=len(catalog)).astype(np.float64)
    popular = _top(counts, k)
    # Each user's own relevant items by count, the latest first among equals.
    own = pd.DataFrame({
        "user": positives["user_id"].to_numpy()[known], "position": positions[known],
        "at": positives["occurred_at_us"].to_numpy()[known],
    }).groupby(["user", "position"]).agg(n=("at", "size"), last=("at", "max")).reset_index()  # fmt: skip
    own = own.sort_values(["user", "n", "last"], ascending=[True, False, False], kind="stable")
    favourites = {u: g.tolist() for u, g in own.groupby("user", sort=False)["position"]}
    col_to_pos = catalog.positions(final.matrix.items.ids)
    n_items = final.als.n_items
    out: dict[str, list[tuple[list[int], set[int]]]] = {name: [] for name in BASELINES}
    for user, relevant in users.relevant.items():
        out[BASELINES[0]].append((popular, relevant))
        mine = favourites.get(user, [])[:k]
        taken = set(mine)
        out[BASELINES[1]].append(
            (mine + [p for p in popular if p not in taken][: k - len(mine)], relevant)
        )
        index = final.matrix.users.index_of(user)
        if 0 <= index < len(final.als.user_factors):
            scores = final.als.scores(final.als.user_factors[index])
            scores = np.where(col_to_pos[:n_items] >= 0, scores, -np.inf)
            ranked = [int(col_to_pos[c]) for c in _top(scores, k) if np.isfinite(scores[c])]
        else:
            ranked = []
        out[BASELINES[2]].append((ranked, relevant))
    return out


def evaluate(
    data: EvalDataset,
    log: Callable[[str], None] = print,
    tune: bool = True,
    progress: bool = False,
) -> dict[str, object]:
    """Runs the whole protocol; returns the report (rows per model, tuned settings, timings)."""
    with one_faiss_thread():
        return _evaluate(data, log, tune, progress)


def _evaluate(
    data: EvalDataset, log: Callable[[str], None], tune: bool, progress: bool
) -> dict[str, object]:
    started = time.perf_counter()
    split = time_split(data)
    is_cold = np.isin(data.catalog.ids, split.cold_items)
    warm_catalog = _subset(data.catalog, ~is_cold)
    warm_vectors = data.vectors[~is_cold] if data.vectors is not None else None
    log(f"{data.name}: {len(data.events):,} events, {len(data.catalog):,} items ({is_cold.sum()} cold); "
        f"train {len(split.train):,} / validation {len(split.validation):,} / test {len(split.test):,}")  # fmt: skip

    def fit_train(params: ALSParams) -> Fitted:
        return fit(data, warm_catalog, warm_vectors, split.train, params)

    val_users = truth(data, split.validation, warm_catalog, set(split.train["user_id"]))
    history = pd.concat([split.train, split.validation])
    users = set(history["user_id"])
    test_users = truth(data, split.test, warm_catalog, users)
    if not len(test_users):
        raise ValueError(
            f"no user can be evaluated: none of the {split.test['user_id'].nunique():,} users "
            f"with test events has both a relevant test event on a known item and history "
            f"before it ({data.split} split); check the relevant event types and the item ids"
        )
    if not len(val_users):
        log("no validation user (every user has a single relevant basket): nothing is tuned")
        tune = False
    als_params = tune_als(data, fit_train, val_users, log, progress) if tune else ALSParams()
    if len(val_users):
        weights, val_ndcg = tune_blend(
            fit_train(als_params).model(BlendWeights()), val_users, progress=progress
        )
    else:
        weights, val_ndcg = BlendWeights(), float("nan")
    log(f"tuned: {als_params}; blend {asdict(weights)} (validation ndcg@{K} {val_ndcg:.4f})")

    final = fit(data, warm_catalog, warm_vectors, history, als_params)
    # The cold slice: the same models over the whole catalog, restricted to the cold items.
    cold = None
    if is_cold.any() and data.vectors is not None:
        joint = replace(
            final,
            catalog=data.catalog,
            embeddings=EmbeddingIndex.build(data.catalog.ids, data.vectors),
            excluded=excluded_by_user(data.catalog, history, data.exclude_after),
            repurchase=RepurchaseStats.fit(data.catalog, history),
        )
        cold = (joint, truth(data, split.test, data.catalog, users).only(lambda p: is_cold[p]))
    warm_ids = tuple(warm_catalog.ids.tolist())
    rows = []
    models = {**MODELS, "hybrid": weights}
    if data.vectors is None:
        del models["embedding"]
    for name, blend in models.items():
        warm_rank = _rankings(final.model(blend), test_users, K_COLD, label=name, progress=progress)
        row = _row(name, warm_rank, len(warm_catalog))
        if cold is not None:
            cold_rank = _rankings(cold[0].model(blend), cold[1], K_COLD, exclude=warm_ids)
            cold_metrics = ranking_metrics(cold_rank, K_COLD)
            row[f"cold_recall@{K_COLD}"] = cold_metrics.recall
            row["cold_users"] = cold_metrics.users
        rows.append(row)
    for name, ranked in baselines(data, history, final, test_users, K_COLD).items():
        rows.append(_row(name, ranked, len(warm_catalog)))
    return {
        "dataset": data.name,
        "protocol": f"{data.split} split (80/10/10 by time unless last_basket; baskets never "
        f"split), {round(len(split.cold_items) / max(len(data.catalog), 1) * 100)}% items "
        "held out as cold, tuned on validation; decay from the end of the training period",
        "als": asdict(als_params),
        "sequential": asdict(SEQUENTIAL),
        "blend": asdict(weights),
        "exclude_after": list(data.exclude_after),
        "test_users": len(test_users),
        "seconds": round(time.perf_counter() - started, 1),
        "results": rows,
    }


def _row(name: str, ranked: list[tuple[list[int], set[int]]], n_items: int) -> dict[str, object]:
    at_k = ranking_metrics(((r[:K], t) for r, t in ranked), K)
    return {
        "model": name, **at_k.as_dict(K), f"recall@{K_COLD}": ranking_metrics(ranked, K_COLD).recall,
        "coverage@10": coverage((r[:K] for r, _ in ranked), n_items),
    }  # fmt: skip
