"""Contrastive fine-tuning of the encoder on catalog images.

Two augmented views of every image in a batch (random resized crop that keeps the aspect
ratio, flip, small rotation, colour jitter, occasional greyscale) are pulled together:
with category labels, by the supervised contrastive loss (Khosla et al., "Supervised
Contrastive Learning", NeurIPS 2020), which also pulls together garments of the same
category; without labels, by NT-Xent (Chen et al., "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020).

Only the top of the backbone (the last ``train_blocks`` MBConv blocks and the head
convolution) and the projection are trained; the frozen stem runs without gradients,
which keeps an epoch on a 2-core CPU in minutes. Checkpoints are safetensors written
atomically every epoch, with the optimiser state beside them, so a run resumes where it
stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from drape.models.encoder import EncoderSpec, GarmentEncoder, load_encoder
from drape.models.images import letterbox

FINAL_CHECKPOINT = "encoder.safetensors"


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    temperature: float = 0.1
    train_blocks: int = 2
    seed: int = 0


def augment(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One random view of a product shot, letterboxed to ``size``."""
    height, width = rgb.shape[:2]
    scale = rng.uniform(0.65, 1.0)
    crop_h, crop_w = max(8, int(height * scale)), max(8, int(width * scale))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    view = rgb[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    angle = rng.normal(0, 6)
    centre = (view.shape[1] / 2, view.shape[0] / 2)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    view = cv2.warpAffine(
        np.ascontiguousarray(view), rotation, (view.shape[1], view.shape[0]),
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    pixels = view.astype(np.float32)
    pixels = pixels * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)  # contrast, brightness
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * rng.uniform(0.6, 1.4)  # saturation
    pixels = pixels * rng.uniform(0.9, 1.1, size=3)  # colour cast
    if rng.random() < 0.2:
        pixels = np.repeat(pixels.mean(axis=2, keepdims=True), 3, axis=2)
    return letterbox(np.clip(pixels, 0, 255).astype(np.uint8), size)


def supervised_contrastive_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """SupCon over unit embeddings (2N, D): positives share a label (the other view of the
    same image always does). With all-distinct labels this is NT-Xent."""
    similarity = embeddings @ embeddings.T / temperature
    n = len(embeddings)
    self_mask = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    per_anchor = -(log_prob.masked_fill(~positives, 0.0)).sum(dim=1) / positives.sum(dim=1).clamp(
        min=1
    )
    return per_anchor.mean()


def trainable_parameters(encoder: GarmentEncoder, train_blocks: int) -> list[nn.Parameter]:
    """Freezes everything, then unfreezes the top ``train_blocks`` blocks, the head and the
    projection; returns what the optimiser updates."""
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    backbone = encoder.backbone
    modules: list[nn.Module] = [*backbone._blocks[len(backbone._blocks) - train_blocks :]]
    modules += [backbone._conv_head, backbone._bn1, encoder.projection]
    params = [p for m in modules for p in m.parameters()]
    for parameter in params:
        parameter.requires_grad_(True)
    return params


def _forward(encoder: GarmentEncoder, images: torch.Tensor, train_blocks: int) -> torch.Tensor:
    """The encoder's forward with the frozen bottom run without gradients."""
    backbone = encoder.backbone
    x = encoder.normalise(images)
    x = torch.cat([x.mean(dim=1, keepdim=True).expand_as(x), x])
    split = len(backbone._blocks) - train_blocks
    with torch.no_grad():
        x = backbone._swish(backbone._bn0(backbone._conv_stem(x)))
        for block in backbone._blocks[:split]:
            x = block(x)
    for block in backbone._blocks[split:]:
        x = block(x)
    x = backbone._swish(backbone._bn1(backbone._conv_head(x)))
    return encoder.head(x)


def _atomic_save(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def encoder_state(encoder: GarmentEncoder) -> dict[str, torch.Tensor]:
    """What a checkpoint holds: every weight but the ImageNet classifier."""
    return {
        k: v.contiguous()
        for k, v in encoder.state_dict().items()
        if not k.startswith("backbone._fc")
    }


def finetune(
    images: list[np.ndarray],
    labels: list[str] | None,
    out_dir: Path,
    spec: EncoderSpec,
    settings: FinetuneSettings,
    resume: bool = True,
    progress: Callable[[Iterable, str], Iterable] = lambda items, _desc: items,
) -> Path:
    """Fine-tunes on ``images`` (RGB product shots) and writes ``out_dir/encoder.safetensors``.

    ``labels`` (categories) select the supervised loss; None uses NT-Xent. With ``resume``,
    a run continues from the last completed epoch in ``out_dir``.
    """
    if len(images) < 2:
        raise ValueError("fine-tuning needs at least 2 images")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    state_path = out_dir / "state.json"
    start_epoch = 0
    checkpoint = None
    if resume and state_path.exists():
        saved = json.loads(state_path.read_text())
        if saved["settings"] != asdict(settings) or saved["spec"] != asdict(spec):
            raise ValueError(
                f"{out_dir} holds a run with other settings; use a new folder or --no-resume"
            )
        start_epoch = saved["epoch"]
        checkpoint = out_dir / saved["checkpoint"]
    encoder = load_encoder(spec, checkpoint)
    params = trainable_parameters(encoder, settings.train_blocks)
    optimiser = torch.optim.AdamW(
        params, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    if checkpoint is not None and (out_dir / "optimiser.pt").exists():
        optimiser.load_state_dict(torch.load(out_dir / "optimiser.pt", weights_only=True))
    encoder.eval()  # batch-norm statistics stay the pretrained ones (small batches)
    names = sorted(set(labels)) if labels is not None else []
    label_ids = (
        np.array([names.index(x) for x in labels]) if labels is not None else np.arange(len(images))
    )
    for epoch in range(start_epoch, settings.epochs):
        rng = np.random.default_rng(settings.seed + epoch)
        order = rng.permutation(len(images))
        batches = [
            order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)
        ]
        batches = [b for b in batches if len(b) >= 2]
        losses = []
        for batch in progress(batches, f"epoch {epoch + 1}/{settings.epochs}"):
            views = [augment(images[i], spec.image_size, rng) for i in batch]
            views += [augment(images[i], spec.image_size, rng) for i in batch]
            embeddings = _forward(encoder, torch.from_numpy(np.stack(views)), settings.train_blocks)
            batch_labels = torch.from_numpy(np.concatenate([label_ids[batch], label_ids[batch]]))
            loss = supervised_contrastive_loss(embeddings, batch_labels, settings.temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        name = f"epoch-{epoch + 1:03d}.safetensors"
        _atomic_save(encoder_state(encoder), out_dir / name, {"epoch": str(epoch + 1)})
        torch.save(optimiser.state_dict(), out_dir / "optimiser.pt")
        state = {
            "epoch": epoch + 1,
            "checkpoint": name,
            "loss": float(np.mean(losses)) if losses else None,
            "settings": asdict(settings),
            "spec": asdict(spec),
        }
        state_path.write_text(json.dumps(state, indent=2))
    final = out_dir / FINAL_CHECKPOINT
    _atomic_save(encoder_state(encoder), final, {"epochs": str(settings.epochs)})
    return final
