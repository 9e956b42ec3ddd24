"""The encoder runs the real, checksum-verified ImageNet weights; its export reproduces it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from drape.models.encoder import (
    EncoderSpec,
    GarmentEncoder,
    WeightsMismatch,
    load_encoder,
    pretrained_weights_path,
)
from drape.models.export import EXPORT_TOLERANCE, export_encoder_onnx, write_triton_repository
from drape.models.images import letterbox
from drape.models.runners import OnnxEncoder, TorchEncoder

EGYPTIAN_CAT, TABBY, TIGER_CAT, ESPRESSO = 285, 281, 282, 967


@pytest.fixture(scope="module")
def encoder() -> GarmentEncoder:
    return load_encoder()


def _batch(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([letterbox(image, 224) for image in images]))


def test_the_imagenet_head_recognises_real_photos(encoder: GarmentEncoder):
    from skimage import data

    with torch.inference_mode():
        probabilities = encoder.classify(_batch(data.chelsea(), data.coffee())).softmax(dim=1)
    top = probabilities.argmax(dim=1).tolist()
    assert top[0] in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert top[1] == ESPRESSO
    assert probabilities[0, EGYPTIAN_CAT] > 0.5 and probabilities[1, ESPRESSO] > 0.5


def test_a_tampered_weight_file_is_refused(tmp_path: Path):
    tampered = tmp_path / "weights.pth"
    shutil.copy(pretrained_weights_path(), tampered)
    with open(tampered, "r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsMismatch, match="SHA-256"):
        load_encoder(weights_path=tampered)


def test_embeddings_are_unit_length_with_the_configured_dimension():
    from skimage import data

    encoder = load_encoder(EncoderSpec(embedding_dim=128))
    with torch.inference_mode():
        embeddings = encoder(_batch(data.chelsea(), data.coffee(), data.astronaut()))
    assert embeddings.shape == (3, 128)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    # Different photos, different embeddings; the same photo, the same embedding.
    assert float(embeddings[0] @ embeddings[1]) < 0.95
    with torch.inference_mode():
        again = encoder(_batch(data.chelsea()))
    assert torch.allclose(again[0], embeddings[0], atol=1e-5)


def test_the_onnx_export_matches_the_eager_model(tmp_path: Path):
    from skimage import data

    spec = EncoderSpec()
    path = export_encoder_onnx(spec, None, tmp_path / "encoder.onnx")
    images = _batch(data.chelsea(), data.coffee(), data.astronaut()).numpy()
    fast = OnnxEncoder(spec, models_dir=tmp_path).embed(images)
    reference = TorchEncoder(spec).embed(images)
    assert path.exists()
    assert np.abs(fast - reference).max() <= EXPORT_TOLERANCE


def test_the_triton_repository_has_config_and_model(tmp_path: Path):
    model_dir = write_triton_repository(EncoderSpec(), None, tmp_path / "repo", max_batch=16)
    config = (model_dir / "config.pbtxt").read_text()
    assert (model_dir / "1" / "model.onnx").stat().st_size > 1_000_000
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 16" in config
    assert "dynamic_batching" in config and "KIND_GPU" in config


def test_runners_refuse_batches_of_the_wrong_shape(tmp_path: Path):
    runner = OnnxEncoder(models_dir=tmp_path)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        runner.embed(np.zeros((2, 100, 100, 3), np.uint8))
    assert runner.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 256)
