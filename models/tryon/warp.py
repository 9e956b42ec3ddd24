"""Thin-plate-spline warping (Bookstein, 1989) of a garment onto a body from matching
keypoints, as in CP-VTON's geometric matching stage, but solved in closed form from the
keypoints person analysis and garment preprocessing give, instead of regressed.

The TPS is solved here, outside the network, and handed to it as a sampling grid: the
network (and its ONNX/Triton export) then only needs ``grid_sample``.
"""

from __future__ import annotations

import numpy as np

# Keypoints that drive the warp, garment side (collar, shoulders, hem corners) matched to
# body side (neck base, shoulders, hips): see ``body_anchor_points``.
GARMENT_POINTS = ("collar", "left_shoulder", "right_shoulder", "left_hem", "right_hem")


def _radial(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, r2 * np.log(r2), 0.0)


def tps_solve(
    dst_points: np.ndarray,
    src_points: np.ndarray,
    size: tuple[int, int],
    src_size: tuple[int, int] | None = None,
    regularisation: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """The TPS that sends ``dst_points`` (output pixels) to ``src_points`` (source pixels):
    (control points (n, 2), parameters (n + 3, 2)), both in normalised [0, 1] coordinates.

    ``size`` and ``src_size`` are the (height, width) of the output and the source.
    """
    height, width = size
    src_h, src_w = src_size or size
    dst = np.asarray(dst_points, np.float64) / [width, height]
    src = np.asarray(src_points, np.float64) / [src_w, src_h]
    n = len(dst)
    diff = dst[:, None, :] - dst[None, :, :]
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _radial((diff**2).sum(-1)) + regularisation * np.eye(n)
    system[:n, n] = 1.0
    system[:n, n + 1 :] = dst
    system[n, :n] = 1.0
    system[n + 1 :, :n] = dst.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = src
    return dst.astype(np.float32), np.linalg.solve(system, rhs).astype(np.float32)


def tps_grid(control: np.ndarray, params: np.ndarray, height: int, width: int) -> np.ndarray:
    """Evaluates a TPS from :func:`tps_solve` on every output pixel: a (H, W, 2) grid in
    [-1, 1] (x, y), as ``torch.nn.functional.grid_sample`` takes (align_corners=False)."""
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([(xs + 0.5) / width, (ys + 0.5) / height], axis=-1).reshape(-1, 2)
    n = len(control)
    r2 = ((grid[:, None, :] - control[None, :, :].astype(np.float64)) ** 2).sum(-1)
    mapped = _radial(r2) @ params[:n] + params[n] + grid @ params[n + 1 :]
    return (mapped.reshape(height, width, 2) * 2 - 1).astype(np.float32)


def body_anchor_points(
    neck: np.ndarray,
    left_shoulder: np.ndarray,
    right_shoulder: np.ndarray,
    left_hip: np.ndarray,
    right_hip: np.ndarray,
    widen: float = 0.1,
) -> np.ndarray:
    """Where the garment's collar, shoulders and hem corners go on a body (pixels, in the
    order of ``GARMENT_POINTS``); the shoulders are pushed out a little, as a garment sits
    over them, and the hem sits on the hips."""  # fmt: skip
    span = np.linalg.norm(np.asarray(left_shoulder) - np.asarray(right_shoulder))
    centre = (np.asarray(left_shoulder) + np.asarray(right_shoulder)) / 2
    out = lambda p: np.asarray(p) + (np.asarray(p) - centre) * widen  # noqa: E731
    hip_centre = (np.asarray(left_hip) + np.asarray(right_hip)) / 2
    out_hip = lambda p: np.asarray(p) + (np.asarray(p) - hip_centre) * widen  # noqa: E731
    collar = np.asarray(neck) + np.array([0.0, 0.08 * span])
    return np.stack(
        [collar, out(left_shoulder), out(right_shoulder), out_hip(left_hip), out_hip(right_hip)]
    )
