"""RecommendService: ranks the catalog for a shopper and assigns the experiment variant."""

from __future__ import annotations

import functools
import threading
import uuid
from typing import Any

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter

from drape.recsys.catalog import Catalog
from drape.recsys.experiments import Assignment, Plan, PlanSource
from drape.recsys.index import configure_for_serving
from drape.recsys.ranking import Ranked, RankRequest
from drape.services.events.store import open_event_store
from drape.services.recommend.shared import pod_bases
from drape.services.recommend.state import RecommendState
from drape.services.runtime import (
    DrapeConfig,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceSpec,
)
from drape.services.runtime.experiments import watch_experiments
from drape.services.runtime.storage import ObjectStorage
from drape.v1 import common_pb2, recommend_pb2, recommend_pb2_grpc

CHANNELS = {
    "popularity": common_pb2.CHANNEL_POPULARITY,
    "category_popularity": common_pb2.CHANNEL_CATEGORY_POPULARITY,
    "collaborative": common_pb2.CHANNEL_COLLABORATIVE,
    "visual": common_pb2.CHANNEL_VISUAL,
    "photo": common_pb2.CHANNEL_PHOTO,
    "similar": common_pb2.CHANNEL_SIMILAR,
    "sequential": common_pb2.CHANNEL_SEQUENTIAL,
    "engagement": common_pb2.CHANNEL_ENGAGEMENT,
    "repurchase": common_pb2.CHANNEL_REPURCHASE,
}


@functools.lru_cache(maxsize=100_000)
def garment_proto(catalog: Catalog, position: int) -> common_pb2.Garment:
    """A catalog row as a message; cached per catalog (a reload brings a new catalog object),
    and never mutated: messages that embed it take a copy."""
    row = catalog.row(position)
    return common_pb2.Garment(
        garment_id=row["garment_id"],
        title=row["title"],
        category=row["category"],
        price_minor=int(row["price_minor"]),
        currency=row["currency"],
        in_stock=bool(row["in_stock"]),
        attributes={"colour": row["colour"], "pattern": row["pattern"]},
        image_uri=row["image_uri"] or "",
    )


def add_ranked(items: Any, catalog: Catalog, ranked: list[Ranked]) -> None:
    """Appends ``ranked`` to a repeated ``RecommendedGarment`` field, best first. Filling
    the field in place costs half as much as building messages and copying them in."""
    for rank, item in enumerate(ranked, start=1):
        out = items.add(score=item.score, rank=rank)
        out.garment.CopyFrom(garment_proto(catalog, item.position))
        for name, (score, channel_rank) in item.channels.items():
            out.channels.add(channel=CHANNELS[name], score=score, rank=channel_rank)


def rank_request(user_id: str, k: int, context: common_pb2.RecommendContext) -> RankRequest:
    return RankRequest(
        user_id=user_id,
        k=k,
        categories=tuple(context.categories),
        exclude_categories=tuple(context.exclude_categories),
        exclude_garment_ids=tuple(context.exclude_garment_ids),
        include_out_of_stock=context.include_out_of_stock,
    )


def assignment_protos(assigned: Assignment) -> list[common_pb2.ExperimentAssignment]:
    """One message per experiment the user is in (a single one with empty names when in
    none), each with the strategy and previews setting that apply."""
    arms = [(a.experiment.name, a.variant.name, a.experiment.version) for a in assigned.arms]
    return [
        common_pb2.ExperimentAssignment(
            experiment=experiment,
            variant=variant,
            version=version,
            strategy=assigned.strategy,
            previews_enabled=assigned.previews,
        )
        for experiment, variant, version in arms or [("", "", "")]
    ]


class RecommendServicer(recommend_pb2_grpc.RecommendServiceServicer):
    def __init__(
        self,
        state: RecommendState,
        plans: PlanSource | Plan,
        max_k: int,
        registry: CollectorRegistry,
    ) -> None:
        self.state = state
        self._plans = plans
        self.max_k = max_k
        self._ranking = threading.Lock()
        self._served = Counter(
            "drape_recommendations",
            "Recommendation lists served, by experiment variant and strategy.",
            ["experiment", "variant", "strategy"],
            registry=registry,
        )

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.max_k:
            raise InvalidArgument("k", f"must be between 1 and {self.max_k} (got {k})")

    def _photo(self, values: list[float], dim: int | None) -> np.ndarray | None:
        if not values:
            return None
        vector = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vector).all() or not np.any(vector):
            raise InvalidArgument("photo_embedding", "must be finite and not all zeros")
        if dim is None:
            return None  # no garment embeddings indexed yet: rank without the photo channel
        if vector.size != dim:
            raise InvalidArgument(
                "photo_embedding", f"has {vector.size} values; the garment embeddings have {dim}"
            )
        return vector

    def Recommend(
        self, request: recommend_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.RecommendResponse:
        if not request.user_id:
            raise InvalidArgument("user_id", "is required (use a stable anonymous id for guests)")
        self._check_k(request.k)
        models = self.state.current()
        photo = self._photo(list(request.photo_embedding), models.embedding_dim)
        assigned = self._plans.current().assign(request.user_id)
        # One ranking at a time per process: the interpreter lock runs one at a time anyway,
        # and taking turns by request rather than by the interpreter's 5 ms time slices
        # keeps a request from waiting behind several others' slices (the latency tail).
        with self._ranking:
            items = models.rank(
                assigned.strategy, rank_request(request.user_id, request.k, request.context), photo
            )
        arms = assignment_protos(assigned)
        for arm in arms:
            self._served.labels(arm.experiment, arm.variant, assigned.strategy).inc()
        response = recommend_pb2.RecommendResponse(
            recommendation_id=uuid.uuid4().hex,
            assignment=arms[0],
            assignments=arms if assigned.arms else [],
            model_version=models.model_version(assigned.strategy),
        )
        add_ranked(response.items, models.catalog, items)
        return response

    def SimilarGarments(
        self, request: recommend_pb2.SimilarGarmentsRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.SimilarGarmentsResponse:
        if not request.garment_id:
            raise InvalidArgument("garment_id", "is required")
        self._check_k(request.k)
        models = self.state.current()
        if request.garment_id not in models.catalog:
            raise NotFound(f"garment {request.garment_id!r} is not in the catalog")
        if models.hybrid is None:
            raise FailedPrecondition(
                "similar garments need a trained recommender (embeddings or ALS); run `drape train recsys`"
            )
        items = models.hybrid.similar(
            request.garment_id, rank_request("", request.k, request.context)
        )
        response = recommend_pb2.SimilarGarmentsResponse(model_version=models.hybrid.version)
        add_ranked(response.items, models.catalog, items)
        return response


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.recommend
    store = open_event_store(cfg.events_store_url or config.events_store_url())

    registry = CollectorRegistry()
    state = RecommendState(config.catalog_path(), store, cfg, config.recsys_artifacts(),
                           registry=registry, storage=ObjectStorage.from_config(config),
                           shared=pod_bases(cfg.server.shared_dir))  # fmt: skip
    servicer = RecommendServicer(state, watch_experiments(config, registry), cfg.max_k, registry)
    state.start()

    def stop() -> None:
        state.stop()
        store.close()

    return ServiceSpec(
        name="recommend",
        grpc_services=[recommend_pb2.DESCRIPTOR.services_by_name["RecommendService"].full_name],
        register=lambda server: recommend_pb2_grpc.add_RecommendServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=stop,
        on_reload=state.request_reload,
        # OpenMP settings are per thread: the handler threads search FAISS, not this one.
        on_thread_start=configure_for_serving,
    )
