"""Evaluation of a try-on generator: SSIM, PSNR and perceptual distance of a trained try-on generator on
held-out synthetic pairs, against the naive paste of the keypoint-warped garment and the
untrained generator; and a real photo (skimage's astronaut, or matplotlib's Grace Hopper)
with a generated garment, with the garment's coverage of the upper-body region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from drape.models.tryon.inference import generate, photo_inputs
from drape.models.tryon.losses import PerceptualDistance
from drape.models.tryon.metrics import psnr, ssim
from drape.models.tryon.networks import TryOnGenerator
from drape.models.tryon.sample import TryOnSample, remap
from drape.models.tryon.synthetic import synthetic_pair
from drape.models.tryon.warp import tps_grid

EVAL_SEED = 10_000  # training draws from other seeds


def naive_paste(sample: TryOnSample) -> np.ndarray:
    """The baseline: the keypoint-TPS-warped garment pasted onto the agnostic person."""
    h, w = sample.person.shape[:2]
    grid = tps_grid(sample.tps_control, sample.tps_params, h, w)
    warped = remap(sample.garment, grid, border=255)
    mask = remap(sample.garment_mask, grid) > 127
    return np.where(mask[..., None], warped, sample.agnostic)


def _scores(
    outputs: np.ndarray, samples: list[TryOnSample], perceptual: PerceptualDistance
) -> dict[str, float]:
    targets = np.stack([s.person for s in samples])
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.inference_mode():
        distance = float(perceptual(to_t(outputs), to_t(targets)))
    return {
        "ssim": float(np.mean([ssim(o, t) for o, t in zip(outputs, targets, strict=True)])),
        "psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets, strict=True)])),
        "perceptual": distance,
    }


def evaluate(generator: TryOnGenerator, pairs: int = 64) -> dict[str, dict[str, float]]:
    spec = generator.spec
    samples = [
        synthetic_pair(np.random.default_rng([EVAL_SEED, i]), spec.height, spec.width)
        for i in range(pairs)
    ]
    perceptual = PerceptualDistance()
    torch.manual_seed(0)
    untrained = TryOnGenerator(spec).eval()
    results = {}
    for name, outputs in (
        ("naive paste", np.stack([naive_paste(s) for s in samples])),
        ("untrained generator", _batched(untrained, samples)),
        ("trained generator", _batched(generator, samples)),
    ):
        results[name] = _scores(outputs, samples, perceptual)
    return results


def _batched(generator: TryOnGenerator, samples: list[TryOnSample], size: int = 16) -> np.ndarray:
    return np.concatenate(
        [generate(generator, samples[i : i + size])["tryon"] for i in range(0, len(samples), size)]
    )


def real_photo(generator: TryOnGenerator, out_png: Path) -> dict[str, float | str]:
    """The generator on a real photo with a generated product shot; saves photo | garment |
    try-on as a PNG and returns the garment's coverage of the upper-body region."""
    from PIL import Image

    from drape.models.person import PersonAnalyzer
    from drape.models.tryon.data import bundled_photos
    from drape.synthetic.garments import render_garment

    photo = bundled_photos()[-1]  # the astronaut when scikit-image is installed
    shot = render_garment("t-shirt", "blue", "striped", np.random.default_rng(3))
    analyzer = PersonAnalyzer()
    try:
        sample, analysis = photo_inputs(photo, analyzer.analyze, shot.image, shot.mask, generator.spec.height,
                                        generator.spec.width)  # fmt: skip
    finally:
        analyzer.close()
    if sample is None:
        return {"error": f"the photo is not usable: {analysis.reason}"}
    out = generate(generator, [sample])
    region = sample.region > 0
    coverage = float((out["mask"][0][region] > 0.5).mean())
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([sample.person, sample.garment, out["tryon"][0]], axis=1)).save(
        out_png
    )
    return {"upper_body_coverage": coverage, "png": str(out_png)}
