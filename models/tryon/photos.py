"""Try-on pairs from real photos.

* Self-supervised, from any folder of person photos (PF-AFN's idea): the person's own
  upper-body garment, cut out and perturbed, is the input garment; the photo is the target.
* Paired, from the VITON-HD folder layout (``image/``, ``cloth/``, ``cloth-mask/``): our
  MediaPipe person analysis replaces OpenPose and the human parser.

Both produce :class:`~drape.models.tryon.synthetic.TryOnSample`s like the synthetic generator.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from drape.models.garments import worn_garment
from drape.models.images import decode_image, fit_into
from drape.models.person import L_SHOULDER, R_SHOULDER, PersonAnalysis, PersonAnalyzer
from drape.models.tryon.fitting import fit_garment_to_body
from drape.models.tryon.sample import TryOnSample
from drape.models.tryon.warp import tps_solve

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# MediaPipe landmark pairs (person's left, person's right) in POSE_POINTS order after nose/neck.
_PAIRS = ((11, 12), (13, 14), (15, 16), (23, 24))


def crop_to_aspect(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """The largest centred crop with the model's aspect ratio (width / height)."""
    h, w = rgb.shape[:2]
    target = width / height
    if w / h > target:
        new_w = round(h * target)
        left = (w - new_w) // 2
        return np.ascontiguousarray(rgb[:, left : left + new_w])
    new_h = round(w / target)
    top = (h - new_h) // 2
    return np.ascontiguousarray(rgb[top : top + new_h])


def pose_points(analysis: PersonAnalysis) -> np.ndarray:
    """The 10 model keypoints (image-left first in each pair) from MediaPipe's 33, in [0, 1]."""
    k = analysis.keypoints[:, :2]
    neck = (k[L_SHOULDER] + k[R_SHOULDER]) / 2
    points = [k[0], neck]
    for a, b in _PAIRS:
        pair = sorted((k[a], k[b]), key=lambda p: p[0])
        points += pair
    return np.asarray(points, np.float32)


def _sample(
    target: np.ndarray, analysis: PersonAnalysis, garment: np.ndarray, garment_mask: np.ndarray,
    height: int, width: int,
) -> TryOnSample | None:  # fmt: skip
    """The generator's inputs for a person photo (any size; resized to (H, W)) and a product
    shot letterboxed to (H, W): the shot is fitted to the body part by part
    (:mod:`~drape.models.tryon.fitting`) and handed over with an identity TPS, so the
    generator refines the fitted garment instead of stretching the flat shot."""
    if not analysis.ok or not garment_mask.any():
        return None

    def resize(image: np.ndarray, interp: int = cv2.INTER_AREA) -> np.ndarray:
        return cv2.resize(image, (width, height), interpolation=interp)

    person_mask = resize(analysis.person_mask, cv2.INTER_NEAREST)
    fitted = fit_garment_to_body(
        garment, garment_mask, analysis.keypoints, person_mask, analysis.face_box
    )
    if not fitted.mask.any():
        return None
    pose = pose_points(analysis)
    anchors = pose[[1, 2, 3, 8, 9]] * [width, height]
    control, params = tps_solve(anchors, anchors, (height, width))  # the identity
    return TryOnSample(
        person=resize(target),
        agnostic=resize(analysis.agnostic),
        pose=pose,
        garment=fitted.garment,
        garment_mask=fitted.mask,
        tps_control=control,
        tps_params=params,
        region=(resize(analysis.upper_body_mask, cv2.INTER_NEAREST) > 127).astype(np.uint8) * 255,
        in_front=fitted.in_front,
    )


def self_supervised_pair(
    rgb: np.ndarray,
    analyzer: PersonAnalyzer,
    rng: np.random.Generator,
    height: int = 256,
    width: int = 192,
) -> TryOnSample | None:
    """A pair from one person photo: its own garment (cut out, randomly tilted and scaled)
    as the input; None when the photo has no usable upper body."""
    crop = crop_to_aspect(rgb, height, width)
    if rng.random() < 0.5:
        crop = np.ascontiguousarray(crop[:, ::-1])
    analysis = analyzer.analyze(crop)
    if not analysis.ok:
        return None
    cut = worn_garment(crop, analysis)
    angle, scale = rng.normal(0, 5), rng.uniform(0.85, 1.1)
    centre = (cut.shape[1] / 2, cut.shape[0] / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    cut = cv2.warpAffine(cut, matrix, (cut.shape[1], cut.shape[0]), borderValue=(255, 255, 255))
    garment = fit_into(cut, height, width)
    mask = (np.abs(garment.astype(np.int16) - 255).sum(-1) > 24).astype(np.uint8) * 255
    return _sample(crop, analysis, garment, mask, height, width)


def photo_folder(root: Path) -> list[Path]:
    """Person photos in ``root`` (not recursive), sorted."""
    return sorted(p for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def viton_pairs(root: Path) -> list[tuple[Path, Path, Path]]:
    """(person, cloth, cloth mask) paths of a VITON-HD split folder (``image/``, ``cloth/``,
    ``cloth-mask/``, same file names)."""
    missing = [d for d in ("image", "cloth", "cloth-mask") if not (root / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} is not a VITON-HD split: no {', '.join(missing)} folder")
    pairs = []
    for person in sorted((root / "image").iterdir()):
        cloth, mask = root / "cloth" / person.name, root / "cloth-mask" / person.name
        if cloth.exists() and mask.exists():
            pairs.append((person, cloth, mask))
    return pairs


def viton_pair(
    paths: tuple[Path, Path, Path], analyzer: PersonAnalyzer, height: int = 256, width: int = 192
) -> TryOnSample | None:
    """One VITON-HD pair (the person wears the cloth in the photo)."""
    person_path, cloth_path, mask_path = paths
    photo = crop_to_aspect(decode_image(person_path.read_bytes()).pixels, height, width)
    analysis = analyzer.analyze(photo)
    cloth = fit_into(decode_image(cloth_path.read_bytes()).pixels, height, width)
    mask = fit_into(decode_image(mask_path.read_bytes()).pixels, height, width, fill=0)[..., 0]
    mask = (mask > 127).astype(np.uint8) * 255
    return _sample(photo, analysis, cloth, mask, height, width)
