"""What the try-on generator is given and trained on, whichever source made it (synthetic
pairs, person photos, VITON-HD, or a shopper's photo at serving time)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class TryOnSample:
    """One training pair: images (H, W, 3) uint8, masks (H, W) uint8, and the small tensors
    the model takes instead of maps: pose keypoints (K, 2) and the keypoint TPS, all in
    normalised [0, 1] coordinates."""

    person: np.ndarray  # the target: the person wearing the garment
    agnostic: np.ndarray  # the person with the garment region greyed out
    pose: np.ndarray  # (K, 2) keypoints (POSE_POINTS order); off-image = outside [0, 1]
    garment: np.ndarray  # the product shot, letterboxed to (H, W)
    garment_mask: np.ndarray  # (H, W) uint8 0/255
    tps_control: np.ndarray  # (5, 2) body anchors
    tps_params: np.ndarray  # (8, 2) TPS: output pixel -> garment image coordinates
    region: np.ndarray  # (H, W) uint8: where the garment is in ``person``
    # (H, W) uint8: what stays in front of the garment (arms, hands), for photos
    in_front: np.ndarray | None = None


def grid_pixels(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """A [-1, 1] sampling grid (x, y; align_corners=False) as float32 pixel coordinates of a
    (height, width) source, as ``cv2.remap`` takes them."""
    return np.stack([((grid[..., 0] + 1) * width - 1) / 2, ((grid[..., 1] + 1) * height - 1) / 2],
                    axis=-1).astype(np.float32)  # fmt: skip


def remap(image: np.ndarray, grid: np.ndarray, border: int = 0) -> np.ndarray:
    """Samples ``image`` at a [-1, 1] grid (like ``grid_sample`` with align_corners=False)."""
    pixels = grid_pixels(grid, *image.shape[:2])
    return cv2.remap(image, pixels[..., 0], pixels[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=border)  # fmt: skip
