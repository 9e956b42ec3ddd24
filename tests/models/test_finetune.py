"""Contrastive fine-tuning: the loss, what is trained, checkpoints, resume, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from drape.models.encoder import EncoderSpec, load_encoder
from drape.models.finetune import (
    FINAL_CHECKPOINT,
    FinetuneSettings,
    augment,
    finetune,
    supervised_contrastive_loss,
    trainable_parameters,
)
from drape.synthetic.garments import garment_set


def test_supcon_rewards_grouped_labels_and_reduces_to_nt_xent():
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    centres = F.normalize(torch.randn(2, 16, generator=generator), dim=1)
    grouped = F.normalize(centres[labels] + 0.05 * torch.randn(8, 16, generator=generator), dim=1)
    scattered = F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    assert supervised_contrastive_loss(grouped, labels, 0.1) < supervised_contrastive_loss(
        scattered, labels, 0.1
    )
    # Distinct labels per image (two views each): NT-Xent, computed by hand.
    views = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    similarity = scattered @ scattered.T / 0.5
    similarity.fill_diagonal_(float("-inf"))
    partner = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3])
    expected = -(similarity[torch.arange(8), partner] - torch.logsumexp(similarity, dim=1)).mean()
    assert torch.allclose(supervised_contrastive_loss(scattered, views, 0.5), expected, atol=1e-6)


def test_only_the_top_of_the_network_is_trained():
    encoder = load_encoder()
    params = trainable_parameters(encoder, train_blocks=1)
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert any(name.startswith("projection") for name in trainable)
    assert any(name.startswith("backbone._conv_head") for name in trainable)
    last = len(encoder.backbone._blocks) - 1
    assert all(
        name.startswith(
            ("projection", "backbone._conv_head", "backbone._bn1", f"backbone._blocks.{last}.")
        )
        for name in trainable
    )
    assert len(params) == len(trainable)


def test_augmented_views_are_encoder_inputs():
    shot = garment_set(1, seed=0)[0]
    rng = np.random.default_rng(0)
    views = [augment(shot.image, 224, rng) for _ in range(3)]
    assert all(v.shape == (224, 224, 3) and v.dtype == np.uint8 for v in views)
    assert not np.array_equal(views[0], views[1])


def test_finetune_writes_checkpoints_and_resumes(tmp_path: Path):
    shots = garment_set(1, seed=4)[::50][:8]
    images, labels = [s.image for s in shots], [s.category for s in shots]
    spec = EncoderSpec(embedding_dim=64)
    settings = FinetuneSettings(epochs=1, batch_size=4, train_blocks=1, learning_rate=1e-3)
    stages: list[str] = []

    def progress(items, desc):
        stages.append(desc)
        return items

    final = finetune(images, labels, tmp_path, spec, settings, progress=progress)
    assert final.name == FINAL_CHECKPOINT and (tmp_path / "epoch-001.safetensors").exists()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 1 and state["loss"] > 0
    tuned, pretrained = load_encoder(spec, final), load_encoder(spec)
    assert not torch.equal(tuned.projection.weight, pretrained.projection.weight)
    assert torch.equal(tuned.backbone._conv_stem.weight, pretrained.backbone._conv_stem.weight)

    # Asking for two epochs in the same folder runs only the second one.
    with pytest.raises(ValueError, match="other settings"):
        finetune(
            images,
            labels,
            tmp_path,
            spec,
            FinetuneSettings(epochs=2, batch_size=4, train_blocks=1),
            progress=progress,
        )
    stages.clear()
    longer = FinetuneSettings(epochs=2, batch_size=4, train_blocks=1, learning_rate=1e-3)
    (tmp_path / "state.json").write_text(json.dumps({**state, "settings": longer.__dict__}))
    finetune(images, labels, tmp_path, spec, longer, progress=progress)
    assert stages == ["epoch 2/2"]
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2

    with pytest.raises(ValueError, match="at least 2 images"):
        finetune(images[:1], labels[:1], tmp_path / "x", spec, settings)


def test_the_cli_fine_tunes_and_reports_accuracy_before_and_after(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "drape.cli",
            "train",
            "encoder",
            "--generated",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--train-blocks",
            "1",
            "--out",
            str(tmp_path / "ft"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DRAPE_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kNN@5 category accuracy on held-out garments" in result.stdout
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    assert 0 < report["knn5_category_accuracy_before"] <= 1 and report["loss"] == "supcon"
    assert (tmp_path / "ft" / "encoder.safetensors").exists()
