"""Splicing a try-on into the original photo: the face and background are the original's,
the garment comes from the GAN, and the seam is blended."""

from __future__ import annotations

import numpy as np
import pytest

from drape.models.splice import Blend, changed_region, compose, preservation
from drape.models.tryon.inference import generate, person_inputs
from drape.models.tryon.metrics import ssim
from drape.models.tryon.training import load_generator
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.garments import render_garment


@pytest.fixture(scope="module")
def tryon(analyzer, astronaut):
    generator = load_generator(DrapeConfig().tryon_checkpoint())
    h, w = generator.spec.height, generator.spec.width
    analysis = analyzer.analyze(astronaut)
    shot = render_garment("t-shirt", "green", "striped", np.random.default_rng(2))
    sample, box = person_inputs(astronaut, analysis, shot.image, shot.mask, h, w)
    out = generate(generator, [sample])
    return out["tryon"][0], ((out["mask"][0] > 0.5) * 255).astype(np.uint8), box, analysis


@pytest.mark.parametrize("blend", list(Blend))
def test_the_original_is_kept_outside_the_garment(astronaut, tryon, blend):
    rendered, garment_mask, box, analysis = tryon
    result = compose(astronaut, rendered, garment_mask, box, blend)
    assert result.shape == astronaut.shape and result.dtype == np.uint8
    # The garment region changed ...
    top, left, bottom, right = box
    import cv2

    garment = cv2.resize(garment_mask, (right - left, bottom - top)) > 127
    region = np.zeros(astronaut.shape[:2], bool)
    region[top:bottom, left:right] = garment
    assert np.abs(result[region].astype(int) - astronaut[region]).mean() > 10
    # ... and the background and the face did not.
    far = ~cv2.dilate(region.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert np.abs(result[far].astype(int) - astronaut[far]).mean() <= 2
    x0, y0, x1, y1 = analysis.face_box
    h, w = astronaut.shape[:2]
    face = (slice(int(y0 * h), int(y1 * h)), slice(int(x0 * w), int(x1 * w)))
    assert np.abs(result[face].astype(int) - astronaut[face]).mean() <= 2
    assert ssim(result[face], astronaut[face]) >= 0.97


def test_bad_crops_are_refused_and_an_empty_mask_changes_nothing(astronaut, tryon):
    rendered, garment_mask, _, _ = tryon
    with pytest.raises(ValueError, match="not inside"):
        compose(astronaut, rendered, garment_mask, (0, 0, 600, 100))
    same = compose(astronaut, rendered, np.zeros_like(garment_mask), (0, 0, 512, 384))
    assert np.array_equal(same, astronaut)


def _face_px(analysis, shape) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = analysis.face_box
    h, w = shape[:2]
    return int(y0 * h), int(x0 * w), int(y1 * h), int(x1 * w)


@pytest.mark.parametrize("blend", list(Blend))
def test_preservation_reports_a_kept_face_and_background(astronaut, tryon, blend):
    rendered, garment_mask, box, analysis = tryon
    result = compose(astronaut, rendered, garment_mask, box, blend)
    changed = changed_region(astronaut.shape[:2], garment_mask, box)
    face_ssim, background = preservation(
        astronaut, result, changed, _face_px(analysis, astronaut.shape)
    )
    assert face_ssim >= 0.97 and background == 0.0


def test_preservation_reports_a_covered_face_and_a_changed_background(astronaut, tryon):
    rendered, garment_mask, box, analysis = tryon
    result = compose(astronaut, rendered, garment_mask, box)
    changed = changed_region(astronaut.shape[:2], garment_mask, box)
    top, left, bottom, right = face = _face_px(analysis, astronaut.shape)
    covered = result.copy()
    covered[top:bottom, left:right] = (40, 120, 60)  # a garment over the face
    assert preservation(astronaut, covered, changed, face)[0] < 0.5
    brighter = np.clip(result.astype(int) + 30, 0, 255).astype(np.uint8)
    assert preservation(astronaut, brighter, changed, face)[1] > 20
    assert preservation(astronaut, result, changed, None)[0] == 0.0, "no face, no face score"
