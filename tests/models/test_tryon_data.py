"""Try-on training data: batches are a pure function of the step, whichever process builds
them, and person analyses are memoised beside the run."""

from __future__ import annotations

from pathlib import Path

import torch

from drape.models.tryon.data import ANALYSES_FILE, MemoAnalyzer, RealPairs, TrainBatches, batches
from drape.models.tryon.networks import TryOnSpec
from drape.models.tryon.recipe import TrainSection
from drape.models.tryon.training import TrainSettings


def test_workers_build_the_same_batches_as_the_main_process(tmp_path: Path) -> None:
    spec = TryOnSpec(height=64, width=48, base_channels=8, flow_channels=4, depth=3)
    settings = TrainSettings(spec=spec, batch_size=4)
    train = TrainSection(photos="bundled")
    real = RealPairs(train, spec, tmp_path)
    dataset = TrainBatches(settings, real, real_share=0.5)
    try:
        here = list(batches(dataset, range(3, 6), workers=0))
        spawned = list(batches(dataset, range(3, 6), workers=2))
    finally:
        real.close()
    assert len(here) == len(spawned) == 3
    for a, b in zip(here, spawned, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name
    # Different steps are different batches.
    assert not torch.equal(here[0]["person"], here[1]["person"])


def test_a_memoised_analysis_needs_no_mediapipe(tmp_path: Path) -> None:
    import numpy as np
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:256, 64:256])
    first = MemoAnalyzer(tmp_path / ANALYSES_FILE)
    analysis = first.analyze(photo)
    first.close()
    again = MemoAnalyzer(tmp_path / ANALYSES_FILE)
    stored = again.analyze(photo)
    assert again._analyzer is None, "answered from the file, MediaPipe never loaded"
    # Everything comes back as it was analysed (an .npz and JSON: no pickle).
    assert (stored.status, stored.reason, stored.width, stored.height, stored.face_box, stored.upper_body_box) == (
        analysis.status, analysis.reason, analysis.width, analysis.height, analysis.face_box,
        analysis.upper_body_box)  # fmt: skip
    for name in ("keypoints", "person_mask", "upper_body_mask", "agnostic"):
        a, b = getattr(stored, name), getattr(analysis, name)
        assert (a is None and b is None) or np.array_equal(a, b), name
