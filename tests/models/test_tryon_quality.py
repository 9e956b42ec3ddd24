"""The preview measures, each on a case made to pass it and a case made to fail it, and the
score on the shipped generator's held-out synthetic pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drape.models.tryon.quality import RAMPS, assess, measure

H, W = 128, 96


def _case() -> dict[str, np.ndarray]:
    """A red striped garment covering the whole body region, rendered exactly as warped."""
    region = np.zeros((H, W), bool)
    region[30:110, 20:76] = True
    product = np.full((H, W, 3), 255, np.uint8)
    product[20:110, 15:81] = (200, 30, 40)
    product[20:110:8, 15:81] = (250, 240, 240)  # stripes
    product_mask = np.zeros((H, W), bool)
    product_mask[20:110, 15:81] = True
    warped = product.copy()
    return {"rendered": warped.copy(), "garment_mask": region.copy(), "warped": warped,
            "region": region, "product": product, "product_mask": product_mask}  # fmt: skip


def _assessed(case: dict[str, np.ndarray]):
    return assess(measure(**case))


def test_a_faithful_rendering_passes_every_measure():
    result = _assessed(_case())
    m = result.measures
    assert m.coverage == pytest.approx(1.0) and m.connectedness == pytest.approx(1.0)
    assert m.colour_delta_e < 1 and m.pattern_ssim > 0.95 and m.sharpness > 0.95
    assert result.score == 1.0 and result.short == () and result.advice() == ""


def test_coverage_fails_when_little_of_the_body_is_covered():
    case = _case()
    case["garment_mask"][:] = False
    case["garment_mask"][30:50, 20:76] = True  # a quarter of the region
    result = _assessed(case)
    assert result.measures.coverage == pytest.approx(0.25)
    assert "coverage" in result.short and result.score == 0.0
    assert "facing the camera" in result.advice()


def test_connectedness_fails_for_detached_patches():
    case = _case()
    mask = case["garment_mask"]
    mask[:] = False
    mask[30:60, 20:76] = True
    mask[80:110, 20:76] = True  # two equal patches: the largest is half the garment
    result = _assessed(case)
    assert result.measures.connectedness == pytest.approx(0.5)
    assert "connectedness" in result.short


def test_a_garment_behind_an_arm_is_one_piece_and_the_arm_need_not_be_covered():
    case = _case()
    arm = np.zeros((H, W), bool)
    arm[60:80, :] = True  # a forearm across the body
    case["garment_mask"][arm] = False
    detached = _assessed(case).measures
    assert detached.connectedness == pytest.approx(0.5) and detached.coverage < 0.8
    behind = assess(measure(**case, in_front=arm)).measures
    assert behind.connectedness == pytest.approx(1.0) and behind.coverage == pytest.approx(1.0)


def test_colour_fails_when_the_rendered_garment_is_another_colour():
    case = _case()
    case["rendered"] = case["rendered"].copy()
    inside = case["garment_mask"]
    case["rendered"][inside] = case["rendered"][inside][:, ::-1]  # red becomes blue
    result = _assessed(case)
    assert result.measures.colour_delta_e > RAMPS["colour_delta_e"][0]
    assert "colour_delta_e" in result.short


def test_pattern_fails_when_the_stripes_blur_into_a_patch():
    case = _case()
    flat = case["rendered"].copy()
    flat[case["garment_mask"]] = case["rendered"][case["garment_mask"]].mean(axis=0)
    case["rendered"] = flat
    result = _assessed(case)
    assert result.measures.pattern_ssim < RAMPS["pattern_ssim"][0]
    assert result.measures.colour_delta_e < 10, "the colour itself is right"
    assert "pattern_ssim" in result.short


def test_sharpness_fails_for_a_blurred_rendering():
    case = _case()
    case["rendered"] = cv2.GaussianBlur(case["rendered"], (0, 0), 4)
    result = _assessed(case)
    assert result.measures.sharpness < RAMPS["sharpness"][0]
    assert "sharpness" in result.short


def test_no_garment_at_all_scores_zero():
    case = _case()
    case["garment_mask"][:] = False
    result = _assessed(case)
    assert result.score == 0.0 and result.measures.coverage == 0.0


def test_the_shipped_generator_scores_full_marks_on_held_out_synthetic_pairs():
    from drape.models.tryon.inference import run_generator
    from drape.models.tryon.quality import measure_outputs
    from drape.models.tryon.synthetic import synthetic_pair
    from drape.models.tryon.training import load_generator
    from drape.services.runtime.config import DrapeConfig

    generator = load_generator(DrapeConfig().tryon_checkpoint())
    spec = generator.spec
    samples = [synthetic_pair(np.random.default_rng([10_000, i]), spec.height, spec.width)
               for i in range(6)]  # fmt: skip
    out = run_generator(generator, samples)
    scores = [assess(measure_outputs(s, out, i)).score for i, s in enumerate(samples)]
    assert min(scores) >= 0.9
