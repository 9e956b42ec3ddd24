"""Training the recommender from the event store: `drape train recsys`.

Builds the interaction matrix, tunes the hybrid's blend weights on the most
recent tenth of the events (ALS fit on the rest; past ``tuning_events``, on a
random sample of the shoppers), fits ALS on everything, and writes a versioned
artifact set (see :mod:`drape.recsys.artifacts`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import faiss
import numpy as np
import pandas as pd

from drape.recsys.als import ALSModel, ALSParams
from drape.recsys.artifacts import ArtifactSet
from drape.recsys.catalog import Catalog
from drape.recsys.evaluation import tune_blend
from drape.recsys.hybrid import HybridModel, HybridParams, als_item_index
from drape.recsys.idmap import IdMap
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import InteractionMatrix
from drape.recsys.memory import release_free_memory
from drape.recsys.ranking import EXCLUDE_AFTER, excluded_by_user
from drape.recsys.repurchase import RepurchaseStats
from drape.recsys.sequential import SequentialParams

log = logging.getLogger("drape.train")
T = TypeVar("T")


@dataclass(frozen=True)
class TrainSettings:
    weights: Mapping[str, float]
    half_life_days: float = 14.0
    als: ALSParams = field(default_factory=ALSParams)
    sequential: SequentialParams = field(default_factory=SequentialParams)
    params: HybridParams = field(default_factory=HybridParams)
    tune: bool = True
    validation_share: float = 0.1
    # Users sampled for tuning (enough for stable NDCG, few enough to be quick).
    tuning_users: int = 500
    # Events the blend is tuned on, at most: a larger log is tuned on a random sample of its
    # shoppers, with all their events. The weights balance the channels, and a sample of
    # hundreds of thousands of shoppers ranks them as the whole log does; fitting ALS and
    # the rules on the whole log for the tuning cost as much as the training itself.
    tuning_events: int = 5_000_000
    # The tuning fit only has to rank candidates sensibly: fewer sweeps suffice.
    tuning_iterations: int = 5
    # The repeat policy (see excluded_by_user), as the recommend service applies it.
    exclude_after: tuple[str, ...] = EXCLUDE_AFTER


@dataclass
class TrainReport:
    version: str
    seconds: dict[str, float]
    events: int
    users: int
    items: int
    validation_ndcg: float | None


def _relevant_by_user(
    catalog: Catalog, events: pd.DataFrame, users: IdMap, limit: int
) -> dict[str, set[int]]:
    """The garments carted or bought by the first ``limit`` (by id) of ``users`` that did."""
    positive = events[events["type"].isin(["add_to_cart", "purchase"])]
    frame = positive.assign(position=catalog.positions(positive["garment_id"]))
    frame = frame[(frame["position"] >= 0).to_numpy() & (users.lookup(frame["user_id"]) >= 0)]
    chosen = sorted(frame["user_id"].unique())[:limit]
    frame = frame[frame["user_id"].isin(chosen)]
    return {u: set(g.tolist()) for u, g in frame.groupby("user_id")["position"]}


def shopper_sample(events: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """All the events of a random share of the shoppers, about ``limit`` events in all; the
    events themselves when there are no more than ``limit``."""
    if len(events) <= limit:
        return events
    codes, shoppers = pd.factorize(events["user_id"])
    kept = np.random.default_rng(seed).random(len(shoppers)) < limit / len(events)
    return events[kept[codes]]


def train(
    events: pd.DataFrame,
    catalog: Catalog,
    embeddings: EmbeddingIndex | None,
    settings: TrainSettings,
    now_us: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
    timed: Mapping[str, float] | None = None,
) -> tuple[ArtifactSet, TrainReport]:
    """Fits everything the hybrid needs; returns the artifact set (not yet saved).

    The interaction matrix and then the sequential rules are built on a thread of their own
    while the blend is tuned and ALS fitted: they need the events only, and numpy and scipy
    run them mostly outside the GIL, so on two cores the rules take most of their time off
    the total (see docs/benchmarks.md, Training at 20M events). Their ``seconds`` therefore
    overlap the tuning's and ALS's; ``total`` is the time from start to finish.
    ``timed``: seconds of stages before this one (the read), kept with its own stages and
    counted in the total."""
    timings: dict[str, float] = dict(timed or {})
    started = time.perf_counter()
    now_us = (
        now_us or int(events["occurred_at_us"].max()) if len(events) else int(time.time() * 1e6)
    )

    def timed_stage(name: str, work: Callable[[], T]) -> T:
        t = time.perf_counter()
        result = work()
        timings[name] = time.perf_counter() - t
        return result

    with ThreadPoolExecutor(1, thread_name_prefix="drape-train") as beside:
        # One worker: the rules are fitted once the matrix is built, in submission order.
        building = beside.submit(timed_stage, "matrix", lambda: InteractionMatrix.build(
            events, settings.weights, settings.half_life_days, now_us, keep_timeline=True
        ))  # fmt: skip
        fitting = beside.submit(
            timed_stage, "sequential",
            lambda: building.result().sequential_rules(settings.sequential),
        )  # fmt: skip
        try:
            params, validation_ndcg = settings.params, None
            if settings.tune and len(events) >= 100:
                params, validation_ndcg = timed_stage(
                    "tune", lambda: _tune(events, catalog, embeddings, settings, progress)
                )
            matrix = building.result()
            als = timed_stage("als", lambda: ALSModel.fit(matrix.matrix, settings.als))
            sequential = fitting.result()
        except BaseException:
            fitting.cancel()  # not the rules too, when the rest failed before they started
            raise
    timings["total"] = sum((timed or {}).values()) + time.perf_counter() - started
    order = {name: i for i, name in enumerate(("read", "tune", "matrix", "als", "sequential"))}
    timings = dict(sorted(timings.items(), key=lambda stage: order.get(stage[0], len(order))))
    # Milliseconds and a random tag: two trainings in the same second never collide.
    stamp = time.time()
    version = (
        time.strftime("%Y%m%dT%H%M%S", time.gmtime(stamp))
        + f"{int(stamp * 1000) % 1000:03d}-{len(events)}ev-{secrets.token_hex(2)}"
    )
    artifacts = ArtifactSet(
        version=version,
        users=matrix.users,
        items=matrix.items,
        als=als,
        embeddings=embeddings,
        params=params,
        sequential=sequential,
        manifest={
            "events": len(events),
            "users": len(matrix.users),
            "items": len(matrix.items),
            "nnz": int(matrix.matrix.nnz),
            "sequential_rules": int(sequential.rules.nnz),
            "now_us": now_us,
            "half_life_days": settings.half_life_days,
            "weights": dict(settings.weights),
            "validation_ndcg@10": validation_ndcg,
            "seconds": timings,
        },
    )
    report = TrainReport(
        version, timings, len(events), len(matrix.users), len(matrix.items), validation_ndcg
    )
    return artifacts, report


def _tune(
    events: pd.DataFrame,
    catalog: Catalog,
    embeddings: EmbeddingIndex | None,
    settings: TrainSettings,
    progress: Callable[[str], None],
) -> tuple[HybridParams, float]:
    """The blend weights tuned for NDCG@10 on the most recent ``validation_share`` of the
    events, with ALS, the rules and the repeat policy fitted on the rest (past
    ``tuning_events``, of a sample of the shoppers)."""
    cut = events["occurred_at_us"].quantile(1 - settings.validation_share)
    sample = shopper_sample(events, settings.tuning_events)
    past, recent = (
        sample[sample["occurred_at_us"] < cut],
        sample[sample["occurred_at_us"] >= cut],
    )
    del sample
    if len(events) > settings.tuning_events:
        progress(f"tuning on {len(past) + len(recent):,} events of a sample of the shoppers")
    matrix = InteractionMatrix.build(
        past, settings.weights, settings.half_life_days, int(cut), keep_timeline=True
    )
    progress(f"tuning: ALS on {matrix.matrix.nnz:,} interactions before the validation window")
    als = ALSModel.fit(matrix.matrix, replace(settings.als, iterations=settings.tuning_iterations))
    # Validation users' recent items are their items before the window, as at serving.
    model = HybridModel(
        catalog, matrix, als, embeddings, excluded_by_user(catalog, past, settings.exclude_after),
        settings.params,
        als_index=als_item_index(catalog.positions(matrix.items.ids), als, kind="flat"),
        sequential=matrix.sequential_rules(settings.sequential),
        repurchase=RepurchaseStats.fit(catalog, past), now_us=int(cut),
    )  # fmt: skip
    users = _relevant_by_user(catalog, recent, matrix.users, settings.tuning_users)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query at a time (see configure_for_serving)
    try:
        weights, validation_ndcg = tune_blend(model, users)
    finally:
        faiss.omp_set_num_threads(threads)
    del past, recent, matrix, model, als
    release_free_memory()  # the tuning copies' pages, before ALS allocates its own
    progress(f"tuned blend on {len(users)} validation users: ndcg@10 {validation_ndcg:.4f}")
    return replace(settings.params, weights=weights), validation_ndcg
