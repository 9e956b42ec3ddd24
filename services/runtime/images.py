"""Image fields of requests: decoded with the service's limits, refusals mapped to status codes
(over a limit: RESOURCE_EXHAUSTED; anything else unusable: INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

from typing import Protocol

from drape.models.images import (
    DecodedImage,
    ImageLimits,
    ImageRejected,
    ImageTooLarge,
    decode_image,
)
from drape.services.runtime.errors import InvalidArgument, ResourceExhausted
from drape.v1 import common_pb2


class ImageSettings(Protocol):
    max_image_mb: int
    max_image_pixels: int
    working_megapixels: float


def image_limits(settings: ImageSettings) -> ImageLimits:
    """The limits of a config section with ``max_image_mb``, ``max_image_pixels`` and
    ``working_megapixels`` (larger images are decoded reduced to it)."""
    return ImageLimits(
        max_bytes=settings.max_image_mb * 1024 * 1024,
        max_pixels=settings.max_image_pixels,
        fit_pixels=int(settings.working_megapixels * 1_000_000),
    )


def decode_field(field: str, image: common_pb2.Image, limits: ImageLimits) -> DecodedImage:
    """The image of a request field (reduced to ``limits.fit_pixels`` when it is larger)."""
    if not image.data:
        raise InvalidArgument(field, "is required (JPEG, PNG or WebP bytes)")
    try:
        return decode_image(image.data, limits)
    except ImageTooLarge as exc:
        raise ResourceExhausted(f"{field}: {exc.reason}") from None
    except ImageRejected as exc:
        raise InvalidArgument(field, exc.reason) from None
