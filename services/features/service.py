"""FeaturesService: garment and shopper embeddings (EfficientNet-Lite0 encoder, served by
Triton or in-process) and MediaPipe person analysis. API: protos/drape/v1/features.proto."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from drape.models.images import DecodedImage, encode_png
from drape.models.person import POSE_LANDMARKS, PersonAnalysis, PersonStatus
from drape.models.runners import RunnerTimedOut, RunnerUnavailable
from drape.services.features.extractor import FeatureExtractor, open_encoder
from drape.services.runtime import DrapeConfig, ServiceSpec
from drape.services.runtime.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from drape.services.runtime.images import decode_field, image_limits
from drape.services.runtime.storage import ObjectStorage
from drape.v1 import common_pb2, features_pb2, features_pb2_grpc

STATUS = {
    PersonStatus.OK: features_pb2.PERSON_STATUS_OK,
    PersonStatus.NO_PERSON: features_pb2.PERSON_STATUS_NO_PERSON,
    PersonStatus.MULTIPLE_PERSONS: features_pb2.PERSON_STATUS_MULTIPLE_PERSONS,
    PersonStatus.CROPPED_BODY: features_pb2.PERSON_STATUS_CROPPED_BODY,
    PersonStatus.FACING_SIDEWAYS: features_pb2.PERSON_STATUS_FACING_SIDEWAYS,
    PersonStatus.TORSO_OCCLUDED: features_pb2.PERSON_STATUS_TORSO_OCCLUDED,
}


def _box(box: tuple[float, float, float, float] | None) -> common_pb2.BoundingBox | None:
    if box is None:
        return None
    return common_pb2.BoundingBox(x_min=box[0], y_min=box[1], x_max=box[2], y_max=box[3])


def _png(pixels: np.ndarray) -> common_pb2.Image:
    return common_pb2.Image(
        data=encode_png(pixels),
        media_type="image/png",
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
    )


def analysis_proto(analysis: PersonAnalysis, include_masks: bool) -> features_pb2.PersonAnalysis:
    message = features_pb2.PersonAnalysis(
        status=STATUS[analysis.status],
        reason=analysis.reason,
        width=analysis.width,
        height=analysis.height,
        keypoints=[
            features_pb2.Keypoint(name=name, x=float(x), y=float(y), visibility=float(v))
            for name, (x, y, _z, v) in zip(POSE_LANDMARKS, analysis.keypoints, strict=False)
        ],
        face_box=_box(analysis.face_box),
        upper_body_box=_box(analysis.upper_body_box),
    )
    if include_masks and analysis.ok:
        message.person_mask.CopyFrom(_png(analysis.person_mask))
        message.upper_body_mask.CopyFrom(_png(analysis.upper_body_mask))
        message.agnostic_person.CopyFrom(_png(analysis.agnostic))
    return message


class FeaturesServicer(features_pb2_grpc.FeaturesServiceServicer):
    def __init__(
        self, extractor: FeatureExtractor, batch_size: int, registry: CollectorRegistry
    ) -> None:
        self.extractor = extractor
        self.batch_size = batch_size
        self.images = Counter(
            "drape_features_images",
            "Images received, by RPC and outcome (embedded, rejected, too_large).",
            ["rpc", "outcome"],
            registry=registry,
        )
        self.model_seconds = Histogram(
            "drape_features_encoder_seconds",
            "Time of one encoder call (a batch), through Triton or in-process.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_sizes = Histogram(
            "drape_features_batch_size",
            "Images per encoder call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.person_status = Counter(
            "drape_features_person_status",
            "Person analyses by status.",
            ["status"],
            registry=registry,
        )

    # -- helpers ------------------------------------------------------------------
    def _decode(self, rpc: str, field: str, image: common_pb2.Image) -> DecodedImage:
        try:
            return decode_field(field, image, self.extractor.limits)
        except ResourceExhausted:
            self.images.labels(rpc, "too_large").inc()
            raise
        except InvalidArgument:
            self.images.labels(rpc, "rejected").inc()
            raise

    def _embed(self, inputs: list[np.ndarray]) -> np.ndarray:
        started = time.perf_counter()
        try:
            embeddings = self.extractor.embed_inputs(inputs)
        except RunnerTimedOut as exc:
            raise DeadlineExceeded(f"the encoder did not answer in time: {exc}") from None
        except RunnerUnavailable as exc:
            raise Unavailable(f"the encoder is unavailable: {exc}") from None
        self.model_seconds.observe(time.perf_counter() - started)
        self.batch_sizes.observe(len(inputs))
        return embeddings

    def _embedding(self, vector: np.ndarray) -> features_pb2.Embedding:
        return features_pb2.Embedding(
            values=vector.tolist(), model_version=self.extractor.model_version
        )

    def _analyze(self, rgb: np.ndarray) -> PersonAnalysis:
        analysis = self.extractor.analyze(rgb)
        self.person_status.labels(analysis.status.value).inc()
        return analysis

    # -- RPCs ---------------------------------------------------------------------
    def EmbedGarments(
        self,
        request_iterator: Iterator[features_pb2.EmbedGarmentsRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[features_pb2.EmbedGarmentsResponse]:
        pending: list[tuple[str, np.ndarray | None, str]] = []
        for request in request_iterator:
            pending.append(self._garment_input(request))
            if len(pending) >= self.batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def _garment_input(
        self, request: features_pb2.EmbedGarmentsRequest
    ) -> tuple[str, np.ndarray | None, str]:
        """(garment id, encoder input or None, error): a bad item fails alone."""
        if not request.garment_id:
            self.images.labels("EmbedGarments", "rejected").inc()
            return "", None, "garment_id: is required"
        try:
            decoded = self._decode("EmbedGarments", "image", request.image)
        except (InvalidArgument, ResourceExhausted) as exc:
            return request.garment_id, None, f"{exc.code.name}: {exc.message}"
        return request.garment_id, self.extractor.garment_input(decoded.pixels), ""

    def _flush(
        self, pending: list[tuple[str, np.ndarray | None, str]]
    ) -> Iterator[features_pb2.EmbedGarmentsResponse]:
        good = [item for item in pending if item[1] is not None]
        vectors = iter(self._embed([item[1] for item in good]) if good else [])
        if good:
            self.images.labels("EmbedGarments", "embedded").inc(len(good))
        for garment_id, pixels, error in pending:
            if pixels is None:
                yield features_pb2.EmbedGarmentsResponse(garment_id=garment_id, error=error)
            else:
                yield features_pb2.EmbedGarmentsResponse(
                    garment_id=garment_id, embedding=self._embedding(next(vectors))
                )

    def EmbedUser(
        self, request: features_pb2.EmbedUserRequest, context: grpc.ServicerContext
    ) -> features_pb2.EmbedUserResponse:
        if not request.photo.data and not request.history_garment_ids:
            raise InvalidArgument("photo", "send a photo, history_garment_ids, or both")
        response = features_pb2.EmbedUserResponse(request_id=request.request_id)
        if request.photo.data:
            decoded = self._decode("EmbedUser", "photo", request.photo)
            analysis = self._analyze(decoded.pixels)
            if analysis.ok:
                garment = self.extractor.worn_input(decoded.pixels, analysis)
                response.photo_embedding.CopyFrom(self._embedding(self._embed([garment])[0]))
                self.images.labels("EmbedUser", "embedded").inc()
            response.analysis.CopyFrom(analysis_proto(analysis, include_masks=False))
        if request.history_garment_ids:
            history, _found = self.extractor.history_embedding(list(request.history_garment_ids))
            if history is not None:
                response.history_embedding.CopyFrom(self._embedding(history))
        return response

    def AnalyzePerson(
        self, request: features_pb2.AnalyzePersonRequest, context: grpc.ServicerContext
    ) -> features_pb2.AnalyzePersonResponse:
        decoded = self._decode("AnalyzePerson", "photo", request.photo)
        analysis = self._analyze(decoded.pixels)
        return features_pb2.AnalyzePersonResponse(
            request_id=request.request_id,
            analysis=analysis_proto(analysis, request.include_masks),
        )


def _embeddings_sync(config: DrapeConfig) -> Callable[[], object] | None:
    """With object storage: fetch a newly ingested catalog's embeddings (checked every few
    seconds at most)."""
    remote = ObjectStorage.from_config(config)
    return None if remote is None else (lambda: remote.pull_catalog(embeddings=True))


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.features
    extractor = FeatureExtractor(
        open_encoder(config),
        image_limits(cfg),
        analyzers=cfg.analyzers,
        embeddings_dir=config.embeddings_path(),
        history_half_life=cfg.history_half_life,
        sync=_embeddings_sync(config),
    )
    extractor.warm()
    registry = CollectorRegistry()
    servicer = FeaturesServicer(extractor, cfg.batch_size, registry)
    return ServiceSpec(
        name="features",
        grpc_services=[features_pb2.DESCRIPTOR.services_by_name["FeaturesService"].full_name],
        register=lambda server: features_pb2_grpc.add_FeaturesServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=extractor.close,
    )
