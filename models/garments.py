"""Garment preprocessing: the garment's mask in a product shot (studio background) or on a
person (from person analysis), and garment landmarks derived from the mask (collar,
shoulders, hem corners) that try-on warping is driven by."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drape.models.person import PersonAnalysis

BACKGROUND_WHITE = 255


def product_mask(rgb: np.ndarray, tolerance: float = 18.0) -> np.ndarray:
    """The garment in a product shot on a near-uniform background, as uint8 0/255.

    The background colour is the median of the border; pixels further than ``tolerance``
    from it (in CIELAB) are garment. Holes are filled and only the largest part is kept,
    so prints that happen to match the background stay inside the garment.
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(lab - background, axis=2)
    mask = np.where(distance > tolerance, 255, 0).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = np.where(labels == largest, 255, 0).astype(np.uint8)
    return _fill_holes(mask)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    return filled


def worn_garment(rgb: np.ndarray, analysis: PersonAnalysis, margin: float = 0.04) -> np.ndarray:
    """The upper-body garment a person wears, cut out onto white and cropped to its box:
    a product-shot-like image that embeds in the same space as the catalog."""
    if not analysis.ok or analysis.upper_body_mask is None or analysis.upper_body_box is None:
        raise ValueError(
            f"no usable upper body in the photo: {analysis.reason or analysis.status.value}"
        )
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = analysis.upper_body_box
    pad_x, pad_y = margin * width, margin * height
    left, top = max(0, int(x0 * width - pad_x)), max(0, int(y0 * height - pad_y))
    right, bottom = min(width, int(x1 * width + pad_x)), min(height, int(y1 * height + pad_y))
    region = analysis.upper_body_mask[top:bottom, left:right] > 0
    crop = np.full((bottom - top, right - left, 3), BACKGROUND_WHITE, np.uint8)
    crop[region] = rgb[top:bottom, left:right][region]
    return crop


@dataclass(frozen=True)
class GarmentKeypoints:
    """Landmarks in pixel coordinates (x, y) of the mask they came from."""

    collar: tuple[float, float]
    left_shoulder: tuple[float, float]
    right_shoulder: tuple[float, float]
    left_hem: tuple[float, float]
    right_hem: tuple[float, float]

    def as_array(self) -> np.ndarray:
        """(5, 2): collar, left shoulder, right shoulder, left hem, right hem."""
        return np.array(
            [self.collar, self.left_shoulder, self.right_shoulder, self.left_hem, self.right_hem],
            dtype=np.float32,
        )


def garment_keypoints(mask: np.ndarray) -> GarmentKeypoints:
    """Collar, shoulders and hem corners of an upright upper-body garment from its mask.

    "Left" is the image's left. The collar is the lowest point of the neckline dip near
    the centre column; shoulders are the outermost points of the body just below the top
    (sleeves excluded by measuring within the body's central span); hem corners are the
    extremes of the bottom rows.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) < 16:
        raise ValueError("the mask is empty: no garment to find landmarks on")
    top, bottom = int(ys.min()), int(ys.max())
    height = bottom - top + 1
    centre = float(np.median(xs))
    # Collar: the first garment row of the columns around the centre.
    span = max(2, int(0.06 * (xs.max() - xs.min() + 1)))
    columns = mask[:, int(centre) - span : int(centre) + span + 1] > 0
    firsts = [int(np.argmax(col)) for col in columns.T if col.any()]
    collar = (centre, float(np.max(firsts)) if firsts else float(top))
    # Shoulders: the widest extent of the garment in its top 12% of rows.
    band = slice(top, top + max(2, int(0.12 * height)))
    band_ys, band_xs = np.nonzero(mask[band])
    left_i, right_i = int(np.argmin(band_xs)), int(np.argmax(band_xs))
    left_shoulder = (float(band_xs[left_i]), float(top + band_ys[left_i]))
    right_shoulder = (float(band_xs[right_i]), float(top + band_ys[right_i]))
    # Hem: extremes of the bottom 3% of rows.
    hem_band = mask[bottom - max(1, int(0.03 * height)) : bottom + 1]
    hem_ys, hem_xs = np.nonzero(hem_band)
    hem_top = bottom - hem_band.shape[0] + 1
    left_hem = (float(hem_xs.min()), float(hem_top + hem_ys[np.argmin(hem_xs)]))
    right_hem = (float(hem_xs.max()), float(hem_top + hem_ys[np.argmax(hem_xs)]))
    return GarmentKeypoints(collar, left_shoulder, right_shoulder, left_hem, right_hem)
