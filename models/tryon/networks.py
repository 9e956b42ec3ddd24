"""Networks of the try-on GAN.

The design follows the two-stage family of CP-VTON (Wang et al., ECCV 2018) and VITON-HD
(Choi et al., CVPR 2021), with the parser-free spirit of PF-AFN (Ge et al., CVPR 2021) and
the small footprint of DM-VTON (Nguyen-Ngoc et al., 2023):

1. *Warping*: a thin-plate spline from the garment's landmarks (collar, shoulders, hem) to
   the body's (neck, shoulders, hips) gives a coarse warp; a small U-Net predicts a residual
   flow on top of it (appearance flow, as in PF-AFN) from the agnostic person, the pose and
   the coarse warp.
2. *Generation*: a U-Net takes the clothing-agnostic person, the pose (keypoint heatmaps
   and, with ``TryOnSpec.limbs``, limb maps as OpenPose renders them) and the warped
   garment and outputs a rendered person and a composition mask; inside the greyed-out
   region the try-on is ``mask * warped + (1 - mask) * rendered`` (CP-VTON's try-on module),
   outside it the agnostic person's own pixels are kept exactly (face, hair, background).
3. *Discriminator*: multi-scale PatchGAN (pix2pixHD, Wang et al., CVPR 2018) on the image and
   its agnostic condition, with intermediate features for the feature-matching loss.

Everything here exports to ONNX (grid_sample, instance norm, nearest upsampling): the TPS is
solved outside from a handful of points and evaluated inside from its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from drape.models.person import AGNOSTIC_GREY

POSE_CHANNELS = 10
# Limbs as pairs of pose keypoints (nose, neck, shoulders, elbows, wrists, hips; see
# ``drape.models.tryon.synthetic.POSE_POINTS``), drawn as soft line maps like OpenPose's renderings
# that CP-VTON and VITON-HD condition on: a limb in front of the torso is then in the input.
LIMBS = ((0, 1), (2, 4), (4, 6), (3, 5), (5, 7), (2, 3), (2, 8), (3, 9), (8, 9))


@dataclass(frozen=True)
class TryOnSpec:
    height: int = 256
    width: int = 192
    base_channels: int = 32
    flow_channels: int = 16
    depth: int = 4
    # Largest refinement displacement, as a share of the image (grid units are [-1, 1]).
    max_flow: float = 0.1
    pose_sigma: float = 0.025
    # Limb maps as inputs besides the keypoint heatmaps (generators trained before they
    # existed have none; ``TryOnTrainer.init_generator`` can add them to such a generator).
    limbs: bool = False

    @property
    def pose_channels(self) -> int:
        return POSE_CHANNELS + (len(LIMBS) if self.limbs else 0)


DEFAULT_SPEC = TryOnSpec()


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(H*W, 2) pixel centres in [0, 1] (x, y)."""
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) / height
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def tps_sampling_grid(
    control: torch.Tensor, params: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Evaluates batched TPS (control (B, n, 2), params (B, n + 3, 2), normalised coordinates)
    on the pixel grid: (B, H, W, 2) in [-1, 1] for ``grid_sample``."""
    points = pixel_grid(height, width, control)  # (P, 2)
    n = control.shape[1]
    r2 = ((points[None, :, None, :] - control[:, None, :, :]) ** 2).sum(-1)  # (B, P, n)
    radial = r2 * torch.log(r2.clamp(min=1e-12))
    affine = torch.cat([torch.ones_like(points[:, :1]), points], dim=1)  # (P, 3)
    mapped = radial @ params[:, :n] + affine[None] @ params[:, n:]  # (B, P, 2)
    return (mapped * 2 - 1).reshape(-1, height, width, 2)


def _present(points: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, K): 1 for keypoints on the image, 0 for missing ones (given as outside it)."""
    return ((points >= -sigma) & (points <= 1 + sigma)).all(-1).to(points.dtype)


def _height_units(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Scales normalised (x, y) so that distances are in units of the image height."""
    return torch.tensor([width / height, 1.0], dtype=like.dtype, device=like.device)


def pose_heatmaps(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps (B, K, H, W) of keypoints (B, K, 2) in [0, 1]; a point outside the
    image (a missing keypoint) gives an empty map."""
    grid = pixel_grid(height, width, points)  # (P, 2)
    scale = _height_units(height, width, points)
    d2 = (((grid[None, None] - points[:, :, None]) * scale) ** 2).sum(-1)  # (B, K, P)
    maps = torch.exp(-d2 / (2 * sigma**2)) * _present(points, sigma)[..., None]
    return maps.reshape(points.shape[0], -1, height, width)


def limb_maps(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Soft line maps (B, len(LIMBS), H, W) of the limbs between keypoints (B, K, 2) in
    [0, 1]: exp(-d^2 / 2 sigma^2) of the distance to the segment (in units of the height);
    a limb with a missing end is empty."""
    grid = pixel_grid(height, width, points)  # (P, 2)
    scale = _height_units(height, width, points)
    first, second = [a for a, _ in LIMBS], [b for _, b in LIMBS]
    starts, ends = points[:, first] * scale, points[:, second] * scale  # (B, L, 2)
    along = ends - starts
    offsets = grid[None, None] * scale - starts[:, :, None]  # (B, L, P, 2)
    t = (offsets * along[:, :, None]).sum(-1) / (along * along).sum(-1, keepdim=True).clamp(
        min=1e-8
    )
    nearest = offsets - t.clamp(0, 1)[..., None] * along[:, :, None]
    d2 = (nearest * nearest).sum(-1)
    present = _present(points, sigma)
    present = present[:, first] * present[:, second]
    maps = torch.exp(-d2 / (2 * sigma**2)) * present[..., None]
    return maps.reshape(points.shape[0], len(LIMBS), height, width)


def hidden_region(agnostic: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): 1 where the clothing-agnostic person is the neutral grey fill."""
    grey = AGNOSTIC_GREY / 127.5 - 1
    return ((agnostic - grey).abs().amax(dim=1, keepdim=True) < 1.5 / 127.5).to(agnostic.dtype)


def _block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, 1),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, 1, 1),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.LeakyReLU(0.2, inplace=True),
    )


class UNet(nn.Module):
    """Encoder-decoder with skip connections; sizes must be divisible by 2**depth."""

    def __init__(self, in_ch: int, out_ch: int, base: int, depth: int) -> None:
        super().__init__()
        widths = [base * min(2**i, 8) for i in range(depth + 1)]
        self.stem = _block(in_ch, widths[0])
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1], stride=2) for i in range(depth))
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.out = nn.Conv2d(widths[0], out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = up(torch.cat([x, skips.pop()], dim=1))
        return self.out(x)


class TryOnGenerator(nn.Module):
    """Inputs: agnostic person and garment (B, 3, H, W) in [-1, 1], garment mask (B, 1, H, W)
    in [0, 1], pose keypoints (B, 10, 2), TPS control (B, 5, 2) and parameters (B, 8, 2).
    Outputs: try-on, rendered person, composition mask, warped garment and its mask."""

    def __init__(self, spec: TryOnSpec = DEFAULT_SPEC) -> None:
        super().__init__()
        factor = 2**spec.depth
        if spec.height % factor or spec.width % factor:
            raise ValueError(f"{spec.height}x{spec.width} must be divisible by {factor}")
        self.spec = spec
        inputs = 3 + spec.pose_channels + 3 + 1
        self.refiner = UNet(inputs, 2, spec.flow_channels, spec.depth)
        self.generator = UNet(inputs, 4, spec.base_channels, spec.depth)
        nn.init.zeros_(self.refiner.out.weight)  # start from the plain keypoint TPS
        nn.init.zeros_(self.refiner.out.bias)

    def forward(
        self,
        agnostic: torch.Tensor,
        garment: torch.Tensor,
        garment_mask: torch.Tensor,
        pose: torch.Tensor,
        tps_control: torch.Tensor,
        tps_params: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        h, w = self.spec.height, self.spec.width
        heatmaps = pose_heatmaps(pose, h, w, self.spec.pose_sigma)
        if self.spec.limbs:
            heatmaps = torch.cat([heatmaps, limb_maps(pose, h, w, self.spec.pose_sigma)], dim=1)
        grid = tps_sampling_grid(tps_control, tps_params, h, w)
        garment_rgba = torch.cat([garment, garment_mask], dim=1)
        coarse = F.grid_sample(
            garment_rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        flow = (
            torch.tanh(self.refiner(torch.cat([agnostic, heatmaps, coarse], dim=1)))
            * self.spec.max_flow
        )
        fine = F.grid_sample(
            garment_rgba,
            grid + flow.permute(0, 2, 3, 1),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        warped_mask = fine[:, 3:4]
        warped = fine[:, :3] * warped_mask
        out = self.generator(torch.cat([agnostic, heatmaps, warped, warped_mask], dim=1))
        rendered = torch.tanh(out[:, :3])
        mask = torch.sigmoid(out[:, 3:4]) * warped_mask
        composed = mask * warped + (1 - mask) * rendered
        # What the agnostic person still shows (face, hair, background, lower body) is known:
        # it is kept exactly, and only the greyed-out region is generated.
        hidden = hidden_region(agnostic)
        tryon = hidden * composed + (1 - hidden) * agnostic
        return {"tryon": tryon, "rendered": rendered, "mask": mask, "warped": warped,
                "warped_mask": warped_mask, "flow": flow, "hidden": hidden}  # fmt: skip


class PatchDiscriminator(nn.Module):
    """A PatchGAN (70x70 receptive field at full scale) that returns every layer's output."""

    def __init__(self, in_ch: int, base: int = 32, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_ch, base, 4, 2, 1), nn.LeakyReLU(0.2, True))
        ]
        width = base
        for i in range(1, layers + 1):
            nxt = base * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(width, nxt, 4, stride, 1),
                    nn.InstanceNorm2d(nxt, affine=True),
                    nn.LeakyReLU(0.2, True),
                )
            )
            width = nxt
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiScaleDiscriminator(nn.Module):
    """PatchGANs on the full image and on downsampled copies (pix2pixHD)."""

    def __init__(self, in_ch: int = 6, base: int = 32, scales: int = 2) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_ch, base) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, discriminator in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs
