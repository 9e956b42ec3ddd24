"""MediaPipe person analysis on real photos: statuses, not exceptions, for unusable ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from drape.models.person import AGNOSTIC_GREY, PersonStatus


def test_a_single_upright_person_is_analysed(analyzer, astronaut):
    result = analyzer.analyze(astronaut)
    assert result.status is PersonStatus.OK, result.reason
    assert result.keypoints.shape == (33, 4)
    assert result.face_box is not None and result.upper_body_box is not None
    x0, y0, x1, y1 = result.face_box
    face_centre_y = (y0 + y1) / 2
    # The garment region lies below the face and never covers it.
    assert result.upper_body_box[1] > face_centre_y
    h, w = astronaut.shape[:2]
    face = result.upper_body_mask[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
    assert face.max() == 0
    # It is part of the person and a sizeable part of the photo.
    assert (result.upper_body_mask > 0).mean() > 0.1
    assert ((result.upper_body_mask > 0) & (result.person_mask == 0)).mean() < 0.02
    # The agnostic person greys out exactly the garment region (grown), keeps the face.
    grey = (result.agnostic == AGNOSTIC_GREY).all(axis=2)
    assert grey[result.upper_body_mask > 0].all()
    assert np.array_equal(
        result.agnostic[int(y0 * h) : int(y1 * h)], astronaut[int(y0 * h) : int(y1 * h)]
    )


def test_a_portrait_cut_at_the_chest_is_still_usable(analyzer, grace_hopper):
    result = analyzer.analyze(grace_hopper)
    assert result.status is PersonStatus.OK, result.reason


def test_no_person(analyzer):
    from skimage import data

    result = analyzer.analyze(data.chelsea())
    assert result.status is PersonStatus.NO_PERSON
    assert result.upper_body_mask is None and "no person" in result.reason


def test_a_side_opencv_would_abort_on_is_refused_not_fatal(analyzer):
    # OpenCV inside MediaPipe terminates the process on a side of 32,767 pixels or more.
    with pytest.raises(ValueError, match="MediaPipe takes sides under 32,767 pixels"):
        analyzer.analyze(np.zeros((40_000, 16, 3), np.uint8))


def test_several_persons(analyzer, astronaut):
    result = analyzer.analyze(np.concatenate([astronaut, astronaut], axis=1))
    assert result.status is PersonStatus.MULTIPLE_PERSONS
    assert "2 faces" in result.reason


def test_a_face_over_a_body_pose_estimation_cannot_make_out_says_so(
    analyzer, astronaut, monkeypatch
):
    """BlazePose misses some people whose face BlazeFace finds (a forearm across a suit, two
    people overlapping): the reason says a face was found, not that nobody was."""
    monkeypatch.setattr(analyzer, "_keypoints", lambda rgb: None)
    result = analyzer.analyze(astronaut)
    assert result.status is PersonStatus.NO_PERSON
    assert "a face was found but not the body" in result.reason, result.reason
    assert result.face_box is not None
    from skimage import data

    assert analyzer.analyze(data.chelsea()).reason == "no person found in the photo"
    two = analyzer.analyze(np.concatenate([astronaut, astronaut], axis=1))
    assert two.status is PersonStatus.MULTIPLE_PERSONS  # faces count without a pose


def test_a_face_without_shoulders_is_a_cropped_body(analyzer, astronaut):
    result = analyzer.analyze(np.ascontiguousarray(astronaut[:200, 130:330]))
    assert result.status is PersonStatus.CROPPED_BODY
    assert "shoulder" in result.reason


def test_blank_images_are_no_person(analyzer):
    assert analyzer.analyze(np.full((256, 256, 3), 255, np.uint8)).status is PersonStatus.NO_PERSON


def _variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    """What storefronts send of one photo: mirrored, rescaled, tilted, lightly cropped and
    re-encoded."""
    from PIL import Image

    from drape.models.images import decode_image, encode_jpeg

    h, w = photo.shape[:2]
    image = Image.fromarray(photo)
    out = {"as is": photo, "mirrored": photo[:, ::-1]}
    for scale in (0.5, 2.0, 3.0):
        out[f"x{scale}"] = np.asarray(image.resize((int(w * scale), int(h * scale))))
    for angle in (-10, -5, 5, 10):
        out[f"turned {angle}"] = np.asarray(image.rotate(angle, fillcolor=(128, 128, 128)))
    out["cropped 5%"] = photo[int(h * 0.05) :, int(w * 0.05) : int(w * 0.95)]
    out["cropped left"] = photo[:, int(w * 0.1) :]
    for quality in (60, 75, 95):
        out[f"JPEG {quality}"] = decode_image(
            encode_jpeg(np.ascontiguousarray(photo), quality)
        ).pixels
    return out


def test_single_frontal_people_are_found_across_what_storefronts_send(
    analyzer, astronaut, grace_hopper
):
    outcomes = {}
    for name, photo in {"astronaut": astronaut, "Grace Hopper": grace_hopper}.items():
        for variant, pixels in _variants(photo).items():
            outcomes[f"{name}, {variant}"] = analyzer.analyze(np.ascontiguousarray(pixels))
    failed = {k: f"{r.status.value}: {r.reason}" for k, r in outcomes.items() if not r.ok}
    assert len(failed) / len(outcomes) <= 0.05, failed


def test_a_man_in_profile_is_told_to_face_the_camera_whatever_the_variant(analyzer):
    """The cameraman is in no training set. BlazePose alone missed him tilted 5 degrees and
    in tight crops (its detector expects a whole body), which the canvas retries recover;
    his shoulders are turned about 60 degrees from the camera, which the try-on cannot
    dress, and the reason says so."""
    from skimage import data

    cameraman = np.stack([data.camera()] * 3, axis=-1)
    outcomes = {
        v: analyzer.analyze(np.ascontiguousarray(p)) for v, p in _variants(cameraman).items()
    }
    sideways = [r for r in outcomes.values() if r.status is PersonStatus.FACING_SIDEWAYS]
    others = {k: f"{r.status.value}: {r.reason}" for k, r in outcomes.items()
              if r.status is not PersonStatus.FACING_SIDEWAYS}  # fmt: skip
    assert len(sideways) / len(outcomes) >= 0.95, others
    assert all("face the camera" in r.reason for r in sideways)
    tilted = analyzer.analyze(
        np.asarray(Image.fromarray(cameraman).rotate(-5, fillcolor=(128,) * 3))
    )
    assert tilted.status is PersonStatus.FACING_SIDEWAYS
    assert tilted.keypoints[:, :2].min() > -0.5, "landmarks mapped back to the photo"


def _keypoints(points: dict[int, tuple[float, float]], depth: dict[int, float] | None = None):
    keypoints = np.zeros((33, 4), np.float32)
    keypoints[:, 3] = 1.0
    for index, (x, y) in points.items():
        keypoints[index, :2] = (x, y)
    for index, z in (depth or {}).items():
        keypoints[index, 2] = z
    return keypoints


FRONTAL = {11: (0.65, 0.3), 12: (0.35, 0.3), 23: (0.6, 0.75), 24: (0.4, 0.75),
           13: (0.7, 0.5), 14: (0.3, 0.5), 15: (0.72, 0.7), 16: (0.28, 0.7)}  # fmt: skip


def test_pose_problems_are_told_apart_with_what_to_do():
    from drape.models.person import DEFAULT_THRESHOLDS, _pose_problem, shoulder_turn

    t = DEFAULT_THRESHOLDS
    assert _pose_problem(_keypoints(FRONTAL), 200, 200, t) is None
    # The same shoulders, one 0.4 deeper than the other: turned about 53 degrees.
    turned = _keypoints(FRONTAL, {11: 0.2, 12: -0.2})
    assert shoulder_turn(turned) > 45
    status, reason = _pose_problem(turned, 200, 200, t)
    assert status is PersonStatus.FACING_SIDEWAYS and "face the camera" in reason
    # Both forearms folded across the chest (one forearm across it is layered, not refused).
    one = _keypoints({**FRONTAL, 13: (0.66, 0.62), 15: (0.36, 0.42)})
    assert _pose_problem(one, 200, 200, t) is None
    crossed = _keypoints({**FRONTAL, 13: (0.66, 0.62), 14: (0.34, 0.62), 15: (0.36, 0.42),
                          16: (0.64, 0.42)})  # fmt: skip
    status, reason = _pose_problem(crossed, 200, 200, t)
    assert status is PersonStatus.TORSO_OCCLUDED and "arms at your sides" in reason
    # Forearms BlazePose does not see (low visibility) cover nothing.
    unseen = crossed.copy()
    unseen[[15, 16], 3] = 0.1
    assert _pose_problem(unseen, 200, 200, t) is None


def test_a_warmed_pool_has_one_analyzer_ready_and_makes_no_more_than_its_size(astronaut):
    # A service warms its pool before it says it is ready: the first call finds an analyzer
    # that has already run once, and warming never makes more analyzers than the pool's size.
    from drape.models.person import AnalyzerPool

    pool = AnalyzerPool(size=1)
    try:
        pool.warm()
        assert pool._idle.qsize() == 1 and pool._budget == 0
        pool.warm()  # nothing left to make
        assert pool._idle.qsize() == 1
        assert pool.analyze(astronaut).status is PersonStatus.OK
        assert pool._idle.qsize() == 1
    finally:
        pool.close()
