"""Image-quality measures for try-on outputs: SSIM (Wang et al., 2004; 11x11 Gaussian
window, sigma 1.5, as skimage and most papers compute it), PSNR and the perceptual distance
in the pretrained encoder's feature space."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H - 10, W - 10) of images (B, C, H, W) in [0, 1], channel by
    channel; differentiable (the try-on GAN's SSIM loss is 1 - its mean)."""
    channels = x.shape[1]
    window = _gaussian_window().to(x).expand(channels, 1, 11, 11)
    c1, c2 = 0.01**2, 0.03**2

    def blur(t: torch.Tensor) -> torch.Tensor:
        # valid region only, like skimage with gaussian weights
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    n = window[0].numel()
    cov = n / (n - 1)  # sample covariance, as skimage uses
    sigma_x = (blur(x * x) - mu_x**2) * cov
    sigma_y = (blur(y * y) - mu_y**2) * cov
    sigma_xy = (blur(x * y) - mu_x * mu_y) * cov
    return ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    )


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 RGB images (H, W, 3), averaged over channels."""
    x = torch.from_numpy(a.astype(np.float64) / 255).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64) / 255).permute(2, 0, 1)[None]
    return float(ssim_map(x, y).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
