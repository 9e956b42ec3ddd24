"""Fitting a product shot to a body part by part: sleeves along the arms, arms, hands and the
face in front, one piece, and the photo's light on the new garment; then the previews on real
photos meet the product's targets."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from drape.models.tryon.fitting import (
    finish,
    fit_garment_to_body,
    garment_parts,
    one_piece,
    refinement_agreement,
    shading,
)
from drape.models.tryon.inference import fit_garment
from drape.models.tryon.sample import TryOnSample
from drape.synthetic.garments import render_garment

H, W = 256, 192
# A body facing the camera, in [0, 1] of a 256x192 crop (MediaPipe indices: shoulders 11/12,
# elbows 13/14, wrists 15/16, hand points 17-22, hips 23/24). Index 11 is the person's left,
# on the image's right.
BODY = {0: (0.5, 0.12), 11: (0.68, 0.3), 12: (0.32, 0.3), 13: (0.74, 0.5), 14: (0.26, 0.5),
        15: (0.76, 0.68), 16: (0.24, 0.68), 23: (0.62, 0.78), 24: (0.38, 0.78)}  # fmt: skip
ARMS_OUT = {13: (0.9, 0.3), 14: (0.1, 0.3), 15: (0.99, 0.25), 16: (0.01, 0.25)}
CROSSING = {15: (0.36, 0.5)}  # the left forearm across the belly


def _keypoints(points: dict[int, tuple[float, float]], unseen: tuple[int, ...] = ()) -> np.ndarray:
    keypoints = np.zeros((33, 4), np.float32)
    keypoints[:, 3] = 1.0
    for index, xy in points.items():
        keypoints[index, :2] = xy
    for wrist, hand in ((15, (17, 19, 21)), (16, (18, 20, 22))):
        keypoints[list(hand), :2] = keypoints[wrist, :2] + [0.0, 0.03]
        keypoints[list(hand), 3] = keypoints[wrist, 3]
    keypoints[list(unseen), 3] = 0.1
    return keypoints


def _px(keypoints: np.ndarray, index: int) -> tuple[int, int]:
    return int(keypoints[index, 0] * W), int(keypoints[index, 1] * H)


def _person(keypoints: np.ndarray) -> np.ndarray:
    """A person mask drawn from the keypoints: torso, arms, head."""
    mask = np.zeros((H, W), np.uint8)
    corners = [_px(keypoints, i) for i in (11, 12, 24, 23)]
    cv2.fillConvexPoly(mask, np.int32(corners), 255)
    cv2.circle(mask, _px(keypoints, 0), 22, 255, -1)
    for chain in ((11, 13, 15), (12, 14, 16)):
        for a, b in itertools.pairwise(chain):
            cv2.line(mask, _px(keypoints, a), _px(keypoints, b), 255, 22)
    return mask


def _shot(category: str, pattern: str = "striped", seed: int = 1):
    shot = render_garment(category, "blue", pattern, np.random.default_rng(seed))
    return fit_garment(shot.image, shot.mask, H, W)


def _arm_band(keypoints: np.ndarray, chain: tuple[int, ...]) -> np.ndarray:
    band = np.zeros((H, W), np.uint8)
    for a, b in itertools.pairwise(chain):
        cv2.line(band, _px(keypoints, a), _px(keypoints, b), 255, 3)
    return band > 0


def test_a_product_shot_is_cut_into_torso_and_sleeves():
    for category in ("t-shirt", "sweater"):
        _, mask = _shot(category)
        parts = garment_parts(mask)
        left, right = parts.sleeves
        assert left is not None and right is not None, category
        # Sleeves lie outside the torso and point away from it; together they are the garment.
        assert not (parts.torso & (left.mask | right.mask)).any()
        assert left.axis[0] < 0 < right.axis[0]
        assert (parts.torso | left.mask | right.mask).sum() == (mask > 127).sum()
    # Long sleeves hang down.
    sleeves = garment_parts(_shot("sweater")[1]).sleeves
    assert all(sleeve.axis[1] > 0.4 for sleeve in sleeves)
    # A dress has straps and a flared skirt, but no sleeves: all of it is the torso.
    _, dress = _shot("dress")
    parts = garment_parts(dress)
    assert parts.sleeves == (None, None) and parts.torso.sum() == (dress > 127).sum()


@pytest.mark.parametrize("arms", ["at the sides", "held out"])
def test_long_sleeves_follow_the_arms_down_to_the_wrists(arms):
    keypoints = _keypoints({**BODY, **(ARMS_OUT if arms == "held out" else {})})
    garment, mask = _shot("sweater", "solid")
    fitted = fit_garment_to_body(garment, mask, keypoints, _person(keypoints))
    worn = fitted.mask > 0
    for chain in ((11, 13, 15), (12, 14, 16)):
        band = _arm_band(keypoints, chain)
        # Most of each arm, shoulder to wrist, is in its sleeve (the hand is not).
        assert worn[band].mean() >= 0.7, (arms, chain, worn[band].mean())
    assert one_piece(worn, fitted.in_front > 0).sum() == worn.sum()


def test_short_sleeves_end_on_the_upper_arm():
    keypoints = _keypoints(BODY)
    garment, mask = _shot("t-shirt", "solid")
    worn = fit_garment_to_body(garment, mask, keypoints, _person(keypoints)).mask > 0
    for shoulder, elbow, wrist in ((11, 13, 15), (12, 14, 16)):
        assert worn[_arm_band(keypoints, (shoulder, elbow))].mean() >= 0.3
        assert worn[_arm_band(keypoints, (elbow, wrist))].mean() <= 0.1


def test_a_forearm_across_the_body_stays_in_front_and_the_garment_stays_one_piece():
    keypoints = _keypoints({**BODY, **CROSSING})
    garment, mask = _shot("t-shirt", "checked")
    fitted = fit_garment_to_body(garment, mask, keypoints, _person(keypoints))
    forearm = _arm_band(keypoints, (13, 15))
    torso = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(torso, np.int32([_px(keypoints, i) for i in (11, 12, 24, 23)]), 255)
    across = forearm & (torso > 0)
    assert across.sum() > 50
    assert (fitted.mask[across] == 0).all() and (fitted.in_front[across] > 0).all()
    worn = fitted.mask > 0
    # The garment goes on below the forearm: it is behind it, not cut off by it.
    below = (torso > 0) & (np.arange(H)[:, None] > keypoints[13, 1] * H + 12)
    assert worn[below].mean() >= 0.8
    assert one_piece(worn, fitted.in_front > 0).sum() == worn.sum()


def test_a_hand_pose_estimation_only_guessed_cuts_no_hole():
    keypoints = _keypoints({**BODY, **CROSSING}, unseen=(15,))
    garment, mask = _shot("t-shirt", "checked")
    fitted = fit_garment_to_body(garment, mask, keypoints, _person(keypoints))
    torso = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(torso, np.int32([_px(keypoints, i) for i in (11, 12, 24, 23)]), 255)
    across = _arm_band(keypoints, (13, 15)) & (torso > 0)
    assert not (fitted.in_front > 0)[across].any()
    assert (fitted.mask > 0)[across].all()


def test_the_garment_never_covers_the_face():
    keypoints = _keypoints(BODY)
    garment, mask = _shot("t-shirt")
    face = (0.38, 0.0, 0.62, 0.33)  # a chin that comes down over the collar
    fitted = fit_garment_to_body(garment, mask, keypoints, _person(keypoints), face)
    assert fitted.mask[: int(0.33 * H), int(0.38 * W) : int(0.62 * W)].max() == 0
    without = fit_garment_to_body(garment, mask, keypoints, _person(keypoints))
    assert without.mask[: int(0.33 * H), int(0.38 * W) : int(0.62 * W)].max() > 0


def test_one_piece_keeps_the_largest_part_and_fills_only_small_holes():
    mask = np.zeros((100, 100), bool)
    mask[10:90, 10:90] = True
    mask[40:42, 40:42] = False  # a pin hole: filled
    mask[60:80, 20:60] = False  # a large gap (between an arm and the body): kept
    mask[0:3, 95:100] = True  # a detached patch: dropped
    kept = one_piece(mask)
    assert kept[40:42, 40:42].all() and not kept[60:80, 20:60].any() and not kept[0:3, 95:].any()
    # Two halves joined behind an arm are one garment.
    halves = np.zeros((100, 100), bool)
    halves[10:45, 10:90] = halves[55:90, 10:90] = True
    arm = np.zeros((100, 100), bool)
    arm[45:55, :] = True
    assert one_piece(halves, arm).sum() == halves.sum()
    assert one_piece(halves).sum() == halves[10:45].sum()


def test_shading_carries_the_photos_folds_but_not_its_old_garments_print():
    photo = np.full((H, W, 3), (200, 110, 40), np.uint8)  # an orange fabric
    xs = np.arange(W)[None, :]
    fold = np.exp(-0.5 * ((xs - 60) / 6.0) ** 2)  # a soft vertical fold at x = 60
    photo = (photo * (1 - 0.4 * fold)[..., None]).astype(np.uint8)
    photo[150:180, 120:150] = (250, 250, 250)  # a white badge
    where = np.zeros((H, W), bool)
    where[40:230, 20:172] = True
    factor = shading(photo, where)
    assert factor[100, 60] < 0.9  # the fold darkens the new garment
    assert abs(factor[100, 100] - 1) < 0.03  # flat fabric leaves it as it is
    assert abs(factor[165, 135] - 1) < 0.05  # the badge is not light falling on it


def _photo_sample(garment: np.ndarray, mask: np.ndarray) -> TryOnSample:
    person = np.full((H, W, 3), 150, np.uint8)
    return TryOnSample(person=person, agnostic=person, pose=np.zeros((10, 2), np.float32),
                       garment=garment, garment_mask=mask, tps_control=np.zeros((5, 2)),
                       tps_params=np.zeros((8, 2)), region=mask, in_front=np.zeros_like(mask))  # fmt: skip


def _outputs(garment: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    coverage = (mask > 127).astype(np.float32)[None, None]
    image = garment.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
    return {"warped": image * coverage, "warped_mask": coverage, "tryon": image,
            "mask": coverage}  # fmt: skip


def test_the_generators_refinement_is_shown_only_while_it_keeps_the_garment():
    keypoints = _keypoints(BODY)
    garment, mask = _shot("t-shirt", "striped")
    fitted = fit_garment_to_body(garment, mask, keypoints, _person(keypoints))
    sample = _photo_sample(fitted.garment, fitted.mask)
    # A refinement that only lightens the garment a little keeps its pattern: it is shown.
    lighter = np.clip(fitted.garment.astype(int) + 12, 0, 255).astype(np.uint8)
    faithful = _outputs(lighter, fitted.mask)
    assert refinement_agreement(sample, faithful) > 0.9
    shown, worn = finish(sample, faithful)
    assert shown[worn].mean() > fitted.garment[worn].mean() + 6
    # One that bends the stripes into something else is not: the fitted garment is.
    bent = np.roll(fitted.garment, 9, axis=0)
    distorted = _outputs(bent, fitted.mask)
    assert refinement_agreement(sample, distorted) < 0.8
    shown, worn = finish(sample, distorted)
    assert np.abs(shown[worn].astype(int) - fitted.garment[worn]).mean() < 3


def _variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    from drape.models.images import decode_image, encode_jpeg

    h, w = photo.shape[:2]
    return {
        "as is": photo,
        "mirrored": np.ascontiguousarray(photo[:, ::-1]),
        "cropped": np.ascontiguousarray(photo[int(0.04 * h) :, int(0.06 * w) : int(0.94 * w)]),
        "half size": cv2.resize(photo, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "JPEG 70": decode_image(encode_jpeg(photo, 70)).pixels,
    }


def test_previews_on_real_photos_meet_the_targets(analyzer, astronaut, grace_hopper):
    """Coverage >= 60%, one piece (largest part >= 95%), Delta E <= 10 and the face kept
    (SSIM >= 0.97) on the bundled photos and crops, rescalings, mirrorings and re-encodings
    of them, through the service's path: the whole photo analysed, the person's crop fitted,
    the shipped generator, the preview spliced back."""
    from drape.models.tryon.evaluation import PHOTO_GARMENTS, evaluate_photos
    from drape.models.tryon.training import load_generator
    from drape.services.runtime.config import DrapeConfig

    generator = load_generator(DrapeConfig().tryon_checkpoint())
    photos = [(f"{name}, {variant}", pixels)
              for name, photo in (("astronaut", astronaut), ("Grace Hopper", grace_hopper))
              for variant, pixels in _variants(photo).items()]  # fmt: skip
    report = evaluate_photos(generator, photos)
    assert all(p["usable"] for p in report["photos"]), report["photos"]
    previews = report["previews"]
    assert len(previews) == len(photos) * len(PHOTO_GARMENTS)
    short = [(p["photo"], p["garment"], round(p["coverage"], 2), round(p["connectedness"], 3),
              round(p["colour_delta_e"], 1), round(p["face_ssim"], 3))
             for p in previews
             if p["coverage"] < 0.6 or p["connectedness"] < 0.95 or p["colour_delta_e"] > 10
             or p["face_ssim"] < 0.97]  # fmt: skip
    assert not short, short
