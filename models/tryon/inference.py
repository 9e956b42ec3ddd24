"""Running a trained try-on generator on arrays: a batch of samples in, uint8 images out;
and the inputs for a real photo and a product shot."""

from __future__ import annotations

import numpy as np
import torch

from drape.models.images import fit_into
from drape.models.person import PersonAnalysis
from drape.models.tryon.fitting import preview
from drape.models.tryon.networks import TryOnGenerator
from drape.models.tryon.photos import _sample, crop_to_aspect
from drape.models.tryon.sample import TryOnSample
from drape.models.tryon.training import GENERATOR_INPUTS, to_tensors


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return (
        ((t.detach().cpu().permute(0, 2, 3, 1).numpy() + 1) * 127.5)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )


def run_generator(generator: TryOnGenerator, samples: list[TryOnSample]) -> dict[str, np.ndarray]:
    """Every output of the generator for ``samples``, as the runners return them: float32
    arrays (B, C, H, W), images in [-1, 1]."""
    batch = to_tensors(samples)
    with torch.inference_mode():
        out = generator(*(batch[k] for k in GENERATOR_INPUTS))
    return {name: tensor.numpy() for name, tensor in out.items()}


def generate(generator: TryOnGenerator, samples: list[TryOnSample]) -> dict[str, np.ndarray]:
    """What is shown for ``samples`` (:func:`~drape.models.tryon.fitting.preview`): try-on
    (B, H, W, 3) uint8 and the garment's mask (B, H, W) float 0/1."""
    out = run_generator(generator, samples)
    shown = [preview(sample, out, i) for i, sample in enumerate(samples)]
    return {"tryon": np.stack([rgb for rgb, _ in shown]),
            "mask": np.stack([mask for _, mask in shown]).astype(np.float32)}  # fmt: skip


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
    return _sample(
        crop, analysis, *fit_garment(garment, garment_mask, height, width), height, width
    ), analysis


def fit_garment(
    garment: np.ndarray, garment_mask: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """A product shot and its mask letterboxed into the model's (H, W) canvas."""
    fitted_mask = fit_into(np.repeat(garment_mask[..., None], 3, 2), height, width, fill=0)[..., 0]
    return fit_into(garment, height, width), fitted_mask


def person_inputs(
    photo: np.ndarray,
    analysis: PersonAnalysis,
    garment: np.ndarray,
    garment_mask: np.ndarray,
    height: int,
    width: int,
) -> tuple[TryOnSample | None, tuple[int, int, int, int]]:
    """Inputs for a whole photo analysed once: the crop around the person (returned as
    (top, left, bottom, right)) with the analysis re-expressed for it, and the garment."""
    box = person_box(analysis, photo.shape[0], photo.shape[1], width / height)
    top, left, bottom, right = box
    fitted, fitted_mask = fit_garment(garment, garment_mask, height, width)
    cropped = crop_analysis(analysis, box)
    return _sample(photo[top:bottom, left:right], cropped, fitted, fitted_mask, height, width), box


def person_box(
    analysis: PersonAnalysis, height: int, width: int, aspect: float
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the photo region the model sees: the full photo height
    (or as much as the aspect ratio allows), centred on the shoulders, of width/height
    ``aspect``, clamped to the photo."""
    crop_h = height
    crop_w = min(width, round(crop_h * aspect))
    crop_h = min(height, round(crop_w / aspect))
    centre_x = width / 2
    if analysis.keypoints.size:
        centre_x = float(analysis.keypoints[[11, 12], 0].mean()) * width
    left = int(np.clip(round(centre_x - crop_w / 2), 0, width - crop_w))
    top = (height - crop_h) // 2
    return top, left, top + crop_h, left + crop_w


def crop_analysis(analysis: PersonAnalysis, box: tuple[int, int, int, int]) -> PersonAnalysis:
    """The analysis of a photo, re-expressed for a crop of it (no second MediaPipe run)."""
    from dataclasses import replace

    from drape.models.person import _mask_box

    top, left, bottom, right = box
    h, w = bottom - top, right - left
    keypoints = analysis.keypoints.copy()
    if keypoints.size:
        keypoints[:, 0] = (keypoints[:, 0] * analysis.width - left) / w
        keypoints[:, 1] = (keypoints[:, 1] * analysis.height - top) / h

    def cut(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.ascontiguousarray(array[top:bottom, left:right])

    def shift(
        b: tuple[float, float, float, float] | None,
    ) -> tuple[float, float, float, float] | None:
        if b is None:
            return None
        x0, y0, x1, y1 = b
        return ((x0 * analysis.width - left) / w, (y0 * analysis.height - top) / h,
                (x1 * analysis.width - left) / w, (y1 * analysis.height - top) / h)  # fmt: skip

    upper = cut(analysis.upper_body_mask)
    return replace(
        analysis, width=w, height=h, keypoints=keypoints, face_box=shift(analysis.face_box),
        upper_body_box=_mask_box(upper) if upper is not None else None, person_mask=cut(analysis.person_mask),
        upper_body_mask=upper, agnostic=cut(analysis.agnostic),
    )  # fmt: skip
