"""Garment masks and landmarks (on the generated garment set), and embeddings that group
garments by category."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drape.models.garments import garment_keypoints, product_mask, worn_garment
from drape.models.images import letterbox
from drape.models.metrics import knn_accuracy
from drape.models.runners import OnnxEncoder
from drape.synthetic.garments import garment_set
from drape.synthetic.vocabulary import COLOURS, PATTERNS


@pytest.fixture(scope="module")
def shots():
    return garment_set(per_combination=1, seed=11)


def test_product_masks_match_the_drawn_garments(shots):
    ious = []
    for shot in shots:
        found, truth = product_mask(shot.image) > 0, shot.mask > 0
        ious.append((found & truth).sum() / (found | truth).sum())
    assert np.mean(ious) > 0.97 and np.min(ious) > 0.9


def test_keypoints_are_where_a_garment_has_them(shots):
    for shot in shots[:: len(COLOURS) * len(PATTERNS)]:  # one per category
        points = garment_keypoints(shot.mask)
        collar, l_sh, r_sh, l_hem, r_hem = points.as_array()
        assert l_sh[0] < collar[0] < r_sh[0], shot.category
        assert l_hem[0] < r_hem[0], shot.category
        assert min(l_hem[1], r_hem[1]) > max(l_sh[1], r_sh[1]), shot.category
        for x, y in points.as_array():
            assert shot.mask[min(int(y), 255), min(int(x), 255)] > 0 or shot.category == "t-shirt"
    with pytest.raises(ValueError, match="empty"):
        garment_keypoints(np.zeros((64, 64), np.uint8))


def test_the_worn_garment_is_cut_onto_white(analyzer, astronaut):
    analysis = analyzer.analyze(astronaut)
    garment = worn_garment(astronaut, analysis)
    assert garment.shape[0] > 100 and garment.shape[1] > 100
    white = (garment == 255).all(axis=2).mean()
    assert 0.05 < white < 0.8
    unusable = analyzer.analyze(np.full((128, 128, 3), 255, np.uint8))
    with pytest.raises(ValueError, match="no usable upper body"):
        worn_garment(np.full((128, 128, 3), 255, np.uint8), unusable)


def test_knn_accuracy_counts_majority_votes():
    points = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1], [0.1, 0.9], [0.05, 0.95]])
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    assert knn_accuracy(points, labels, k=2) == 1.0
    # Labels that disagree with the geometry score zero.
    assert knn_accuracy(points, np.array(["a", "b", "c", "d", "e", "f"]), k=2) == 0.0
    with pytest.raises(ValueError, match="more than k"):
        knn_accuracy(points[:2], labels[:2], k=5)


def test_pretrained_embeddings_group_garments_by_category(shots, tmp_path: Path):
    images = np.stack([letterbox(s.image, 224) for s in shots])
    labels = np.array([s.category for s in shots])
    accuracy = knn_accuracy(OnnxEncoder(models_dir=tmp_path).embed(images), labels)
    # Chance is 1/8; `drape bench features` reports the figure on a larger set.
    assert accuracy >= 0.85
