"""MediaPipe person analysis on real photos: statuses, not exceptions, for unusable ones."""

from __future__ import annotations

import numpy as np

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


def test_several_persons(analyzer, astronaut):
    result = analyzer.analyze(np.concatenate([astronaut, astronaut], axis=1))
    assert result.status is PersonStatus.MULTIPLE_PERSONS
    assert "2 faces" in result.reason


def test_a_face_without_shoulders_is_a_cropped_body(analyzer, astronaut):
    result = analyzer.analyze(np.ascontiguousarray(astronaut[:200, 130:330]))
    assert result.status is PersonStatus.CROPPED_BODY
    assert "shoulder" in result.reason


def test_blank_images_are_no_person(analyzer):
    assert analyzer.analyze(np.full((256, 256, 3), 255, np.uint8)).status is PersonStatus.NO_PERSON
