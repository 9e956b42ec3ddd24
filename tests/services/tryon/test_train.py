"""`drape train tryon`: a tiny run through the CLI, resume, data-loading workers and bad
configs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from models.tryon.networks import TryOnSpec
from models.tryon.training import TrainSettings
from services.cli import main
from services.train_tryon import ANALYSES_FILE, MemoAnalyzer, RealPairs, TrainBatches, batches
from tests.models.test_tryon_serving import TINY_CONFIG


def _config(tmp_path: Path, steps: int, workers: int) -> Path:
    path = tmp_path / f"tiny-{steps}-{workers}.toml"
    path.write_text(TINY_CONFIG.replace("STEPS", str(steps)) + f"workers = {workers}\n")
    return path


def _steps(log: Path) -> list[int]:
    with open(log) as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def _train(tmp_path: Path, out: Path, steps: int, workers: int) -> int:
    return main(["train", "tryon", "--config", str(_config(tmp_path, steps, workers)),
                 "--out", str(out)])  # fmt: skip


def test_train_runs_resumes_and_memoises_person_analysis(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(tmp_path, out, steps=2, workers=0) == 0
    assert (out / "generator.safetensors").stat().st_size > 0
    assert (out / "samples" / "step-000002.png").exists()
    assert _steps(out / "log.csv") == [1, 2]
    memo = MemoAnalyzer(out / ANALYSES_FILE)
    assert memo._memo, "the bundled photos' analyses are kept beside the run"

    # Same settings, more steps, two data-loading workers: resumes at step 2, appends to the log.
    assert _train(tmp_path, out, steps=4, workers=2) == 0
    assert _steps(out / "log.csv") == [1, 2, 3, 4]
    assert (out / "samples" / "step-000004.png").exists()


def test_workers_build_the_same_batches_as_the_main_process(tmp_path: Path) -> None:
    spec = TryOnSpec(height=64, width=48, base_channels=8, flow_channels=4, depth=3)
    settings = TrainSettings(spec=spec, batch_size=4)
    train = {"photos": "bundled", "viton": ""}
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
    assert again.analyze(photo).status == analysis.status
    assert again._analyzer is None, "answered from the file, MediaPipe never loaded"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nsteps = 2\nbatchsize = 4\n", "unknown [train] settings ['batchsize']"),
        ("[spec]\nheight = 64\ncolour = 3\n", "colour"),
        ("[train\n", "Expected"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["train", "tryon", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
