"""Fitting a product shot to a photographed body part by part, before the generator.

A single thin-plate spline from five landmarks (collar, shoulders, hem corners) stretches the
whole shot, sleeves included, over the torso: on a real photo the sleeves land as wings
beside the body and the garment spreads over an arm that crosses it. Here the shot is cut into
its parts and each follows its own body part, as a tailor's pattern does:

* the torso (the shot between its side seams) goes by a TPS from the collar, the shoulder
  seams and the hem corners to the neck, the shoulders and the hips;
* each sleeve goes along its arm: a pixel of the output is expressed by its arc length along
  shoulder -> elbow -> wrist and its signed distance from that line, and read from the
  sleeve at the same arc length and offset along the sleeve's own axis (so a long sleeve bends
  at the elbow and a short one ends on the upper arm);
* layering: the arms and hands stay in front of the torso, the hands (and the face, over a
  collar) in front of everything;
* the garment sits on the person: it is cut to the (slightly grown) person mask and kept as
  one piece (the largest connected part, small holes filled).

:func:`finish` then lays the generator's refined garment into the photo's light: the
lightness of the photo's own upper body, at the scale of folds and body shading, modulates
the new garment (its colours kept, so it stays the product's colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drape.models.garments import garment_keypoints
from drape.models.tryon.sample import TryOnSample, grid_pixels
from drape.models.tryon.warp import body_anchor_points, tps_grid, tps_solve

# MediaPipe landmarks of each side's arm: shoulder, elbow, wrist, then the hand's points.
_ARMS = ((11, 13, 15, (17, 19, 21)), (12, 14, 16, (18, 20, 22)))
_HIPS = (23, 24)
# Sleeves shorter than this share of the garment's area are no sleeves (straps, a seam's edge).
MIN_SLEEVE_SHARE = 0.015
# A sleeve starts above this share of the garment's height (below it, beyond the side seams,
# is a skirt's flare or a hem's).
SLEEVE_ZONE = 0.35
# A sleeve at least this long (share of the shoulder seams' distance) is a long sleeve, which
# ends at the wrist; and the least width of a sleeve on the body (share of the shoulder span).
LONG_SLEEVE = 0.65
SLEEVE_MIN_WIDTH = 0.4
# Holes smaller than this share of the garment are filled (a seam's gap, a stray pixel);
# larger ones (the gap between an arm and the body) are the photo's.
MAX_HOLE_SHARE = 0.01
# How far above the shoulder joints the shoulder seams and the collar sit, as a share of the
# shoulder span.
SHOULDER_RAISE = 0.12
# Gaps narrower than this share of the shoulder span between parts (where a sleeve turned
# along its arm leaves the armhole) are closed.
SEAM_CLOSE = 0.1
# How far (share of the shoulder span) the garment's colours are carried out past its edge.
EDGE_PADDING = 0.05
# Where along shoulder -> elbow the upper arm stops being under the torso's shoulder.
ARM_FREE = 0.35
# BlazePose's visibility from which an arm or a hand is taken to be in the photo.
MIN_VISIBILITY = 0.5
# The most a hand reaches from the wrist (share of the shoulder span).
HAND_REACH = 0.3


@dataclass(frozen=True)
class Sleeve:
    """A sleeve of a product shot: its pixels, the middle of its armhole (where it joins the
    torso's side seam) and its axis (unit vector from there to the cuff)."""

    mask: np.ndarray  # (H, W) bool
    seam: np.ndarray  # (2,) x, y
    axis: np.ndarray  # (2,)
    length: float  # along the axis, pixels
    width: float  # mean, across the axis, pixels


@dataclass(frozen=True)
class GarmentParts:
    """A product shot cut into the parts that follow the body separately. ``sleeves`` are
    (the image's left, the image's right); None where the garment has none."""

    torso: np.ndarray  # (H, W) bool
    sleeves: tuple[Sleeve | None, Sleeve | None]
    # Collar, left shoulder seam, right shoulder seam, left hem corner, right hem corner (x, y).
    landmarks: np.ndarray  # (5, 2)


@dataclass(frozen=True)
class Fitted:
    """A product shot fitted to a body: the garment as it lies on the photo (H, W, 3), its
    mask, and what stays in front of it (arms and hands), all at the photo crop's size."""

    garment: np.ndarray
    mask: np.ndarray  # uint8 0/255
    in_front: np.ndarray  # uint8 0/255


def garment_parts(mask: np.ndarray) -> GarmentParts:
    """Cuts an upright upper-body garment's mask into torso and sleeves. The side seams are
    the innermost ends of the central run of garment pixels (the one under the collar) below
    the armpits (a skirt's flare and sleeves hanging against the body lie outside them); a
    sleeve is what lies beyond a side seam from above the armpit on, and the torso all the
    rest."""
    garment = mask > 127
    keypoints = garment_keypoints(mask)
    ys = np.nonzero(garment.any(axis=1))[0]
    top, bottom = int(ys[0]), int(ys[-1])
    centre = round(keypoints.collar[0])
    lefts, rights = [], []
    for y in np.linspace(top + 0.35 * (bottom - top), top + 0.95 * (bottom - top), 13).astype(int):
        row = garment[y]
        if not row[centre]:
            continue
        gaps = np.nonzero(~row)[0]
        left_gaps, right_gaps = gaps[gaps < centre], gaps[gaps > centre]
        lefts.append(int(left_gaps[-1]) + 1 if left_gaps.size else 0)
        rights.append(int(right_gaps[0]) - 1 if right_gaps.size else row.size - 1)
    if not lefts:  # no central run below the collar: treat the hem corners as the seams
        lefts, rights = [int(keypoints.left_hem[0])], [int(keypoints.right_hem[0])]
    # The innermost ends: the waist of a flared dress, the body of a sweater below where its
    # sleeves hang against it.
    seam_left, seam_right = int(np.percentile(lefts, 80)), int(np.percentile(rights, 20))
    columns = np.arange(mask.shape[1])[None, :]

    def shoulder(x: int) -> np.ndarray:
        column = np.nonzero(garment[:, x])[0]
        return np.array([x, column[0] if column.size else top], np.float64)

    left_shoulder, right_shoulder = shoulder(seam_left), shoulder(seam_right)
    armpit = top + SLEEVE_ZONE * (bottom - top)
    sleeves = (
        _sleeve(garment & (columns < seam_left), left_shoulder, garment.sum(), armpit),
        _sleeve(garment & (columns > seam_right), right_shoulder, garment.sum(), armpit),
    )
    # The torso is everything that is not a sleeve (a skirt's flare included).
    torso = garment.copy()
    for sleeve in sleeves:
        if sleeve is not None:
            torso &= ~sleeve.mask
    landmarks = np.array([keypoints.collar, left_shoulder, right_shoulder,
                          keypoints.left_hem, keypoints.right_hem], np.float64)  # fmt: skip
    return GarmentParts(torso, sleeves, landmarks)


def _sleeve(
    side: np.ndarray, shoulder: np.ndarray, garment_area: int, armpit: float
) -> Sleeve | None:
    """The sleeve among the garment's pixels beyond one side seam: the largest part that
    starts above the armpit (a skirt's flare starts lower), if it is large enough."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(side.astype(np.uint8), connectivity=8)
    tops = stats[1:, cv2.CC_STAT_TOP]
    candidates = [label for label in range(1, len(stats)) if tops[label - 1] < armpit]
    if not candidates:
        return None
    largest = max(candidates, key=lambda label: stats[label, cv2.CC_STAT_AREA])
    if stats[largest, cv2.CC_STAT_AREA] < MIN_SLEEVE_SHARE * garment_area:
        return None
    part = labels == largest
    ys, xs = np.nonzero(part)
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    # The armhole's middle: the sleeve's pixels along the side seam.
    joined = np.abs(points[:, 0] - shoulder[0]) <= 2
    seam = points[joined].mean(axis=0) if joined.any() else shoulder
    distance = np.linalg.norm(points - seam, axis=1)
    cuff = points[distance >= np.quantile(distance, 0.92)].mean(axis=0)
    axis = (cuff - seam) / max(np.linalg.norm(cuff - seam), 1e-6)
    length = max(float(((points - seam) @ axis).max()), 1.0)
    return Sleeve(part, seam, axis, length, len(points) / length)


def fit_garment_to_body(
    garment: np.ndarray,
    garment_mask: np.ndarray,
    keypoints: np.ndarray,
    person_mask: np.ndarray,
    face_box: tuple[float, float, float, float] | None = None,
) -> Fitted:
    """The product shot ``garment`` (H, W, 3, with ``garment_mask``) laid on the body of a
    photo crop of the same (H, W): ``keypoints`` are MediaPipe's 33 landmarks in [0, 1] of
    the crop, ``person_mask`` its person segmentation (0/255), ``face_box`` (x0, y0, x1, y1
    in [0, 1]) the face, which the garment never covers (a chin over a collar)."""
    height, width = garment_mask.shape
    parts = garment_parts(garment_mask)
    # The shot's own colours carried past its outline, so that sampling a part's edge (the
    # warps are bilinear) never pulls in the studio background as a light seam.
    inside = garment_mask > 127
    garment = np.where(inside[..., None], garment, _masked_blur(garment, inside, 2.0))
    points = keypoints[:, :2] * [width, height]
    # The image's left side first, whichever of the person's sides it is.
    sides = sorted(range(2), key=lambda s: points[_ARMS[s][0], 0])
    shoulders = np.stack([points[_ARMS[s][0]] for s in sides])
    hips = np.stack([points[_HIPS[s]] for s in sides])
    span = float(np.linalg.norm(shoulders[0] - shoulders[1]))
    # BlazePose's shoulders are the joints; a garment's shoulder seams lie on top of them.
    anchors = body_anchor_points(
        shoulders.mean(axis=0), shoulders[0], shoulders[1], hips[0], hips[1]
    )
    anchors[1:3, 1] -= SHOULDER_RAISE * span
    seam_width = max(float(np.linalg.norm(parts.landmarks[2] - parts.landmarks[1])), 1.0)
    scale = float(np.linalg.norm(anchors[2] - anchors[1])) / seam_width
    # The neckline keeps its own depth below the shoulder seams (a crew neck sits at the neck,
    # a V or a dress's neckline lower).
    depth = max(float(parts.landmarks[0, 1] - parts.landmarks[1:3, 1].mean()), 0.0)
    anchors[0] = anchors[1:3].mean(axis=0) + np.array([0.0, depth * scale])
    control, params = tps_solve(anchors, parts.landmarks, (height, width))
    torso_grid = _smooth_tps_pixels(control, params, height, width)

    person = cv2.dilate(person_mask, np.ones((5, 5), np.uint8)) > 0
    arms, hands = np.zeros((height, width), np.uint8), np.zeros((height, width), np.uint8)
    sleeve_maps: list[tuple[np.ndarray, np.ndarray]] = []
    for image_side, side in enumerate(sides):
        shoulder_i, elbow_i, wrist_i, hand_is = _ARMS[side]
        shoulder, elbow, wrist = points[shoulder_i], points[elbow_i], points[wrist_i]
        thickness = max(2, int(0.3 * span))
        seen = keypoints[:, 3] >= MIN_VISIBILITY
        # The upper arm comes out in front of the torso's side below the shoulder's cap. Only
        # what BlazePose sees goes in front: a guessed hand would cut a hole for nothing.
        if seen[shoulder_i] and seen[elbow_i]:
            start = shoulder + ARM_FREE * (elbow - shoulder)
            cv2.line(arms, _xy(start), _xy(elbow), 255, thickness)
        if seen[elbow_i] and seen[wrist_i]:
            cv2.line(arms, _xy(elbow), _xy(wrist), 255, max(2, int(0.24 * span)))
        if seen[wrist_i] and seen[list(hand_is)].all():
            # A hand reaches a fist's size beyond the wrist, whatever the landmarks say.
            hand = points[list(hand_is)]
            reach = float(
                np.clip(np.linalg.norm(hand - wrist, axis=1).max(), 0.08 * span, HAND_REACH * span)
            )
            cv2.circle(hands, _xy((hand.mean(axis=0) + wrist) / 2), int(reach), 255, -1)
        sleeve = parts.sleeves[image_side]
        if sleeve is not None:
            # The armhole's middle goes on the shoulder joint, the sleeve's axis along the arm;
            # a long sleeve ends at the wrist whatever the shot's proportions, and a sleeve is
            # never narrower than an arm with some ease.
            along_scale = scale
            if sleeve.length >= LONG_SLEEVE * seam_width:
                arm = np.linalg.norm(elbow - shoulder) + np.linalg.norm(wrist - elbow)
                along_scale = float(arm) / sleeve.length
            across_scale = max(scale, SLEEVE_MIN_WIDTH * span / sleeve.width)
            grid, along = _sleeve_grid(sleeve, shoulder, elbow, wrist, (along_scale, across_scale),
                                       height, width)  # fmt: skip
            sleeve_maps.append((grid, along))
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        hands[
            int(y0 * height) : int(np.ceil(y1 * height)), int(x0 * width) : int(np.ceil(x1 * width))
        ] = 255
    arms_in_front = (arms > 0) & person
    hands_in_front = (hands > 0) & person

    torso_in = _sample(parts.torso.astype(np.uint8) * 255, torso_grid) > 127
    torso_rgb = _sample(garment, torso_grid)
    rgb = np.where(torso_in[..., None], torso_rgb, 255).astype(np.uint8)
    mask = torso_in & ~arms_in_front
    sleeves_mask = np.zeros_like(mask)
    for (grid, along), sleeve in zip(sleeve_maps, [s for s in parts.sleeves if s is not None],
                                     strict=True):  # fmt: skip
        inside = (_sample(sleeve.mask.astype(np.uint8) * 255, grid) > 127) & (along >= 0)
        inside &= ~sleeves_mask
        rgb[inside] = _sample(garment, grid)[inside]
        sleeves_mask |= inside
    mask = (mask | sleeves_mask) & ~hands_in_front & person
    in_front = (arms_in_front & ~sleeves_mask) | hands_in_front
    closing = max(3, int(SEAM_CLOSE * span) | 1)
    closed = (
        cv2.morphologyEx(
            mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((closing, closing), np.uint8)
        )
        > 0
    )
    closed &= person & ~in_front
    gaps = closed & ~mask
    if gaps.any():  # filled with the garment's colours around them
        rgb[gaps] = _masked_blur(rgb, mask, closing / 2)[gaps]
    mask = one_piece(closed, in_front)
    # Outside the garment, its own colours carried outwards: sampling at its edge (the
    # generator's warp is bilinear) then never pulls in a background.
    rgb = np.where(mask[..., None], rgb, _masked_blur(rgb, mask, EDGE_PADDING * span))
    to_bytes = lambda m: m.astype(np.uint8) * 255  # noqa: E731
    return Fitted(rgb, to_bytes(mask), to_bytes(in_front & ~mask))


def _masked_blur(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` blurred over the pixels of ``mask`` only (normalised convolution): what the
    masked pixels around each pixel look like."""
    weight = mask.astype(np.float32)
    blurred = np.stack(
        [
            _weighted_blur(image[..., c].astype(np.float32), weight, sigma)[0]
            for c in range(image.shape[2])
        ],
        axis=-1,
    )
    return np.clip(blurred, 0, 255).astype(np.uint8)


def _xy(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def _smooth_tps_pixels(
    control: np.ndarray, params: np.ndarray, height: int, width: int, step: int = 4
) -> np.ndarray:
    """The TPS's sampling positions (pixels of the source) for every output pixel, evaluated
    on every ``step``-th pixel and interpolated: a five-point TPS is smooth, and this is 16
    times less work than evaluating every pixel."""
    coarse_h, coarse_w = -(-height // step), -(-width // step)
    coarse = grid_pixels(tps_grid(control, params, coarse_h, coarse_w), height, width)
    # Both grids put pixel centres at (i + 0.5) / size, as cv2.resize does.
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


def _sample(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    return cv2.remap(image, pixels[..., 0], pixels[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip


def _sleeve_grid(
    sleeve: Sleeve,
    seam: np.ndarray,
    elbow: np.ndarray,
    wrist: np.ndarray,
    scale: tuple[float, float],
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel reads the sleeve (pixel coordinates of the shot), and its arc
    length along the arm (negative: on the body side of the shoulder). ``scale`` is (along,
    across): body pixels per shot pixel along the arm and across it."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    best_distance = np.full((height, width), np.inf, np.float32)
    along = np.zeros((height, width), np.float32)
    offset = np.zeros((height, width), np.float32)
    start_length = 0.0
    segments = ((seam, elbow, False), (elbow, wrist + (wrist - elbow) * 0.5, True))
    for index, (a, b, open_end) in enumerate(segments):
        direction = b - a
        length = max(float(np.hypot(*direction)), 1e-6)
        ux, uy = direction / length
        dx, dy = xs - np.float32(a[0]), ys - np.float32(a[1])
        t = np.clip(dx * ux + dy * uy, -np.inf if index == 0 else 0.0,
                    np.inf if open_end else length)  # fmt: skip
        rel_x, rel_y = dx - t * ux, dy - t * uy
        distance = np.hypot(rel_x, rel_y)
        # Which side of the arm: the sign against the segment's normal (-uy, ux).
        side = np.where(rel_x * -uy + rel_y * ux < 0, -1.0, 1.0).astype(np.float32)
        closer = distance < best_distance
        best_distance = np.where(closer, distance, best_distance)
        along = np.where(closer, start_length + t, along)
        offset = np.where(closer, side * distance, offset)
        start_length += length
    sleeve_normal = np.array([-sleeve.axis[1], sleeve.axis[0]])
    source = (
        sleeve.seam
        + (along / scale[0])[..., None] * sleeve.axis
        + (offset / scale[1])[..., None] * sleeve_normal
    )
    return source.astype(np.float32), along


def one_piece(mask: np.ndarray, in_front: np.ndarray | None = None) -> np.ndarray:
    """The garment as one piece: the largest connected part of ``mask`` (parts joined behind
    what is ``in_front`` of it count as one), with holes smaller than MAX_HOLE_SHARE of it
    filled."""
    joined = mask | (in_front if in_front is not None else False)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        joined.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return np.zeros_like(mask, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    kept = mask & (labels == largest)
    holes = (~kept).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    limit = MAX_HOLE_SHARE * kept.sum()
    h, w = mask.shape
    for label in range(1, count):
        x, y, bw, bh, area = stats[label]
        touches_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if area <= limit and not touches_border:
            kept |= labels == label
    if in_front is not None:
        kept &= ~in_front
    return kept


# Shading transfer: the scales (shares of the image height) between which the photo's
# lightness is carried over (finer is texture of the old garment, coarser is its colour), how
# far it may lighten or darken the garment, and how much of it is applied.
SHADING_SCALES = (0.008, 0.06)
SHADING_RANGE = (0.75, 1.25)
SHADING_STRENGTH = 0.8
# Lightness (0-255) added to both sides of the ratio, so that a dark fabric's noise does not
# read as folds; and how far a colour's chromaticity may be from the old garment's main
# fabric's and still be read as its shading.
SHADING_FLOOR = 16.0
FABRIC_TOLERANCE = 0.03
# How far (natural log of the ratio) lightness may be from the fabric's typical lightness and
# still be read as light on it.
LIGHT_RANGE = 0.5
# The support (share of fully counting neighbours) from which the photo's lightness is
# trusted fully.
MIN_SUPPORT = 0.3
# How far (pixels of the model's canvas) the generator's refinement may move the garment's
# outline beyond the fitted one.
REFINE_MARGIN = 5
# The least SSIM between the generator's refinement and the fitted garment for the refinement
# to be shown: below it the generator distorts the garment (a pattern bent toward a garment
# it has learned) and the fitted garment is shown instead.
REFINEMENT_AGREEMENT = 0.8


def shading(photo: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The photo's lightness over ``where`` at the scale of folds and body shading, as a
    factor around 1 (H, W): its local lightness over its lightness at a coarser scale.

    Lightness mixes the light with the old garment's own colours (a white shirt under a dark
    jacket, a badge, a print), which must not show through the new garment. So it is read
    from the old garment's main fabric only: each pixel counts by how close its colour is to
    the region's median colour, and elsewhere the fabric around it speaks for it."""
    height = photo.shape[0]
    smooth = cv2.medianBlur(photo, 3)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = where & (cv2.erode(where.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    if inside.sum() < 16:
        return np.ones(where.shape, np.float32)
    # Chromaticity (r, g) / (r + g + b) does not change when light dims a colour: a fold in
    # the fabric keeps it, a badge or a white shirt front does not.
    rgb = smooth.astype(np.float32) + 1.0
    chroma = rgb[..., :2] / rgb.sum(axis=-1, keepdims=True)
    fabric = np.median(chroma[inside], axis=0)
    distance = np.linalg.norm(chroma - fabric, axis=-1)
    # Light and folds change lightness by a factor of about 2 at most; a white badge on a navy
    # jacket by far more (and dark colours' chromaticity is noisy, so this decides there).
    lightness = lab[..., 0] + SHADING_FLOOR
    contrast = np.log(lightness / np.median(lightness[inside]))
    weight = np.exp(-0.5 * (distance / FABRIC_TOLERANCE) ** 2 - 0.5 * (contrast / LIGHT_RANGE) ** 2)
    weight *= inside
    (fine, fine_support), (coarse, coarse_support) = (
        _weighted_blur(lab[..., 0], weight, scale * height) for scale in SHADING_SCALES
    )
    ratio = np.clip((fine + SHADING_FLOOR) / (coarse + SHADING_FLOOR), *SHADING_RANGE)
    # Where no fabric is near (inside a badge, a white shirt front), there is nothing to read:
    # the factor falls back to 1.
    support = np.clip(np.minimum(fine_support, coarse_support) / MIN_SUPPORT, 0.0, 1.0)
    ratio = 1.0 + support * (ratio - 1.0)
    return (1.0 + SHADING_STRENGTH * (ratio - 1.0)).astype(np.float32)


def _weighted_blur(
    image: np.ndarray, weight: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted Gaussian mean of ``image`` around each pixel, and the weight it rests on
    (the Gaussian mean of ``weight``: 1 where every neighbour counts fully)."""
    total = cv2.GaussianBlur(image * weight, (0, 0), sigma)
    support = cv2.GaussianBlur(weight, (0, 0), sigma)
    return total / np.maximum(support, 1e-6), support


def preview(
    sample: TryOnSample, outputs: dict[str, np.ndarray], index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """What is shown for item ``index`` of a generator's ``outputs`` (float32 (B, C, H, W),
    images in [-1, 1]): the try-on (H, W, 3 uint8) and the garment's mask (H, W bool). For a
    photo (a sample with ``in_front``), :func:`finish`; for a synthetic pair, the generator's
    own try-on and composition mask."""
    if sample.in_front is not None:
        return finish(sample, outputs, index)
    tryon = np.asarray(outputs["tryon"][index], np.float32).transpose(1, 2, 0)
    rgb = ((tryon + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    return rgb, np.asarray(outputs["mask"][index, 0]) > 0.5


def finish(
    sample: TryOnSample, outputs: dict[str, np.ndarray], index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The try-on (H, W, 3 uint8) and the garment's mask (H, W bool) that a shopper is shown
    for item ``index`` of the generator's ``outputs`` for a photo ``sample``, lit by the
    photo's own upper body; elsewhere the photo itself.

    The garment is the generator's refinement of the fitted one (its outline kept near the
    fitted outline, as one piece, behind the arms and hands) when the refinement keeps the
    fitted garment's pattern (:func:`refinement_agreement` >= REFINEMENT_AGREEMENT), and the
    fitted garment itself when the generator would distort it."""
    refined, refined_mask, agreement = _refinement(sample, outputs, index)
    if agreement >= REFINEMENT_AGREEMENT:
        colour, mask = refined, refined_mask
    else:
        colour, mask = sample.garment, _fitted_mask(sample)
    if not mask.any():
        return sample.person.copy(), mask
    lab = cv2.cvtColor(colour, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0] * shading(sample.person, mask), 0, 255)
    lit = cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)
    return np.where(mask[..., None], lit, sample.person), mask


def refinement_agreement(
    sample: TryOnSample, outputs: dict[str, np.ndarray], index: int = 0
) -> float:
    """How well the generator's refined garment keeps the fitted garment's pattern: SSIM
    between the two over the pixels both cover (0 when they share none)."""
    return _refinement(sample, outputs, index)[2]


def _fitted_mask(sample: TryOnSample) -> np.ndarray:
    return one_piece(sample.garment_mask > 127, _in_front(sample))


def _in_front(sample: TryOnSample) -> np.ndarray:
    if sample.in_front is None:
        return np.zeros(sample.garment_mask.shape, bool)
    return sample.in_front > 127


def _refinement(
    sample: TryOnSample, outputs: dict[str, np.ndarray], index: int
) -> tuple[np.ndarray, np.ndarray, float]:
    from drape.models.tryon.quality import masked_ssim

    coverage = np.asarray(outputs["warped_mask"][index, 0], np.float32)
    fitted = sample.garment_mask > 127
    near = cv2.dilate(fitted.astype(np.uint8), np.ones((2 * REFINE_MARGIN + 1,) * 2, np.uint8)) > 0
    in_front = _in_front(sample)
    mask = one_piece((coverage > 0.5) & near & ~in_front, in_front)
    # The warped garment is premultiplied by its coverage; [-1, 1] -> colours.
    warped = np.asarray(outputs["warped"][index], np.float32).transpose(1, 2, 0)
    colour = ((warped / np.maximum(coverage, 1e-3)[..., None] + 1) * 127.5).clip(0, 255)
    colour = colour.round().astype(np.uint8)
    both = mask & fitted
    agreement = masked_ssim(colour, sample.garment, both) if both.sum() >= 64 else 0.0
    return colour, mask, agreement
