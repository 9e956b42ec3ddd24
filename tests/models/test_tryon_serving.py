"""The try-on generator served by Triton agrees with torch; its repository export, the
evaluation metrics and the training/evaluation commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drape.cli.stack import Stack, ephemeral
from drape.models.runners import RunnerTimedOut
from drape.models.state import load_state
from drape.models.tryon.export import write_tryon_repository
from drape.models.tryon.metrics import psnr, ssim
from drape.models.tryon.runners import TorchTryOn, TritonTryOn
from drape.models.tryon.synthetic import synthetic_pair
from drape.models.tryon.training import (
    TRAINER_STATE,
    SyntheticBatches,
    TrainSettings,
    TryOnTrainer,
    to_tensors,
)
from drape.services.runtime.config import DrapeConfig
from tests.models.test_tryon import SMALL

TINY_RECIPE = """
[spec]
height = 64
width = 48
base_channels = 8
flow_channels = 4
depth = 3
limbs = true
[weights]
ssim = 2.0
[train]
batch_size = 2
steps = STEPS
lr_milestones = [3]
checkpoint_every = 2
sample_every = 2
real_share = 0.5
photos = "bundled"
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tryon")
    trainer = TryOnTrainer(TrainSettings(spec=SMALL, batch_size=2))
    data = SyntheticBatches(SMALL, 2, seed=1)
    for i in range(2):
        trainer.step(data.batch(i))
    trainer.save(root / "ckpt")
    return root / "ckpt" / "generator.safetensors"


def _inputs(count: int) -> dict[str, np.ndarray]:
    samples = [
        synthetic_pair(np.random.default_rng([5, i]), SMALL.height, SMALL.width)
        for i in range(count)
    ]
    return {name: tensor.numpy() for name, tensor in to_tensors(samples).items()}


def test_triton_serves_the_generator_like_torch(checkpoint: Path, tmp_path: Path):
    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    config.tryon.checkpoint = str(checkpoint)
    config.tryon.server.grace_s = 2
    inputs = _inputs(3)
    expected = TorchTryOn(checkpoint).run(inputs)
    with Stack(config, ["tryon"], run_dir=tmp_path / "run") as stack:
        triton = TritonTryOn(stack.address("triton"), max_batch=2)  # 3 images: two requests
        try:
            served = triton.run(inputs)
            # A call out of time is a late request, not a server that is down.
            with pytest.raises(RunnerTimedOut, match="did not answer tryon_gan within"):
                triton.run(inputs, timeout_s=1e-4)
        finally:
            triton.close()
    for name in ("tryon", "mask", "warped"):
        assert served[name].shape == expected[name].shape
        assert np.abs(served[name] - expected[name]).max() <= 1e-4, name


def test_the_repository_has_a_gpu_fp16_config(checkpoint: Path, tmp_path: Path):
    model_dir = write_tryon_repository(checkpoint, tmp_path / "repo", max_batch=16)
    config = (model_dir / "config.pbtxt").read_text()
    assert (model_dir / "1" / "model.onnx").exists()
    assert 'name: "tryon_gan"' in config and "max_batch_size: 16" in config
    assert "KIND_GPU" in config and '"FP16"' in config and "dynamic_batching" in config
    assert 'name: "tps_params" data_type: TYPE_FP32 dims: [8, 2]' in config
    cpu = (
        write_tryon_repository(checkpoint, tmp_path / "cpu", gpu=False) / "config.pbtxt"
    ).read_text()
    assert "KIND_CPU" in cpu and "tensorrt" not in cpu


def test_ssim_matches_scikit_image_and_psnr_is_standard():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    reference = structural_similarity(
        a,
        b,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=True,
        data_range=255,
    )
    assert abs(ssim(a, b) - reference) < 1e-9
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a) == float("inf")
    assert psnr(a, np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)) > 45


def _drape(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drape.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})  # fmt: skip


def test_train_then_evaluate_from_the_command_line(tmp_path: Path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RECIPE.replace("STEPS", "2"))
    result = _drape("train", "tryon", "--recipe", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,seconds,l1,") and ",ssim," in log[0] and len(log) == 3
    assert (tmp_path / "run" / "samples" / "step-000002.png").exists()
    # Two more steps resume from the checkpoint rather than starting over; a row a stopped
    # run logged after its checkpoint is replaced, not repeated.
    with open(tmp_path / "run" / "log.csv", "a") as handle:
        handle.write(log[-1].replace("2,", "3,", 1) + "\n")
    config.write_text(TINY_RECIPE.replace("STEPS", "4"))
    result = _drape("train", "tryon", "--recipe", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 0 and "resumed at step 2" in result.stdout
    steps = [row.split(",")[0] for row in (tmp_path / "run" / "log.csv").read_text().splitlines()]
    assert steps == ["step", "1", "2", "3", "4"]
    # The learning rate fell tenfold at the milestone (step 3): 2e-4 -> 2e-5.
    state = load_state(tmp_path / "run" / "checkpoint" / TRAINER_STATE)
    assert state["g_optimiser"]["param_groups"][0]["lr"] == pytest.approx(2e-5)

    out = tmp_path / "eval.json"
    result = _drape("eval", "tryon", "--checkpoint", str(tmp_path / "run" / "generator.safetensors"),
                    "--pairs", "4", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["synthetic"]) == {"naive paste", "untrained generator", "trained generator"}
    assert 0 < report["synthetic"]["naive paste"]["ssim"] < 1
    assert report["photos"]["summary"]["photos"] == 2  # the bundled person photos
    assert {"coverage", "connectedness", "colour_delta_e"} <= set(report["photos"]["previews"][0])
    assert list((tmp_path / "eval-tryon-photos").glob("*.png"))


def test_bad_recipes_are_refused_from_the_command_line(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[weights]\nssmi = 1.0\n")
    result = _drape("train", "tryon", "--recipe", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "[weights] ssmi: Unexpected keyword" in result.stderr
    config.write_text("[train]\nlr_milestones = 1000\n")
    result = _drape("train", "tryon", "--recipe", str(config), "--out", str(tmp_path / "run"))
    assert (
        result.returncode == 2
        and "[train] lr_milestones: Input should be a valid list" in result.stderr
    )
    result = _drape("eval", "tryon", "--checkpoint", str(tmp_path / "none.safetensors"))
    assert result.returncode == 2 and "no generator" in result.stderr
