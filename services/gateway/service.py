"""GatewayService: the storefront's single entry point.

Recommend asks the recommend service for the ranking and attaches a preview
status to every item; Track forwards feedback to the events service. Deadlines
and request ids flow to both through the runtime's client channels.
"""

from __future__ import annotations

import time

import grpc
from drape.v1 import (
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    features_pb2,
    features_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    splice_pb2,
    splice_pb2_grpc,
    tryon_pb2,
    tryon_pb2_grpc,
)
from prometheus_client import CollectorRegistry, Counter

from services.runtime import (
    DrapeConfig,
    InvalidArgument,
    ResourceExhausted,
    ServiceSpec,
    connect,
)

MAX_PREVIEWS = 16


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        recommend: recommend_pb2_grpc.RecommendServiceStub,
        events: events_pb2_grpc.EventsServiceStub,
        features: features_pb2_grpc.FeaturesServiceStub,
        tryon: tryon_pb2_grpc.TryOnServiceStub,
        splice: splice_pb2_grpc.SpliceServiceStub,
        max_photo_bytes: int,
        registry: CollectorRegistry,
    ) -> None:
        self.recommend = recommend
        self.events = events
        self.features = features
        self.tryon = tryon
        self.splice = splice
        self.photos = Counter(
            "drape_gateway_photos",
            "Shopper photos sent with recommendation requests, by whether they steered the ranking.",
            ["outcome"],
            registry=registry,
        )
        self.max_photo_bytes = max_photo_bytes
        self.previews = Counter(
            "drape_previews",
            "Try-on previews attached to recommendations, by status and experiment variant.",
            ["status", "experiment", "variant"],
            registry=registry,
        )

    def _check_photo(self, photo: common_pb2.Image, field: str) -> None:
        if len(photo.data) > self.max_photo_bytes:
            raise ResourceExhausted(
                f"{field} is {len(photo.data) / 2**20:.1f} MiB; the limit is "
                f"{self.max_photo_bytes / 2**20:.0f} MiB: downscale it before sending"
            )

    def Recommend(
        self, request: gateway_pb2.GatewayServiceRecommendRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.GatewayServiceRecommendResponse:
        self._check_photo(request.photo, "photo")
        if request.preview_limit < 0:
            raise InvalidArgument("preview_limit", "must not be negative")
        if not request.user_id:
            raise InvalidArgument("user_id", "is required (use a stable anonymous id for guests)")
        photo_use, photo_embedding = self._photo_embedding(request)
        ranked = self.recommend.Recommend(
            recommend_pb2.RecommendRequest(
                user_id=request.user_id,
                k=request.k,
                context=request.context,
                photo_embedding=photo_embedding,
            )
        )
        response = gateway_pb2.GatewayServiceRecommendResponse(
            recommendation_id=ranked.recommendation_id,
            assignment=ranked.assignment,
            items=ranked.items,
            model_version=ranked.model_version,
            photo=photo_use,
        )
        self._attach_previews(request, response)
        return response

    def _photo_embedding(
        self, request: gateway_pb2.GatewayServiceRecommendRequest
    ) -> tuple[gateway_pb2.PhotoUse | None, list[float]]:
        """The garment worn in the photo, embedded by the features service. A bad photo is
        the caller's error; a person the photo cannot be used for, or the features service
        being down, only means ranking without it."""
        if not request.photo.data:
            return None, []
        try:
            reply = self.features.EmbedUser(
                features_pb2.EmbedUserRequest(user_id=request.user_id, photo=request.photo)
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
                raise
            self.photos.labels("features_unavailable").inc()
            return gateway_pb2.PhotoUse(
                used=False, reason=f"the features service is unavailable ({exc.code().name})"
            ), []
        if not reply.photo_embedding.values:
            self.photos.labels("not_usable").inc()
            return gateway_pb2.PhotoUse(used=False, reason=reply.analysis.reason), []
        self.photos.labels("used").inc()
        embedding = reply.photo_embedding
        return gateway_pb2.PhotoUse(used=True, model_version=embedding.model_version), list(
            embedding.values
        )

    def _attach_previews(
        self,
        request: gateway_pb2.GatewayServiceRecommendRequest,
        response: gateway_pb2.GatewayServiceRecommendResponse,
    ) -> None:
        assignment = response.assignment
        limit = min(request.preview_limit or MAX_PREVIEWS, MAX_PREVIEWS)
        for item in response.items[:limit]:
            if not request.previews:
                status, reason = common_pb2.PREVIEW_STATUS_SKIPPED, "previews were not requested"
            elif not assignment.previews_enabled:
                status = common_pb2.PREVIEW_STATUS_SKIPPED
                reason = f"variant {assignment.variant!r} does not show previews"
            elif not request.photo.data:
                status, reason = common_pb2.PREVIEW_STATUS_SKIPPED, "no photo was sent"
            else:
                status = common_pb2.PREVIEW_STATUS_UNAVAILABLE
                reason = (
                    "previews inside Recommend are not in this release; call TryOn for one garment"
                )
            item.preview.status = status
            item.preview.reason = reason
            self.previews.labels(
                common_pb2.PreviewStatus.Name(status).removeprefix("PREVIEW_STATUS_").lower(),
                assignment.experiment,
                assignment.variant,
            ).inc()

    def TryOn(
        self, request: gateway_pb2.TryOnRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.TryOnResponse:
        self._check_photo(request.photo, "photo")
        if not request.photo.data:
            raise InvalidArgument("photo", "is required")
        which = request.WhichOneof("garment")
        if which is None:
            raise InvalidArgument("garment", "send a garment_id or a garment_image")
        garment = {which: getattr(request, which)}
        return gateway_pb2.TryOnResponse(
            request_id=request.request_id, preview=self._preview(request.photo, garment)
        )

    def _preview(self, photo: common_pb2.Image, garment: dict[str, object]) -> common_pb2.Preview:
        """One preview: the GAN on Triton (tryon), then back into the photo (splice). The
        try-on backend being down or too slow is a preview status, not a failed call."""
        started = time.perf_counter()
        try:
            generated = self.tryon.Generate(tryon_pb2.GenerateRequest(photo=photo, **garment))
            if not generated.rendered.data:
                return common_pb2.Preview(status=common_pb2.PREVIEW_STATUS_FAILED, reason=generated.analysis.reason,
                                          model_version=generated.model_version)  # fmt: skip
            composite = self.splice.Compose(
                splice_pb2.ComposeRequest(
                    photo=photo,
                    rendered=generated.rendered,
                    garment_mask=generated.garment_mask,
                    crop=generated.crop,
                )
            )
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                status = common_pb2.PREVIEW_STATUS_TIMED_OUT
            elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION):
                status = common_pb2.PREVIEW_STATUS_UNAVAILABLE
            else:
                raise
            return common_pb2.Preview(status=status, reason=f"try-on backend: {exc.details()}")
        return common_pb2.Preview(
            status=common_pb2.PREVIEW_STATUS_OK,
            image=composite.composite,
            model_version=generated.model_version,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def Track(
        self, request: gateway_pb2.TrackRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.TrackResponse:
        recorded = self.events.Record(
            events_pb2.RecordRequest(events=request.events, allow_partial=request.allow_partial)
        )
        return gateway_pb2.TrackResponse(
            stored=recorded.stored,
            duplicates=recorded.duplicates,
            rejected=recorded.rejected,
            results=recorded.results,
        )


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.gateway
    recommend_channel = connect(cfg.recommend_address, cfg.server)
    events_channel = connect(cfg.events_address, cfg.server)
    features_channel = connect(cfg.features_address, cfg.server)
    tryon_channel = connect(cfg.tryon_address, cfg.server)
    splice_channel = connect(cfg.splice_address, cfg.server)
    registry = CollectorRegistry()
    servicer = GatewayServicer(
        recommend_pb2_grpc.RecommendServiceStub(recommend_channel),
        events_pb2_grpc.EventsServiceStub(events_channel),
        features_pb2_grpc.FeaturesServiceStub(features_channel),
        tryon_pb2_grpc.TryOnServiceStub(tryon_channel),
        splice_pb2_grpc.SpliceServiceStub(splice_channel),
        cfg.max_photo_mb * 2**20,
        registry,
    )

    def stop() -> None:
        recommend_channel.close()
        events_channel.close()
        features_channel.close()
        tryon_channel.close()
        splice_channel.close()

    return ServiceSpec(
        name="gateway",
        grpc_services=[gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name],
        register=lambda server: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=stop,
    )
