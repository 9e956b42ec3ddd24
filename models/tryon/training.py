"""Training of the try-on GAN: one step of the generator and the discriminator, checkpoints
(safetensors for weights, the optimisers and every random generator's state beside them) that
resume bit-exactly, and batches from the synthetic pair generator."""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from drape.models.state import load_state, save_state
from drape.models.tryon.losses import (
    LossWeights,
    PerceptualDistance,
    feature_matching,
    lsgan,
    ssim_loss,
    total_variation,
)
from drape.models.tryon.networks import (
    LIMBS,
    POSE_CHANNELS,
    MultiScaleDiscriminator,
    TryOnGenerator,
    TryOnSpec,
)
from drape.models.tryon.sample import TryOnSample
from drape.models.tryon.synthetic import synthetic_pair

GENERATOR_FILE = "generator.safetensors"
# The trainer's optimiser, scaler and RNG state: trainer.json plus trainer.safetensors.
TRAINER_STATE = "trainer"


@dataclass(frozen=True)
class TrainSettings:
    spec: TryOnSpec = field(default_factory=TryOnSpec)
    weights: LossWeights = field(default_factory=LossWeights)
    batch_size: int = 8
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0


def to_tensors(samples: list[TryOnSample]) -> dict[str, torch.Tensor]:
    """A batch of samples as the generator's inputs (and the target)."""

    def images(name: str) -> torch.Tensor:
        stacked = np.stack([getattr(s, name) for s in samples])
        return torch.from_numpy(stacked).permute(0, 3, 1, 2).float() / 127.5 - 1

    def masks(name: str) -> torch.Tensor:
        return (
            torch.from_numpy(np.stack([getattr(s, name) for s in samples]))[:, None].float() / 255
        )

    return {
        "agnostic": images("agnostic"),
        "garment": images("garment"),
        "garment_mask": masks("garment_mask"),
        "pose": torch.from_numpy(np.stack([s.pose for s in samples])),
        "tps_control": torch.from_numpy(np.stack([s.tps_control for s in samples])),
        "tps_params": torch.from_numpy(np.stack([s.tps_params for s in samples])),
        "person": images("person"),
        "region": masks("region"),
    }


GENERATOR_INPUTS = ("agnostic", "garment", "garment_mask", "pose", "tps_control", "tps_params")


class SyntheticBatches:
    """Deterministic batches: batch ``i`` of seed ``s`` is always the same pairs."""

    def __init__(self, spec: TryOnSpec, batch_size: int, seed: int) -> None:
        self.spec, self.batch_size, self.seed = spec, batch_size, seed

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        pairs = [
            synthetic_pair(rng, self.spec.height, self.spec.width) for _ in range(self.batch_size)
        ]
        return to_tensors(pairs)


class TryOnTrainer:
    def __init__(self, settings: TrainSettings, device: str = "cpu") -> None:
        self.settings = settings
        self.device = torch.device(device)
        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        self.generator = TryOnGenerator(settings.spec).to(self.device)
        self.discriminator = MultiScaleDiscriminator().to(self.device)
        self.perceptual = PerceptualDistance().to(self.device)
        self.g_optimiser = torch.optim.Adam(
            self.generator.parameters(), settings.learning_rate, betas=settings.betas
        )
        self.d_optimiser = torch.optim.Adam(
            self.discriminator.parameters(), settings.learning_rate, betas=settings.betas
        )
        # Mixed precision only where it pays (CUDA); CPU trains in fp32.
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step_count = 0

    def set_learning_rate(self, rate: float) -> None:
        """Both optimisers' learning rate (a schedule sets it before each step)."""
        for optimiser in (self.g_optimiser, self.d_optimiser):
            for group in optimiser.param_groups:
                group["lr"] = rate

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator and one generator update; returns the losses."""
        w = self.settings.weights
        batch = {k: v.to(self.device) for k, v in batch.items()}
        target, condition, region = batch["person"], batch["agnostic"], batch["region"]
        with torch.autocast(self.device.type, enabled=self.amp):
            out = self.generator(*(batch[k] for k in GENERATOR_INPUTS))
            fake = out["tryon"]
            d_real = self.discriminator(torch.cat([target, condition], dim=1))
            d_fake = self.discriminator(torch.cat([fake.detach(), condition], dim=1))
            d_loss = 0.5 * (lsgan(d_real, True) + lsgan(d_fake, False))
        self.d_optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        self.scaler.step(self.d_optimiser)

        with torch.autocast(self.device.type, enabled=self.amp):
            g_fake = self.discriminator(torch.cat([fake, condition], dim=1))
            losses = {
                "l1": F.l1_loss(fake, target),
                "perceptual": self.perceptual(fake, target),
                "adversarial": lsgan(g_fake, True),
                "feature_matching": feature_matching(
                    g_fake, [[t.detach() for t in s] for s in d_real]
                ),
                "warp": F.l1_loss(out["warped"] * region, target * region),
                "flow_smoothness": total_variation(out["flow"]),
                "mask": ((1 - out["mask"]) * out["warped_mask"] * region).mean(),
            }
            if w.ssim:
                losses["ssim"] = ssim_loss(fake, target)
            g_loss = sum(getattr(w, name) * value for name, value in losses.items())
        self.g_optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(g_loss).backward()
        self.scaler.step(self.g_optimiser)
        self.scaler.update()
        self.step_count += 1
        report = {name: float(value.detach()) for name, value in losses.items()}
        report.update(d=float(d_loss.detach()), g=float(g_loss.detach()))
        return report

    # -- checkpoints ------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Writes the generator (safetensors, what serving loads), the discriminator and the
        optimiser/RNG state; the folder is replaced atomically."""
        from safetensors.torch import save_file

        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        save_file({k: v.contiguous() for k, v in self.generator.state_dict().items()}, staging / GENERATOR_FILE,
                  metadata={"spec": json.dumps(asdict(self.settings.spec))})  # fmt: skip
        save_file({k: v.contiguous() for k, v in self.discriminator.state_dict().items()},
                  staging / "discriminator.safetensors")  # fmt: skip
        # Optimiser, scaler and RNG state: safetensors plus JSON, never a pickle.
        save_state(
            {
                "g_optimiser": self.g_optimiser.state_dict(),
                "d_optimiser": self.d_optimiser.state_dict(),
                "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
                "step": self.step_count,
            },
            staging / TRAINER_STATE,
        )
        (staging / "settings.json").write_text(json.dumps(asdict(self.settings)))
        if directory.exists():
            retired = directory.with_name(f".{directory.name}-old")
            os.replace(directory, retired)
            os.replace(staging, directory)
            import shutil

            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, directory)

    def init_generator(self, path: Path) -> None:
        """Starts from a trained generator (fine-tuning: a fresh discriminator and optimisers).
        Its spec must be this run's, except that a generator without limb maps may start a run
        with them: the new input channels get zero weights, so training starts from exactly
        the trained generator's outputs."""
        spec, state = read_generator(path)
        wanted = self.settings.spec
        if spec != wanted and replace(spec, limbs=wanted.limbs) == wanted and wanted.limbs:
            state = with_limb_inputs(state, self.generator)
        elif spec != wanted:
            raise ValueError(f"{path} is a {spec} generator; this run trains {wanted}")
        self.generator.load_state_dict(state)

    def load(self, directory: Path) -> None:
        from safetensors.torch import load_file

        self.generator.load_state_dict(load_file(directory / GENERATOR_FILE))
        self.discriminator.load_state_dict(load_file(directory / "discriminator.safetensors"))
        state = load_state(directory / TRAINER_STATE)
        assert isinstance(state, dict)
        self.g_optimiser.load_state_dict(state["g_optimiser"])
        self.d_optimiser.load_state_dict(state["d_optimiser"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.step_count = state["step"]


def with_limb_inputs(
    state: dict[str, torch.Tensor], generator: TryOnGenerator
) -> dict[str, torch.Tensor]:
    """A limb-less generator's weights for ``generator`` (which has limb maps): both U-Nets'
    first convolutions get zero weights for the limb channels (after the keypoint heatmaps)."""
    at = 3 + POSE_CHANNELS
    state = dict(state)
    for name, target in generator.state_dict().items():
        old = state[name]
        if old.shape != target.shape:
            added = target.shape[1] - old.shape[1]
            if old.dim() != 4 or added != len(LIMBS):
                raise ValueError(f"{name}: {tuple(old.shape)} does not fit {tuple(target.shape)}")
            zeros = old.new_zeros(old.shape[0], added, *old.shape[2:])
            state[name] = torch.cat([old[:, :at], zeros, old[:, at:]], dim=1)
    return state


def read_generator(path: Path) -> tuple[TryOnSpec, dict[str, torch.Tensor]]:
    """A generator's spec (from the safetensors metadata) and weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        spec = TryOnSpec(**json.loads(handle.metadata()["spec"]))
    return spec, load_file(str(path))


def load_generator(path: Path) -> TryOnGenerator:
    """A trained generator from its safetensors file (the spec is in the file's metadata)."""
    spec, state = read_generator(path)
    generator = TryOnGenerator(spec)
    generator.load_state_dict(state)
    return generator.eval()
