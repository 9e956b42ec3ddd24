"""Losses of the try-on GAN: adversarial (least squares, Mao et al. 2017), L1, feature
matching over the discriminators' layers (pix2pixHD), perceptual distance in the pretrained
EfficientNet-Lite0 encoder's feature space (VGG weights do not ship offline; the encoder's
ImageNet features play the same role), a warp loss on the garment region, flow smoothness,
a composition-mask regulariser that prefers the warped garment's own pixels (CP-VTON), and
an SSIM loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from drape.models.encoder import INPUT_MEAN, INPUT_STD, load_encoder
from drape.models.tryon.metrics import ssim_map

# Blocks of EfficientNet-Lite0 whose outputs are compared (strides 4, 8, 16).
PERCEPTUAL_BLOCKS = (2, 4, 9)


@dataclass(frozen=True)
class LossWeights:
    l1: float = 10.0
    perceptual: float = 0.2
    adversarial: float = 1.0
    feature_matching: float = 5.0
    warp: float = 5.0
    flow_smoothness: float = 1.0
    mask: float = 0.5
    # 1 - SSIM (Zhao et al., "Loss functions for image restoration", 2017: L1 with SSIM
    # beats either alone); off by default, the fine-tuning recipe turns it on.
    ssim: float = 0.0


class PerceptualDistance(nn.Module):
    """Mean L1 distance between frozen encoder features of two images in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        backbone = load_encoder().backbone
        self.stem = nn.Sequential(backbone._conv_stem, backbone._bn0, backbone._swish)
        self.blocks = backbone._blocks[: max(PERCEPTUAL_BLOCKS) + 1]
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualDistance:
        return super().train(False)  # batch-norm statistics stay ImageNet's

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) * 127.5 - INPUT_MEAN) / INPUT_STD
        x = self.stem(x)
        out = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in PERCEPTUAL_BLOCKS:
                out.append(x)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sum(F.l1_loss(x, y) for x, y in zip(self.features(a), self.features(b), strict=True))


def ssim_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM of images in [-1, 1], computed in fp32 even under autocast (variances
    of small windows lose too much in fp16)."""
    with torch.autocast(fake.device.type, enabled=False):
        return 1 - ssim_map((fake.float() + 1) / 2, (target.float() + 1) / 2).mean()


def lsgan(outputs: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    target = 1.0 if real else 0.0
    return sum(
        F.mse_loss(scale[-1], torch.full_like(scale[-1], target)) for scale in outputs
    ) / len(outputs)


def feature_matching(
    fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]
) -> torch.Tensor:
    total = torch.zeros(())
    count = 0
    for fake_scale, real_scale in zip(fake, real, strict=True):
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
            count += 1
    return total / max(count, 1)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (
        x[..., :, 1:] - x[..., :, :-1]
    ).abs().mean()
