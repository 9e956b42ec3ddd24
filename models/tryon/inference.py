"""Running a trained try-on generator on arrays: a batch of samples in, uint8 images out;
and the inputs for a real photo and a product shot."""

from __future__ import annotations

import numpy as np
import torch

from models.person import PersonAnalysis
from models.tryon.networks import TryOnGenerator
from models.tryon.photos import _sample, crop_to_aspect
from models.tryon.synthetic import TryOnSample, _fit
from models.tryon.training import GENERATOR_INPUTS, to_tensors


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return (
        ((t.detach().cpu().permute(0, 2, 3, 1).numpy() + 1) * 127.5)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )


def generate(generator: TryOnGenerator, samples: list[TryOnSample]) -> dict[str, np.ndarray]:
    """try-on (B, H, W, 3) uint8 and composition mask (B, H, W) float for ``samples``."""
    batch = to_tensors(samples)
    with torch.inference_mode():
        out = generator(*(batch[k] for k in GENERATOR_INPUTS))
    return {"tryon": to_uint8(out["tryon"]), "mask": out["mask"][:, 0].numpy()}


def photo_inputs(
    photo: np.ndarray,
    analysis_of,
    garment: np.ndarray,
    garment_mask: np.ndarray,
    height: int,
    width: int,
) -> tuple[TryOnSample | None, PersonAnalysis]:
    """Inputs for a shopper photo (cropped to the model's aspect ratio, analysed with
    ``analysis_of``) and a product shot with its mask."""
    crop = crop_to_aspect(photo, height, width)
    analysis = analysis_of(crop)
    fitted = _fit(garment, height, width)
    fitted_mask = _fit(np.repeat(garment_mask[..., None], 3, 2), height, width, fill=0)[..., 0]
    return _sample(crop, analysis, fitted, fitted_mask, height, width), analysis
