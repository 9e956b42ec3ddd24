"""SpliceService: puts a try-on rendering back into the shopper's original photo at its
original size and orientation (see drape.models.splice). API: protos/drape/v1/splice.proto."""

from __future__ import annotations

import threading

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter

from drape.models.images import ImageLimits, encode_jpeg
from drape.models.splice import Blend, changed_region, compose, preservation
from drape.services.runtime import DrapeConfig, ServiceSpec
from drape.services.runtime import scope as scopes
from drape.services.runtime.errors import DeadlineExceeded, InvalidArgument
from drape.services.runtime.images import decode_field, image_limits
from drape.v1 import common_pb2, splice_pb2, splice_pb2_grpc

BLENDS = {
    splice_pb2.BLEND_MODE_ALPHA: Blend.ALPHA,
    splice_pb2.BLEND_MODE_MULTIBAND: Blend.MULTIBAND,
    splice_pb2.BLEND_MODE_POISSON: Blend.POISSON,
}


class SpliceServicer(splice_pb2_grpc.SpliceServiceServicer):
    def __init__(
        self,
        limits: ImageLimits,
        default_blend: Blend,
        quality: int,
        registry: CollectorRegistry,
        composers: int = 2,
    ) -> None:
        self.limits, self.default_blend, self.quality = limits, default_blend, quality
        # Composites made at once: each holds a few float copies of its photo, so this (with
        # the photo budget, limits.fit_pixels) is what bounds the service's memory.
        self.composers = threading.BoundedSemaphore(composers)
        self.composed = Counter("drape_splice_composites", "Composites made, by blend mode.", ["blend"],
                                registry=registry)  # fmt: skip

    def _decode(self, field: str, image: common_pb2.Image) -> np.ndarray:
        return decode_field(field, image, self.limits).pixels

    def Compose(
        self, request: splice_pb2.ComposeRequest, context: grpc.ServicerContext
    ) -> splice_pb2.ComposeResponse:
        if not self.composers.acquire(timeout=scopes.remaining()):
            raise DeadlineExceeded("no compositor was free before the request's deadline")
        try:
            return self._compose(request)
        finally:
            self.composers.release()

    def _compose(self, request: splice_pb2.ComposeRequest) -> splice_pb2.ComposeResponse:
        photo = self._decode("photo", request.photo)
        rendered = self._decode("rendered", request.rendered)
        mask = self._decode("garment_mask", request.garment_mask)[..., 0]
        if mask.shape != rendered.shape[:2]:
            raise InvalidArgument("garment_mask", f"is {mask.shape[1]}x{mask.shape[0]}; `rendered` is "
                                  f"{rendered.shape[1]}x{rendered.shape[0]}")  # fmt: skip
        c = request.crop
        if not (0 <= c.x_min < c.x_max <= 1 and 0 <= c.y_min < c.y_max <= 1):
            raise InvalidArgument(
                "crop", "must be a box inside [0, 1] with x_min < x_max and y_min < y_max"
            )
        h, w = photo.shape[:2]
        box = (round(c.y_min * h), round(c.x_min * w), round(c.y_max * h), round(c.x_max * w))
        blend = BLENDS.get(request.blend, self.default_blend)
        composite = compose(photo, rendered, mask, box, blend)
        self.composed.labels(blend.value).inc()
        f = request.face
        face = None
        if request.HasField("face") and 0 <= f.x_min < f.x_max <= 1 and 0 <= f.y_min < f.y_max <= 1:
            face = (round(f.y_min * h), round(f.x_min * w), round(f.y_max * h), round(f.x_max * w))
        face_ssim, background = preservation(
            photo, composite, changed_region((h, w), mask, box), face
        )
        return splice_pb2.ComposeResponse(
            request_id=request.request_id,
            composite=common_pb2.Image(
                data=encode_jpeg(composite, self.quality),
                media_type="image/jpeg",
                width=w,
                height=h,
            ),
            face_ssim=face_ssim,
            background_difference=background,
        )


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.splice
    registry = CollectorRegistry()
    servicer = SpliceServicer(
        image_limits(cfg), Blend(cfg.default_blend), cfg.jpeg_quality, registry, cfg.composers
    )
    return ServiceSpec(
        name="splice",
        grpc_services=[splice_pb2.DESCRIPTOR.services_by_name["SpliceService"].full_name],
        register=lambda server: splice_pb2_grpc.add_SpliceServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
    )
