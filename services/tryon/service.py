"""TryOnService: a garment rendered onto a shopper's photo by the try-on GAN on Triton.

Generate analyses the photo (MediaPipe), crops it around the person to the model's aspect
ratio, cuts the garment out of its product shot (a catalog id or image bytes), solves the
keypoint TPS, and calls ``tryon_gan`` on Triton with ``tritonclient``; concurrent calls
reach Triton as they come and its dynamic batcher batches them.

A storefront previews k garments on one photo with k concurrent Generate calls: the photo is
decoded and analysed once, by the first of them (the others wait for it), and kept in a
bounded cache keyed by the photo's content hash for ``analysis_ttl_s``. Triton calls wait
at most the caller's remaining deadline. API: protos/drape/v1/tryon.proto."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from drape.catalog.images import ImageStore
from drape.models.encoder import sha256_of
from drape.models.garments import product_mask
from drape.models.images import (
    ImageLimits,
    decode_image,
    encode_png,
)
from drape.models.person import AnalyzerPool, PersonAnalysis
from drape.models.runners import RunnerTimedOut, RunnerUnavailable
from drape.models.tryon.export import INPUTS
from drape.models.tryon.fitting import preview
from drape.models.tryon.inference import person_inputs
from drape.models.tryon.quality import Assessment, assess, measure_outputs
from drape.models.tryon.runners import TritonTryOn, TryOnRunner
from drape.models.tryon.training import to_tensors
from drape.recsys.catalog import Catalog
from drape.services.features.service import analysis_proto
from drape.services.runtime import DrapeConfig, ServiceSpec
from drape.services.runtime import scope as scopes
from drape.services.runtime.cache import TtlCache
from drape.services.runtime.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from drape.services.runtime.images import decode_field, image_limits
from drape.services.runtime.storage import ObjectStorage, StorageError
from drape.v1 import common_pb2, tryon_pb2, tryon_pb2_grpc

log = logging.getLogger("drape.tryon")


class GarmentSource:
    """Product shots of catalog garments, from the content-addressed image store."""

    def __init__(self, catalog_path: Path, images: ImageStore, limits: ImageLimits) -> None:
        self.catalog_path, self.images, self.limits = catalog_path, images, limits
        self._catalog: tuple[float, Catalog] | None = None

    def _sync(self) -> None:
        """With object storage, a catalog published since (checked every few seconds)."""
        if self.images.remote is None:
            return
        try:
            self.images.remote.pull_catalog()
        except StorageError as exc:  # the catalog in hand stays in use
            log.warning("catalog not refreshed from object storage", extra={"error": str(exc)})

    def image(self, garment_id: str) -> np.ndarray:
        catalog = self._load()
        position = int(catalog.positions([garment_id])[0])
        if position < 0:
            raise NotFound(f"garment {garment_id!r} is not in the catalog")
        uri = str(catalog.row(position)["image_uri"])
        if not self.images.holds(uri):
            raise NotFound(
                f"garment {garment_id!r} has no stored product shot; ingest it with `drape ingest`"
            )
        return decode_image(self.images.read(uri)).pixels

    def _load(self) -> Catalog:
        self._sync()
        try:
            stamp = self.catalog_path.stat().st_mtime
        except FileNotFoundError:
            raise NotFound(f"no catalog at {self.catalog_path}; run `drape ingest`") from None
        if self._catalog is None or self._catalog[0] != stamp:
            self._catalog = (stamp, Catalog.load(self.catalog_path))
        return self._catalog[1]


def _analysed_bytes(item: tuple[np.ndarray, PersonAnalysis]) -> int:
    pixels, analysis = item
    arrays = (analysis.keypoints, analysis.person_mask, analysis.upper_body_mask, analysis.agnostic)
    return pixels.nbytes + sum(a.nbytes for a in arrays if a is not None)


class TryOnServicer(tryon_pb2_grpc.TryOnServiceServicer):
    def __init__(self, runner: TryOnRunner, height: int, width: int, model_version: str,
                 analyzers: AnalyzerPool, garments: GarmentSource, limits: ImageLimits,
                 registry: CollectorRegistry, analyses: TtlCache) -> None:  # fmt: skip
        self.runner, self.height, self.width = runner, height, width
        self.model_version = model_version
        self.analyzers, self.garments, self.limits = analyzers, garments, limits
        # The decoded photo and its analysis, by the photo's content hash.
        self.analyses = analyses
        self.outcomes = Counter("drape_tryon_generations", "Generate calls by outcome.", ["outcome"],
                                registry=registry)  # fmt: skip
        self.quality = Histogram(
            "drape_tryon_quality", "Quality score (0..1) of each rendering.",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=registry,
        )  # fmt: skip
        self.stage_seconds = Histogram("drape_tryon_stage_seconds", "Time per stage of Generate.", ["stage"],
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                       registry=registry)  # fmt: skip

    def Generate(
        self, request: tryon_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> tryon_pb2.GenerateResponse:
        timings: list[tuple[str, float]] = []
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings.append((stage, now - clock))
            self.stage_seconds.labels(stage).observe(now - clock)
            clock = now

        which = request.WhichOneof("garment")
        if which == "garment_id":
            garment = self.garments.image(request.garment_id)
        elif which == "garment_image":
            garment = decode_field("garment_image", request.garment_image, self.limits).pixels
        else:
            raise InvalidArgument("garment", "send a garment_id or a garment_image")
        lap("garment")
        photo, analysis = self._analysed(request.photo)
        lap("person_analysis")
        response = tryon_pb2.GenerateResponse(
            request_id=request.request_id, model_version=self.model_version
        )
        if not analysis.ok:
            self.outcomes.labels("unusable_photo").inc()
            response.analysis.CopyFrom(analysis_proto(analysis, include_masks=False))
            return response
        sample, box = person_inputs(
            photo, analysis, garment, product_mask(garment), self.height, self.width
        )
        top, left, bottom, right = box
        if sample is None:
            raise InvalidArgument(
                "garment", "no garment found in the product shot (uniform image?)"
            )
        tensors = to_tensors([sample])
        lap("inputs")
        try:
            out = self.runner.run(
                {name: tensors[name].numpy() for name in INPUTS}, scopes.remaining()
            )
        except RunnerTimedOut as exc:
            self.outcomes.labels("timed_out").inc()
            raise DeadlineExceeded(f"the try-on model did not answer in time: {exc}") from None
        except RunnerUnavailable as exc:
            self.outcomes.labels("unavailable").inc()
            raise Unavailable(f"the try-on model is unavailable: {exc}") from None
        lap("triton")
        rendered, shown_mask = preview(sample, out)
        lap("finish")
        response.quality.CopyFrom(
            quality_proto(assess(measure_outputs(sample, out, shown=(rendered, shown_mask))))
        )
        self.quality.observe(response.quality.score)
        lap("quality")
        garment_mask = shown_mask.astype(np.uint8) * 255
        response.rendered.CopyFrom(common_pb2.Image(data=encode_png(rendered), media_type="image/png",
                                                    width=self.width, height=self.height))  # fmt: skip
        response.garment_mask.CopyFrom(common_pb2.Image(data=encode_png(garment_mask), media_type="image/png",
                                                        width=self.width, height=self.height))  # fmt: skip
        h, w = photo.shape[:2]
        response.crop.CopyFrom(
            common_pb2.BoundingBox(x_min=left / w, y_min=top / h, x_max=right / w, y_max=bottom / h)
        )
        response.analysis.CopyFrom(analysis_proto(analysis, include_masks=False))
        lap("encode")
        response.timings.extend(
            common_pb2.StageTiming(stage=s, milliseconds=t * 1000) for s, t in timings
        )
        self.outcomes.labels("ok").inc()
        return response

    def _analysed(self, photo: common_pb2.Image) -> tuple[np.ndarray, PersonAnalysis]:
        """The decoded photo and its person analysis, made once per photo content."""
        if not photo.data:
            raise InvalidArgument("photo", "is required (JPEG, PNG or WebP bytes)")

        def analyse() -> tuple[np.ndarray, PersonAnalysis]:
            pixels = decode_field("photo", photo, self.limits).pixels
            return pixels, self.analyzers.analyze(pixels)

        key = hashlib.sha256(photo.data).digest()
        return self.analyses.get_or_compute(key, analyse)[0]


def quality_proto(assessment: Assessment) -> common_pb2.PreviewQuality:
    return common_pb2.PreviewQuality(
        score=assessment.score, short=assessment.short, advice=assessment.advice(),
        **assessment.measures.as_dict(),
    )  # fmt: skip


def build(config: DrapeConfig) -> ServiceSpec:
    from safetensors import safe_open

    cfg = config.tryon
    checkpoint = config.tryon_checkpoint()
    if not checkpoint.exists():
        return _without_model(
            f"no try-on generator at {checkpoint}; train one with `drape train tryon`"
        )
    with safe_open(str(checkpoint), framework="pt") as handle:
        spec = json.loads(handle.metadata()["spec"])
    limits = image_limits(cfg)
    remote = ObjectStorage.from_config(config)
    runner = TritonTryOn(cfg.triton_url, timeout_s=cfg.triton_timeout_s, tls=cfg.server.tls)
    analyzers = AnalyzerPool(cfg.analyzers)
    analyzers.warm()
    registry = CollectorRegistry()
    analyses = TtlCache("tryon_analysis", cfg.analysis_cache_entries, cfg.analysis_cache_mb * 2**20,
                        cfg.analysis_ttl_s, _analysed_bytes, registry).start_sweeper()  # fmt: skip
    servicer = TryOnServicer(
        runner, spec["height"], spec["width"], f"tryon_gan-{sha256_of(checkpoint)[:12]}", analyzers,
        GarmentSource(config.catalog_path(), ImageStore(config.images_path(), remote), limits),
        limits,
        registry,
        analyses,
    )  # fmt: skip

    def stop() -> None:
        analyses.close()
        runner.close()
        analyzers.close()

    return ServiceSpec(
        name="tryon",
        grpc_services=[tryon_pb2.DESCRIPTOR.services_by_name["TryOnService"].full_name],
        register=lambda server: tryon_pb2_grpc.add_TryOnServiceServicer_to_server(servicer, server),
        registry=registry,
        on_stop=stop,
    )


def _without_model(reason: str) -> ServiceSpec:
    """Serves, reports healthy, and answers every Generate with FAILED_PRECONDITION and why."""

    class Unconfigured(tryon_pb2_grpc.TryOnServiceServicer):
        def Generate(
            self, request: tryon_pb2.GenerateRequest, context: grpc.ServicerContext
        ) -> None:
            raise FailedPrecondition(reason)

    return ServiceSpec(
        name="tryon",
        grpc_services=[tryon_pb2.DESCRIPTOR.services_by_name["TryOnService"].full_name],
        register=lambda server: tryon_pb2_grpc.add_TryOnServiceServicer_to_server(
            Unconfigured(), server
        ),
    )
