"""Splicing a generated try-on back into the shopper's original photo.

The GAN works on a low-resolution crop; the shopper wants their own photo. Only the garment
region is taken from the GAN output (upsampled to the crop's size); face, hair, hands and
background stay the original pixels, exactly, outside a thin blending band. The garment's
lighting is harmonised to the photo (Reinhard et al., 2001: CIELAB statistics of the ring
around the garment, original vs generated) and the seam is hidden by multi-band blending
(Burt & Adelson, 1983), Poisson blending (Pérez et al., 2003) or plain feathered alpha.
"""

from __future__ import annotations

from enum import Enum

import cv2
import numpy as np

# Width of the band around the garment where the two images are blended, in pixels of the
# photo; outside it the original is kept exactly.
BAND = 6


class Blend(Enum):
    ALPHA = "alpha"
    MULTIBAND = "multiband"
    POISSON = "poisson"


def _harmonise(generated: np.ndarray, original: np.ndarray, garment: np.ndarray) -> np.ndarray:
    """Shifts the generated image's lightness and colour so that the ring around the garment
    matches the original's (what differs there is the GAN's global colour drift)."""
    ring = (cv2.dilate(garment, np.ones((15, 15), np.uint8)) > 0) & (garment == 0)
    if ring.sum() < 50:
        return generated
    gen_lab = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB).astype(np.float32)
    orig_lab = cv2.cvtColor(original, cv2.COLOR_RGB2LAB).astype(np.float32)
    shift = orig_lab[ring].mean(axis=0) - gen_lab[ring].mean(axis=0)
    adjusted = np.clip(gen_lab + shift * 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(adjusted, cv2.COLOR_LAB2RGB)


def _multiband(a: np.ndarray, b: np.ndarray, weight: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid blend: ``weight`` (float 0..1) selects ``b`` over ``a``."""
    ga, gb, gw = [a.astype(np.float32)], [b.astype(np.float32)], [weight.astype(np.float32)]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gw.append(cv2.pyrDown(gw[-1]))
    out = ga[-1] * (1 - gw[-1][..., None]) + gb[-1] * gw[-1][..., None]
    for level in range(levels - 1, -1, -1):
        size = (ga[level].shape[1], ga[level].shape[0])
        la = ga[level] - cv2.pyrUp(ga[level + 1], dstsize=size)
        lb = gb[level] - cv2.pyrUp(gb[level + 1], dstsize=size)
        w = gw[level][..., None]
        out = cv2.pyrUp(out, dstsize=size) + la * (1 - w) + lb * w
    return np.clip(out, 0, 255).astype(np.uint8)


def _band(garment: np.ndarray) -> np.ndarray:
    """Where compositing may change pixels: the garment and BAND pixels around it."""
    return cv2.dilate(garment, np.ones((2 * BAND + 1, 2 * BAND + 1), np.uint8))


def changed_region(
    shape: tuple[int, int], garment_mask: np.ndarray, crop: tuple[int, int, int, int]
) -> np.ndarray:
    """The pixels of a photo of ``shape`` (H, W) that :func:`compose` may change for this
    garment mask and crop; every other pixel is the photo's own."""
    top, left, bottom, right = crop
    garment = (
        cv2.resize(garment_mask, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR) > 127
    ).astype(np.uint8) * 255
    region = np.zeros(shape, bool)
    region[top:bottom, left:right] = _band(garment) > 0
    return region


def preservation(
    photo: np.ndarray,
    composite: np.ndarray,
    changed: np.ndarray,
    face: tuple[int, int, int, int] | None,
) -> tuple[float, float]:
    """(face SSIM, background difference): the SSIM of the ``face`` box (top, left, bottom,
    right; 0.0 without one) between ``composite`` and ``photo``, and their mean absolute
    difference (0-255) outside the ``changed`` region."""
    from drape.models.tryon.quality import masked_ssim

    kept = ~changed
    difference = (
        float(np.abs(composite.astype(np.int16) - photo.astype(np.int16))[kept].mean())
        if kept.any() else 0.0
    )  # fmt: skip
    if face is None:
        return 0.0, difference
    top, left, bottom, right = face
    if bottom - top < 11 or right - left < 11:  # smaller than SSIM's window
        return 0.0, difference
    return masked_ssim(composite[top:bottom, left:right], photo[top:bottom, left:right]), difference


def compose(
    photo: np.ndarray,
    rendered: np.ndarray,
    garment_mask: np.ndarray,
    crop: tuple[int, int, int, int],
    blend: Blend = Blend.MULTIBAND,
) -> np.ndarray:
    """The photo (H, W, 3) with the garment of ``rendered`` (the GAN output for the photo's
    ``crop`` = (top, left, bottom, right)) put in at full resolution."""
    top, left, bottom, right = crop
    crop_h, crop_w = bottom - top, right - left
    if (
        crop_h <= 0
        or crop_w <= 0
        or top < 0
        or left < 0
        or bottom > photo.shape[0]
        or right > photo.shape[1]
    ):
        raise ValueError(f"crop {crop} is not inside the {photo.shape[1]}x{photo.shape[0]} photo")
    original = np.ascontiguousarray(photo[top:bottom, left:right])
    generated = cv2.resize(rendered, (crop_w, crop_h), interpolation=cv2.INTER_CUBIC)
    garment = (
        cv2.resize(garment_mask, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR) > 127
    ).astype(np.uint8) * 255
    result = photo.copy()
    if not garment.any():
        return result
    generated = _harmonise(generated, original, garment)
    # Blend within a band around the garment; outside it, the original pixels stay.
    band = _band(garment)
    # Feathered weight: ~1 on the garment (grown by half the band), falling to 0 across it.
    grown = cv2.dilate(garment, np.ones((BAND + 1, BAND + 1), np.uint8)).astype(np.float32) / 255
    weight = cv2.GaussianBlur(grown, (0, 0), BAND / 3) * (band > 0)
    if blend is Blend.POISSON:
        ys, xs = np.nonzero(garment)
        centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
        mixed = cv2.seamlessClone(generated, original, garment, centre, cv2.NORMAL_CLONE)
    elif blend is Blend.MULTIBAND:
        mixed = _multiband(original, generated, weight)
    else:
        mixed = (original * (1 - weight[..., None]) + generated * weight[..., None]).astype(
            np.uint8
        )
    kept = band == 0
    mixed[kept] = original[kept]
    result[top:bottom, left:right] = mixed
    return result
