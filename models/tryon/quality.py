"""How believable a try-on preview is, measured without any garment dataset: each measure
compares the rendering with what it was made from (the product shot, the body region, the
keypoint-warped garment), so it can be computed for every preview a shopper would see.

* coverage: the share of the upper-body region the garment covers (a worn top covers most
  of it; a blob covers little);
* connectedness: the largest connected part's share of the garment (one garment, not
  patches);
* colour: CIELAB Delta E (CIE76) between the product shot's and the rendered garment's mean
  colours (the shopper must see the colour they would buy);
* pattern: SSIM, inside the garment, between the rendering and the product shot warped onto
  the body (stripes and checks must survive, not blur into a patch);
* sharpness: the rendered garment's edge energy relative to the warped product shot's
  (1 = as sharp as the product shot itself).

:func:`assess` turns them into one score in [0, 1] (the weakest measure decides) and the
reasons a preview falls short, each worded for a shopper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from drape.models.tryon.sample import TryOnSample

# Per measure: the value at which it starts to count (score 0) and where it is fully met
# (score 1). Coverage, connectedness and colour follow the product's targets (>= 60%,
# >= 95%, Delta E <= 10).
RAMPS = {
    "coverage": (0.30, 0.60),
    "connectedness": (0.80, 0.95),
    "colour_delta_e": (20.0, 10.0),
    "pattern_ssim": (0.20, 0.50),
    "sharpness": (0.25, 0.60),
}
# What a shopper can do when a measure falls short.
ADVICE = {
    "coverage": "stand facing the camera with your upper body in the photo",
    "connectedness": "keep your arms at your sides, away from your body",
    "colour_delta_e": "take the photo in even, natural light",
    "pattern_ssim": "face the camera with your arms at your sides",
    "sharpness": "use a sharper, well-lit photo",
}


@dataclass(frozen=True)
class PreviewMeasures:
    coverage: float
    connectedness: float
    colour_delta_e: float
    pattern_ssim: float
    sharpness: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    measures: PreviewMeasures
    score: float
    # Measures that fell short of being fully met, weakest first.
    short: tuple[str, ...]

    def advice(self) -> str:
        """What the shopper can do about the weakest measure ("" when none fell short)."""
        return ADVICE[self.short[0]] if self.short else ""


def measure(
    rendered: np.ndarray,
    garment_mask: np.ndarray,
    warped: np.ndarray,
    region: np.ndarray,
    product: np.ndarray,
    product_mask: np.ndarray,
    in_front: np.ndarray | None = None,
) -> PreviewMeasures:
    """The measures of one rendering: ``rendered`` and ``warped`` (H, W, 3) uint8, the
    rendered ``garment_mask`` and the body ``region`` (H, W) bool, and the ``product`` shot
    with its mask (any size). What is ``in_front`` of the garment (arms, hands: (H, W) bool)
    is not asked to be covered, and parts of the garment joined behind it are one piece."""
    garment = garment_mask.astype(bool)
    area = int(garment.sum())
    region = region.astype(bool)
    occluded = in_front.astype(bool) if in_front is not None else np.zeros_like(garment)
    region &= ~occluded
    coverage = float((garment & region).sum() / region.sum()) if region.any() else 0.0
    if area == 0:
        return PreviewMeasures(coverage, 0.0, 100.0, 0.0, 0.0)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        (garment | occluded).astype(np.uint8), connectivity=8
    )
    per_part = np.bincount(labels[garment], minlength=len(stats))
    connectedness = float(per_part[1:].max() / area)
    product_lab = _lab(product)[product_mask.astype(bool)].mean(axis=0)
    rendered_lab = _lab(rendered)[garment].mean(axis=0)
    delta_e = float(np.linalg.norm(product_lab - rendered_lab))
    inside = cv2.erode(garment.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    inside = inside if inside.sum() >= 64 else garment
    pattern = masked_ssim(rendered, warped, inside)
    sharpness = (_edge_energy(rendered, inside) + 1.0) / (_edge_energy(warped, inside) + 1.0)
    return PreviewMeasures(coverage, connectedness, delta_e, pattern, float(min(sharpness, 1.0)))


def assess(measures: PreviewMeasures) -> Assessment:
    """One score in [0, 1], the weakest measure's, and the measures that fell short."""
    scores = {}
    for name, (zero, full) in RAMPS.items():
        value = getattr(measures, name)
        scores[name] = float(np.clip((value - zero) / (full - zero), 0.0, 1.0))
    short = tuple(sorted((n for n, s in scores.items() if s < 1.0), key=scores.__getitem__))
    return Assessment(measures, min(scores.values()), short)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB with L in [0, 100] and a, b around 0 (OpenCV scales them to bytes)."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    return np.stack([lab[..., 0] * 100 / 255, lab[..., 1] - 128, lab[..., 2] - 128], axis=-1)


def masked_ssim(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean SSIM of two RGB images (greyscale, 7x7 Gaussian windows) over the pixels of
    ``where`` (all when None); numpy and OpenCV only, cheap enough for every preview."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255

    def blur(t: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(t, (7, 7), 1.5)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(ssim.mean() if where is None else ssim[where].mean())


def _edge_energy(rgb: np.ndarray, where: np.ndarray) -> float:
    """Mean gradient magnitude (Sobel, greyscale 0-255) over ``where``."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.hypot(gx, gy)[where].mean())


def measure_outputs(
    sample: TryOnSample,
    outputs: dict[str, np.ndarray],
    index: int = 0,
    shown: tuple[np.ndarray, np.ndarray] | None = None,
) -> PreviewMeasures:
    """The measures of what is shown for item ``index`` of a generator's (or a runner's)
    outputs for ``sample`` (:func:`~drape.models.tryon.fitting.preview`; pass it as ``shown``
    when it is already made). The pattern is held to the product shot as placed on the body:
    for a photo, the garment fitted to it (``sample.garment``); for a synthetic pair, the
    generator's warped garment (``warped``, (B, 3, H, W) in [-1, 1])."""
    from drape.models.tryon.fitting import preview

    rendered, mask = shown if shown is not None else preview(sample, outputs, index)
    if sample.in_front is not None:
        placed = sample.garment
    else:
        warped = np.asarray(outputs["warped"][index], dtype=np.float32).transpose(1, 2, 0)
        placed = ((warped + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    in_front = sample.in_front > 127 if sample.in_front is not None else None
    return measure(rendered, mask, placed, sample.region > 0, sample.garment,
                   sample.garment_mask > 127, in_front)  # fmt: skip
