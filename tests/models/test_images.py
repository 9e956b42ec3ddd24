"""Untrusted image bytes: every bad input is refused with a reason, never a crash."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from drape.models.images import (
    ImageLimits,
    ImageRejected,
    ImageTooLarge,
    decode_image,
    encode_jpeg,
    encode_png,
    letterbox,
)


def _photo(width: int = 64, height: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_jpeg_png_and_webp_decode_to_rgb():
    pixels = _photo()
    for data in (encode_png(pixels), encode_jpeg(pixels)):
        decoded = decode_image(data)
        assert decoded.pixels.shape == (48, 64, 3) and decoded.pixels.dtype == np.uint8
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True)
    decoded = decode_image(buffer.getvalue())
    assert decoded.media_type == "image/webp"
    assert np.array_equal(decoded.pixels, pixels)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a JPEG, PNG or WebP"),
        (encode_jpeg(_photo(200, 200))[:600], "could not be decoded"),
        (encode_png(np.zeros((1, 1, 3), np.uint8)), "at least 16 pixels"),
        # Within the pixel limit, but OpenCV inside MediaPipe aborted the features service
        # on a side this long (found by drape bench fuzz).
        (encode_png(np.zeros((40_000, 16, 3), np.uint8)), "no side may be over 16,384 pixels"),
    ],
    ids=["empty", "not-an-image", "truncated-jpeg", "1x1", "40000-pixel-strip"],
)
def test_unusable_bytes_are_rejected_with_a_reason(data: bytes, reason: str):
    with pytest.raises(ImageRejected) as err:
        decode_image(data)
    assert reason in err.value.reason


def test_a_decompression_bomb_is_refused_before_decoding():
    bomb = _png_declaring(30000, 30000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as err:
        decode_image(bomb)
    assert "too many pixels" in err.value.reason


def test_the_pixel_limit_is_checked_from_the_header():
    declared = _png_declaring(9000, 9000)  # 81 M pixels: under Pillow's guard, over ours
    with pytest.raises(ImageTooLarge) as err:
        decode_image(declared)
    assert "9000x9000" in err.value.reason


def test_images_over_the_byte_limit_are_refused():
    data = encode_png(_photo(128, 128))
    with pytest.raises(ImageTooLarge, match="byte limit"):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))


def test_other_formats_are_refused():
    buffer = io.BytesIO()
    Image.fromarray(_photo()).save(buffer, format="BMP")
    with pytest.raises(ImageRejected, match="BMP images are not accepted"):
        decode_image(buffer.getvalue())


def test_cmyk_greyscale_and_alpha_become_rgb():
    rgb = _photo()
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, format="JPEG")
    assert decode_image(buffer.getvalue()).pixels.shape == (48, 64, 3)

    grey = encode_png(rgb[..., 0])
    decoded = decode_image(grey).pixels
    assert decoded.shape == (48, 64, 3)
    assert np.array_equal(decoded[..., 0], rgb[..., 0]) and np.array_equal(
        decoded[..., 1], rgb[..., 0]
    )

    rgba = np.dstack([rgb, np.zeros((48, 64), np.uint8)])
    rgba[:, :32, 3] = 255
    decoded = decode_image(encode_png(rgba)).pixels
    # Transparent pixels come out white (the product-page background), opaque ones as they were.
    assert (decoded[:, 32:] == 255).all()
    assert np.array_equal(decoded[:, :32], rgb[:, :32])


def test_exif_orientation_is_respected():
    pixels = _photo(64, 48)
    pixels[:8, :8] = (255, 0, 0)  # a red marker at the top-left of the stored image
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(buffer.getvalue()).pixels
    assert decoded.shape == (64, 48, 3)  # displayed upright: portrait
    # After a 90-degree clockwise turn the top-left marker sits at the top-right.
    assert decoded[:6, -6:, 0].mean() > 200 and decoded[:6, -6:, 1].mean() < 60


@pytest.mark.parametrize("encode", [encode_png, encode_jpeg])
def test_a_large_photo_is_decoded_reduced_to_the_working_size(encode):
    # A smooth 3000x2000 photo: big in pixels, small in bytes (like the photos that cost
    # gigabytes when every service worked on them at full size).
    ys, xs = np.mgrid[0:2000, 0:3000]
    pixels = np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
    decoded = decode_image(encode(pixels), ImageLimits(fit_pixels=600_000))
    assert decoded.reduced and decoded.width * decoded.height <= 600_000
    assert abs(decoded.width / decoded.height - 1.5) < 0.01, "the aspect ratio is kept"
    assert decoded.width * decoded.height > 500_000, "reduced to the budget, not far below it"
    # The content survives: the reduced photo is the full one, smaller.
    full = decode_image(encode(pixels))
    assert not full.reduced and full.pixels.shape == (2000, 3000, 3)
    small = np.asarray(Image.fromarray(full.pixels).resize((decoded.width, decoded.height),
                                                           Image.Resampling.BOX))  # fmt: skip
    assert np.abs(small.astype(int) - decoded.pixels.astype(int)).mean() < 12


def test_an_exif_rotated_photo_is_reduced_upright():
    pixels = _photo(400, 300)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(buffer.getvalue(), ImageLimits(fit_pixels=30_000))
    assert decoded.reduced and decoded.height > decoded.width  # portrait, as displayed


def test_a_photo_within_the_working_size_is_untouched():
    pixels = _photo(64, 48)
    decoded = decode_image(encode_png(pixels), ImageLimits(fit_pixels=64 * 48))
    assert not decoded.reduced and np.array_equal(decoded.pixels, pixels)


def test_letterbox_pads_instead_of_stretching():
    wide = np.zeros((50, 200, 3), np.uint8)
    boxed = letterbox(wide, 224)
    assert boxed.shape == (224, 224, 3)
    rows = np.nonzero((boxed != 255).any(axis=(1, 2)))[0]
    # 200x50 scaled to 224x56: the content keeps its 4:1 ratio, centred, white above and below.
    assert len(rows) == 56 and rows[0] == (224 - 56) // 2
