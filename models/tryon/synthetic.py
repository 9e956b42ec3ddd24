"""Synthetic paired try-on data: a generated person (pose, build and skin tone vary) wearing
a generated garment (solid, striped, checked, dotted or floral), with exact ground truth.

The ground-truth garment is warped with the keypoint TPS *plus* a random smooth deformation
and shaded by the body (cylindrical light, folds); a forearm may cross in front of the torso
(the pose's wrist keypoint then says where the hand is).
The network only gets the keypoint TPS, the clothing-agnostic person and the pose, so the
refinement flow, the shading and the occlusions are what it has to learn: enough that
learning is measurable against the naive paste of the TPS-warped garment.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drape.models.garments import garment_keypoints
from drape.models.images import fit_into, letterbox
from drape.models.person import AGNOSTIC_GREY
from drape.models.tryon.sample import TryOnSample, remap
from drape.models.tryon.warp import body_anchor_points, tps_grid, tps_solve
from drape.synthetic.garments import render_garment
from drape.synthetic.vocabulary import COLOURS, PATTERNS

POSE_POINTS = ("nose", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
               "left_wrist", "right_wrist", "left_hip", "right_hip")  # fmt: skip
SKIN_TONES = np.array([(255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 99),
                       (161, 102, 72), (120, 75, 50), (88, 56, 38)], np.float32)  # fmt: skip
HAIR = np.array(
    [(30, 24, 20), (70, 45, 25), (150, 110, 60), (200, 170, 110), (90, 90, 90)], np.float32
)


def _smooth_field(
    rng: np.random.Generator, height: int, width: int, amplitude: float
) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    field = np.zeros((height, width, 2), np.float32)
    for axis in range(2):
        for _ in range(2):
            fx, fy, phase = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
            field[..., axis] += amplitude * np.sin(2 * np.pi * (fx * xs + fy * ys) + phase)
    return field


@dataclass
class _Person:
    """A generated person before any garment: the drawing (float32, H x W x 3) and where
    the body is."""

    draw: np.ndarray
    canvas: np.ndarray
    skin: np.ndarray
    cx: float
    shoulder_w: float
    ls: np.ndarray
    rs: np.ndarray
    lh: np.ndarray
    rh: np.ndarray
    neck: np.ndarray
    head: np.ndarray
    arms: list


def _person(rng: np.random.Generator, H: int, W: int) -> _Person:
    """A person (pose, build, skin tone, hair and trousers vary) with the upper arms drawn;
    the forearms come later: one of them may cross the torso instead of hanging down."""
    cx = W / 2 + rng.normal(0, 0.03 * W)
    shoulder_w = rng.uniform(0.44, 0.56) * W
    y_sh = rng.uniform(0.25, 0.30) * H
    torso = rng.uniform(0.34, 0.40) * H
    hip_w = shoulder_w * rng.uniform(0.78, 0.92)
    ls, rs = (
        np.array([cx - shoulder_w / 2, y_sh]),
        np.array([cx + shoulder_w / 2, y_sh + rng.normal(0, 2)]),
    )
    lh, rh = np.array([cx - hip_w / 2, y_sh + torso]), np.array([cx + hip_w / 2, y_sh + torso])
    neck = (ls + rs) / 2 - [0, 0.035 * H]
    head = neck - np.array([0, 0.11 * H])
    arms = []
    for shoulder, side in ((ls, -1), (rs, 1)):
        angle = np.radians(rng.uniform(6, 32))
        elbow = shoulder + 0.17 * H * np.array([side * np.sin(angle), np.cos(angle)])
        bend = angle + np.radians(rng.uniform(-25, 20))
        wrist = elbow + 0.16 * H * np.array([side * np.sin(bend), np.cos(bend)])
        arms.append((elbow, wrist))
    (le, _), (re, _) = arms

    top, bottom = rng.uniform(150, 250, 3), rng.uniform(90, 220, 3)
    t = np.linspace(0, 1, H)[:, None, None]
    canvas = (top * (1 - t) + bottom * t) * np.ones((1, W, 1))
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05)
    trousers = rng.uniform(20, 120, 3)
    draw = canvas.astype(np.float32)
    cv2.fillConvexPoly(
        draw,
        np.int32([lh - np.array([4, 0]), rh + np.array([4, 0]), [rh[0] + 6, H], [lh[0] - 6, H]]),
        trousers.tolist(),
    )
    cv2.fillConvexPoly(draw, np.int32([ls, rs, rh, lh]), skin.tolist())
    cv2.line(
        draw, tuple(np.int32(neck)), tuple(np.int32((ls + rs) / 2)), skin.tolist(), int(0.09 * W)
    )
    axes = (int(0.085 * W), int(0.075 * H))
    cv2.ellipse(draw, tuple(np.int32(head)), axes, 0, 0, 360, skin.tolist(), -1)
    cv2.ellipse(draw, tuple(np.int32(head - np.array([0, 0.025 * H]))), (axes[0] + 2, int(axes[1] * 0.75)), 0, 180, 360,
                HAIR[rng.integers(len(HAIR))].tolist(), -1)  # fmt: skip
    limb = (skin * 0.95).tolist()
    for shoulder, elbow in zip((ls, rs), (le, re), strict=True):
        cv2.line(draw, tuple(np.int32(shoulder)), tuple(np.int32(elbow)), limb, int(0.075 * W))
    return _Person(draw, canvas, skin, cx, shoulder_w, ls, rs, lh, rh, neck, head, arms)


def _body_light(rng: np.random.Generator, person: _Person, H: int, W: int) -> np.ndarray:
    """(H, W) factor of the light on a garment: cylindrical across the torso, times folds."""
    xs = np.arange(W)[None, :]
    across = np.clip((xs - person.cx) / (person.shoulder_w / 2 + 1e-6), -1.2, 1.2)
    shade = 0.78 + 0.22 * np.cos(across * np.pi / 2.6)
    folds = 1 + 0.05 * np.sin(
        np.arange(H)[:, None] / H * rng.uniform(8, 16) + xs / W * rng.uniform(2, 6)
    )
    return shade * folds


def _forearms(rng: np.random.Generator, person: _Person, H: int, W: int) -> int | None:
    """Draws the forearms that hang down and returns the side (0 or 1) of the one that crosses
    in front of the torso instead, if one does: it is drawn later, in front of the garment,
    and the pose's wrist is moved to where the hand now is (as a pose estimator reports it)."""
    arms = person.arms
    crossing = int(rng.integers(2)) if rng.random() < 0.35 else None
    if crossing is not None:
        elbow, wrist = arms[crossing]
        arms[crossing] = (elbow, wrist + np.array([(person.cx - wrist[0]) * 0.8, -0.02 * H]))
    limb = (person.skin * 0.95).tolist()
    for side, (elbow, wrist) in enumerate(arms):
        if side != crossing:
            cv2.line(person.draw, tuple(np.int32(elbow)), tuple(np.int32(wrist)), limb,
                     int(0.075 * W))  # fmt: skip
    return crossing


def _crossing_forearm(arm: tuple[np.ndarray, np.ndarray], H: int, W: int) -> np.ndarray:
    """(H, W) bool: the pixels of a forearm (elbow, hand) drawn across the torso."""
    elbow, tip = arm
    forearm = np.zeros((H, W), np.uint8)
    cv2.line(forearm, tuple(np.int32(elbow)), tuple(np.int32(tip)), 255, int(0.07 * W))
    return forearm > 0


def synthetic_pair(rng: np.random.Generator, height: int = 256, width: int = 192) -> TryOnSample:
    """One person, one garment warped by the keypoint TPS, and the person wearing it."""
    H, W = height, width
    person = _person(rng, H, W)
    draw, skin = person.draw, person.skin
    ls, rs, lh, rh, neck, head, arms = (person.ls, person.rs, person.lh, person.rh, person.neck,
                                        person.head, person.arms)  # fmt: skip

    shot = render_garment("t-shirt", str(rng.choice(COLOURS)), str(rng.choice(PATTERNS)), rng)
    garment = letterbox(shot.image, max(H, W))[:H, :W] if H == W else fit_into(shot.image, H, W)
    garment_mask = fit_into(np.repeat(shot.mask[..., None], 3, 2), H, W, fill=0)[..., 0]
    src = garment_keypoints(garment_mask).as_array()
    dst = body_anchor_points(neck, ls, rs, lh, rh)
    control, params = tps_solve(dst, src, (H, W))
    # Ground truth: the keypoint TPS with its anchors jittered plus a smooth deformation.
    true_grid = tps_grid(*tps_solve(dst + rng.normal(0, 0.012 * H, dst.shape), src, (H, W)), H, W)
    true_grid = true_grid + _smooth_field(rng, H, W, 0.012)
    warped = remap(garment, true_grid, border=0).astype(np.float32)
    region = (remap(garment_mask, true_grid) > 127).astype(np.uint8) * 255
    warped *= _body_light(rng, person, H, W)[..., None]
    crossing = _forearms(rng, person, H, W)
    person = np.where(region[..., None] > 0, warped, draw)
    if crossing is not None:
        forearm = _crossing_forearm(arms[crossing], H, W)
        person[forearm] = skin * 0.93
        region = np.where(forearm, 0, region).astype(np.uint8)
    person = np.clip(person, 0, 255).astype(np.uint8)

    torso_poly = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(
        torso_poly,
        np.int32(
            [
                ls - np.array([8, 6]),
                rs + np.array([8, -6]),
                rh + np.array([8, 0]),
                lh - np.array([8, 0]),
            ]
        ),
        255,
    )
    hide = cv2.dilate(np.maximum(region, torso_poly), np.ones((7, 7), np.uint8))
    agnostic = person.copy()
    agnostic[hide > 0] = AGNOSTIC_GREY
    (le, lw), (re, rw) = arms
    points = np.stack([head + np.array([0, 0.03 * H]), neck, ls, rs, le, re, lw, rw, lh, rh])
    pose = (points / [W, H]).astype(np.float32)
    return TryOnSample(person, agnostic, pose, garment, garment_mask, control, params, region)


# What a fitted pair's garment may be (everything the catalog sells that is worn on top).
FITTED_CATEGORIES = ("t-shirt", "shirt", "blouse", "sweater", "hoodie", "jacket", "coat", "dress")


def fitted_pair(rng: np.random.Generator, height: int = 256, width: int = 192) -> TryOnSample:
    """One person and one garment of any top category, made the way photos are served: the
    input is the shot fitted to the body part by part (:mod:`~drape.models.tryon.fitting`,
    with an identity TPS); the ground truth is the shot fitted to the body as it really is
    (the pose's keypoints jittered, a smooth deformation on top), shaded by the body, with a
    forearm sometimes in front. The generator learns to refine a fitted garment, not to warp
    a flat one."""
    from drape.models.tryon.fitting import fit_garment_to_body

    H, W = height, width
    person = _person(rng, H, W)
    draw, skin = person.draw, person.skin
    category = str(rng.choice(FITTED_CATEGORIES))
    shot = render_garment(category, str(rng.choice(COLOURS)), str(rng.choice(PATTERNS)), rng)
    garment = fit_into(shot.image, H, W)
    garment_mask = fit_into(np.repeat(shot.mask[..., None], 3, 2), H, W, fill=0)[..., 0]
    crossing = _forearms(rng, person, H, W)
    arms = person.arms
    body = (np.abs(draw - person.canvas).sum(axis=-1) > 1).astype(np.uint8) * 255
    if crossing is not None:
        body[_crossing_forearm(arms[crossing], H, W)] = 255
    keypoints = _landmarks(person, arms, H, W)

    jittered = keypoints.copy()
    jittered[:, :2] += rng.normal(0, 0.012, (33, 2)) * [H / W, 1.0]
    truth = fit_garment_to_body(garment, garment_mask, jittered, body)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    field = _smooth_field(rng, H, W, 0.012) * [W, H]
    map_x, map_y = xs + field[..., 0].astype(np.float32), ys + field[..., 1].astype(np.float32)
    warped = cv2.remap(truth.garment, map_x, map_y, cv2.INTER_LINEAR).astype(np.float32)
    region = cv2.remap(truth.mask, map_x, map_y, cv2.INTER_LINEAR) > 127
    warped *= _body_light(rng, person, H, W)[..., None]
    image = np.where(region[..., None], warped, draw)
    if crossing is not None:  # in front of the torso; inside its own sleeve, if it has one
        image[_crossing_forearm(arms[crossing], H, W) & ~region] = skin * 0.93
    image = np.clip(image, 0, 255).astype(np.uint8)
    region_u8 = region.astype(np.uint8) * 255

    # What is hidden from the generator, as on a photo: the torso and upper arms (and
    # wherever the garment is).
    hide = region_u8.copy()
    cv2.fillConvexPoly(hide, np.int32([person.ls, person.rs, person.rh, person.lh]), 255)
    for shoulder, (elbow, _) in zip((person.ls, person.rs), arms, strict=True):
        cv2.line(hide, tuple(np.int32(shoulder)), tuple(np.int32(elbow)), 255, int(0.09 * W))
    hide = cv2.dilate(hide, np.ones((7, 7), np.uint8))
    agnostic = image.copy()
    agnostic[hide > 0] = AGNOSTIC_GREY

    fitted = fit_garment_to_body(garment, garment_mask, keypoints, body)
    (le, lw), (re, rw) = arms
    points = np.stack([person.head + np.array([0, 0.03 * H]), person.neck, person.ls, person.rs,
                       le, re, lw, rw, person.lh, person.rh])  # fmt: skip
    pose = (points / [W, H]).astype(np.float32)
    anchors = points[[1, 2, 3, 8, 9]]
    control, params = tps_solve(anchors, anchors, (H, W))  # the identity
    return TryOnSample(image, agnostic, pose, fitted.garment, fitted.mask, control, params,
                       region_u8)  # fmt: skip


def _landmarks(person: _Person, arms: list, H: int, W: int) -> np.ndarray:
    """MediaPipe's 33 landmarks (x, y in [0, 1], z, visibility) of a generated person facing
    the camera: the image's left is the person's right."""
    keypoints = np.zeros((33, 4), np.float32)
    keypoints[:, 3] = 1.0
    (le, lw), (re, rw) = arms
    named = {0: person.head + np.array([0, 0.03 * H]), 12: person.ls, 11: person.rs, 14: le,
             13: re, 16: lw, 15: rw, 24: person.lh, 23: person.rh}  # fmt: skip
    for index, point in named.items():
        keypoints[index, :2] = np.asarray(point) / [W, H]
    for elbow, wrist, hand in ((14, 16, (18, 20, 22)), (13, 15, (17, 19, 21))):
        along = keypoints[wrist, :2] - keypoints[elbow, :2]
        keypoints[list(hand), :2] = keypoints[wrist, :2] + 0.3 * along
    return keypoints
