"""Safe decoding of untrusted image bytes into RGB arrays, and aspect-preserving resizing.

Every image that enters Drape goes through :func:`decode_image`: the format is sniffed
from the bytes, the declared pixel count is checked *before* any pixel is decoded (so a
tiny PNG that declares 30000x30000 is refused without allocating it), EXIF orientation is
applied, and CMYK, greyscale, palette and alpha images all come out as 8-bit RGB.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class ImageRejected(ValueError):
    """The bytes are not a usable image; ``reason`` says why, for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageTooLarge(ImageRejected):
    """The image is over a size limit (bytes or pixels)."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what :func:`decode_image` accepts."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 16
    # OpenCV (inside MediaPipe too) aborts the process on a side of 32,767 pixels or more:
    # a 1 x 40,000 strip is within the pixel limit, so sides are bounded on their own.
    max_side: int = 16_384
    # A larger image is decoded reduced to at most this many pixels (None: full size).
    fit_pixels: int | None = None


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image (H, W, 3) uint8 after EXIF orientation, and its source format;
    ``reduced`` when it was decoded smaller than it is (``ImageLimits.fit_pixels``)."""

    pixels: np.ndarray
    media_type: str
    reduced: bool = False

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def decode_image(data: bytes, limits: ImageLimits | None = None) -> DecodedImage:
    """Decodes JPEG/PNG/WebP bytes to RGB, refusing anything unsafe or unusable.

    With ``limits.fit_pixels``, a larger image comes back reduced to at most that many
    pixels (aspect kept): a JPEG is decoded at a reduced scale to begin with, so a
    36-megapixel photo never exists in memory at full size.

    Raises :class:`ImageTooLarge` over ``limits`` and :class:`ImageRejected` for empty,
    unknown, truncated or degenerate images.
    """
    limits = limits or ImageLimits()
    fit_pixels = limits.fit_pixels
    if not data:
        raise ImageRejected("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"the image is {len(data):,} bytes, over the {limits.max_bytes:,} byte limit"
        )
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns, then raises past 2x its limit; ours is explicit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected("the bytes are not a JPEG, PNG or WebP image") from None
    except Image.DecompressionBombError:
        # Pillow refuses absurd headers (> ~179 M pixels) while opening; same answer as ours.
        raise ImageTooLarge(
            f"the image declares too many pixels (over {limits.max_pixels:,}): refused "
            "before decoding"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the image could not be decoded ({exc})") from None
    source_format = image.format
    if source_format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{source_format} images are not accepted; send JPEG, PNG or WebP")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image declares {width}x{height} pixels, over the "
            f"{limits.max_pixels:,} pixel limit"
        )
    if max(width, height) > limits.max_side:
        raise ImageRejected(
            f"the image is {width}x{height}; no side may be over {limits.max_side:,} pixels"
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            f"the image is {width}x{height}; both sides must be at least {limits.min_side} pixels"
        )
    try:
        if fit_pixels is not None and width * height > fit_pixels:
            scale = (fit_pixels / (width * height)) ** 0.5
            # JPEG decodes at 1/2, 1/4 or 1/8 scale, no smaller than asked (DCT scaling).
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        image.load()
        factor = int((image.width * image.height / fit_pixels) ** 0.5) if fit_pixels else 1
        if factor > 1 and image.mode in ("RGB", "RGBA", "L"):
            # A whole-factor box reduction first: cheap, and no full-size copy is ever made.
            image = image.reduce(factor)
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
        if fit_pixels is not None and rgb.width * rgb.height > fit_pixels:
            scale = (fit_pixels / (rgb.width * rgb.height)) ** 0.5
            size = (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BOX)  # area average: no aliasing
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt streams as OSError ("image file is truncated").
        raise ImageRejected(f"the image could not be decoded ({exc})") from None
    reduced = rgb.width * rgb.height < width * height
    return DecodedImage(np.asarray(rgb, dtype=np.uint8), ACCEPTED_FORMATS[source_format], reduced)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is composited onto white, like a product page."""
    if image.mode == "RGB":
        return image  # no copy of what may be a large image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float64)
        peak = max(array.max(), 1.0)
        return Image.fromarray((array / peak * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) or (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _fitted_size(pixels: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """(width, height) of ``pixels`` scaled to fit ``height`` x ``width``, aspect kept."""
    scale = min(height / pixels.shape[0], width / pixels.shape[1])
    return max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))


def _centred(resized: np.ndarray, height: int, width: int, fill: int) -> np.ndarray:
    canvas = np.full((height, width, *resized.shape[2:]), fill, resized.dtype)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def letterbox(pixels: np.ndarray, size: int, fill: int = 255) -> np.ndarray:
    """Resizes to fit a ``size`` x ``size`` square keeping the aspect ratio, padding with
    ``fill`` (white, the usual product-shot background) rather than stretching. Bilinear
    (PIL): the encoder's input."""
    resized = Image.fromarray(pixels).resize(_fitted_size(pixels, size, size),
                                             Image.Resampling.BILINEAR)  # fmt: skip
    return _centred(np.asarray(resized), size, size, fill)


def fit_into(pixels: np.ndarray, height: int, width: int, fill: int = 255) -> np.ndarray:
    """As :func:`letterbox` into a ``height`` x ``width`` canvas, with area resampling (no
    aliasing of fine prints when shrinking): the try-on generator's garment input."""
    import cv2

    resized = cv2.resize(pixels, _fitted_size(pixels, height, width), interpolation=cv2.INTER_AREA)
    return _centred(resized, height, width, fill)
