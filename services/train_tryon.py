"""`drape train tryon --config F --out DIR`: trains the try-on GAN on synthetic pairs mixed
with real ones (self-supervised person photos, or VITON-HD pairs), with checkpoints every N
steps, resume, PNG sample grids and a CSV log."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import pickle
import shutil
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from models.tryon.losses import LossWeights
from models.tryon.networks import TryOnSpec
from models.tryon.training import (
    GENERATOR_FILE,
    TrainSettings,
    TryOnTrainer,
    to_tensors,
)

TRAIN_KEYS = {"batch_size", "steps", "learning_rate", "seed", "checkpoint_every", "sample_every",
              "real_share", "photos", "viton", "workers", "init", "lr_milestones", "lr_gamma"}  # fmt: skip
ANALYSES_FILE = "person-analyses.pkl"


def read_config(path: Path) -> tuple[TrainSettings, dict]:
    data = tomllib.loads(path.read_text())
    unknown = set(data.get("train", {})) - TRAIN_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown [train] settings {sorted(unknown)}")
    unknown = set(data.get("weights", {})) - {f.name for f in fields(LossWeights)}
    if unknown:
        raise ValueError(f"{path}: unknown [weights] {sorted(unknown)}")
    spec = TryOnSpec(**data.get("spec", {}))
    train = {"steps": 1000, "checkpoint_every": 100, "sample_every": 200, "real_share": 0.0,
             "photos": "", "viton": "", "workers": 0, "init": "", "lr_milestones": [],
             "lr_gamma": 0.1, **data.get("train", {})}  # fmt: skip
    milestones = train["lr_milestones"]
    if not isinstance(milestones, list) or not all(
        isinstance(m, int) and m > 0 for m in milestones
    ):
        raise ValueError(f"{path}: lr_milestones must be a list of positive step numbers")
    settings = TrainSettings(
        spec=spec, batch_size=int(train.get("batch_size", 8)),
        weights=LossWeights(**{k: float(v) for k, v in data.get("weights", {}).items()}),
        learning_rate=float(train.get("learning_rate", 2e-4)), seed=int(train.get("seed", 0)),
    )  # fmt: skip
    return settings, train


def bundled_photos() -> list[np.ndarray]:
    """Real person photos that ship inside installed packages."""
    from matplotlib import cbook
    from PIL import Image

    photos = []
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(np.asarray(Image.open(handle).convert("RGB")))
    try:
        from skimage import data

        photos.append(data.astronaut())
    except ImportError:
        pass
    return photos


class MemoAnalyzer:
    """Person analysis memoised by the pixels analysed, kept in a file beside the run.

    Self-supervised pairs analyse the same few crops (each photo, mirrored or not) over and
    over; the memo turns that into one MediaPipe call per crop, and its file lets a run go on
    where MediaPipe is not installed. MediaPipe is loaded on the first miss only, so the memo
    pickles cleanly into data-loading workers."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._analyzer = None
        self._memo: dict[str, object] = {}
        if path is not None and path.exists():
            with open(path, "rb") as handle:
                self._memo = pickle.load(handle)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_analyzer": None}

    @staticmethod
    def key(rgb: np.ndarray) -> str:
        return f"{rgb.shape}:{hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()}"

    def analyze(self, rgb: np.ndarray):  # -> PersonAnalysis
        key = self.key(rgb)
        if key not in self._memo:
            if self._analyzer is None:
                from models.person import PersonAnalyzer

                self._analyzer = PersonAnalyzer()
            self._memo[key] = self._analyzer.analyze(rgb)
            if self.path is not None:
                staging = self.path.with_suffix(".tmp")
                with open(staging, "wb") as handle:
                    pickle.dump(self._memo, handle)
                os.replace(staging, self.path)
        return self._memo[key]

    def close(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
            self._analyzer = None


class RealPairs:
    """Self-supervised pairs from person photos, or VITON-HD pairs, drawn deterministically
    (pair ``i`` of a run is always built from the same photo and random draw)."""

    def __init__(self, train: dict, spec: TryOnSpec, run_dir: Path | None = None) -> None:
        from models.images import decode_image
        from models.tryon.photos import photo_folder, viton_pairs

        self.spec = spec
        self.viton = viton_pairs(Path(train["viton"])) if train["viton"] else []
        if train["photos"] == "bundled":
            self.photos = bundled_photos()
        elif train["photos"]:
            self.photos = [
                decode_image(p.read_bytes()).pixels for p in photo_folder(Path(train["photos"]))
            ]
        else:
            self.photos = []
        if not self.viton and not self.photos:
            raise ValueError("real_share > 0 needs `photos` or `viton` in the config")
        # VITON-HD photos are each analysed once an epoch: nothing to gain from a memo.
        memo = run_dir / ANALYSES_FILE if run_dir is not None and not self.viton else None
        self.analyzer = MemoAnalyzer(memo)

    def pair(self, index: int, seed: int):  # -> TryOnSample | None
        from models.tryon.photos import self_supervised_pair, viton_pair

        h, w = self.spec.height, self.spec.width
        if self.viton:
            return viton_pair(self.viton[index % len(self.viton)], self.analyzer, h, w)
        rng = np.random.default_rng([seed, 1, index])
        return self_supervised_pair(self.photos[index % len(self.photos)], self.analyzer, rng, h, w)

    def close(self) -> None:
        self.analyzer.close()


def _batch(step: int, settings: TrainSettings, real: RealPairs | None,
           real_share: float) -> dict[str, torch.Tensor]:  # fmt: skip
    from models.tryon.synthetic import synthetic_pair

    count = settings.batch_size
    n_real = round(count * real_share) if real else 0
    rng = np.random.default_rng([settings.seed, 0, step])
    h, w = settings.spec.height, settings.spec.width
    samples = []
    for i in range(n_real):
        sample = real.pair(step * count + i, settings.seed) if real else None
        if sample is not None:
            samples.append(sample)
    samples += [synthetic_pair(rng, h, w) for _ in range(count - len(samples))]
    return to_tensors(samples)


class TrainBatches(torch.utils.data.Dataset):
    """Batch ``step`` of a run, the same whichever process builds it (so ``workers`` changes
    the speed of a run, never its result)."""

    def __init__(self, settings: TrainSettings, real: RealPairs | None, real_share: float) -> None:
        self.settings, self.real, self.real_share = settings, real, real_share

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return _batch(step, self.settings, self.real, self.real_share)


def batches(dataset: TrainBatches, steps: range, workers: int) -> Iterable[dict[str, torch.Tensor]]:
    """The run's batches in step order, built by ``workers`` processes ahead of the GPU (or
    in this process when 0). Workers are spawned, never forked from a process holding CUDA."""
    if workers <= 0:
        return (dataset[step] for step in steps)
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=steps, num_workers=workers, prefetch_factor=4,
        multiprocessing_context="spawn", persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )  # fmt: skip


def _grid(
    batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor], path: Path, rows: int = 4
) -> None:
    """agnostic | garment | warped | try-on | target, one example per row."""
    from PIL import Image

    def rgb(t: torch.Tensor) -> np.ndarray:
        return (
            ((t.detach().cpu().permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        )

    lines = []
    for i in range(min(rows, len(batch["person"]))):
        warped = out["warped"][i] + (1 - out["warped_mask"][i])  # white outside the garment
        cells = [
            batch["agnostic"][i],
            batch["garment"][i],
            warped,
            out["tryon"][i],
            batch["person"][i],
        ]
        lines.append(np.concatenate([rgb(c) for c in cells], axis=1))
    Image.fromarray(np.concatenate(lines, axis=0)).save(path)


def run_train_tryon(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.config is None:
        print(
            "drape train tryon: --config is required (e.g. configs/tryon-cpu.toml)", file=sys.stderr
        )
        return 2
    try:
        settings, train = read_config(args.config)
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        print(f"drape train tryon: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out or Path("runs") / args.config.stem
    (out / "samples").mkdir(parents=True, exist_ok=True)
    shutil.copy(args.config, out / "config.toml")
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    trainer = TryOnTrainer(settings, device=device)
    checkpoint = out / "checkpoint"
    if checkpoint.exists() and not args.no_resume:
        saved = json.loads((checkpoint / "settings.json").read_text())
        if saved != json.loads(json.dumps(asdict(settings))):
            print(f"drape train tryon: {checkpoint} was trained with other settings; use --no-resume "
                  "or another --out", file=sys.stderr)  # fmt: skip
            return 2
        trainer.load(checkpoint)
        print(f"resumed at step {trainer.step_count}")
    elif train["init"]:
        try:
            trainer.init_generator(Path(train["init"]))
        except (OSError, ValueError) as exc:
            print(f"drape train tryon: init: {exc}", file=sys.stderr)
            return 2
        print(f"generator initialised from {train['init']}")
    real = RealPairs(train, settings.spec, out) if train["real_share"] > 0 else None
    dataset = TrainBatches(settings, real, float(train["real_share"]))
    log_path = out / "log.csv"
    new_log = not log_path.exists() or trainer.step_count == 0
    if not new_log:  # rows a stopped run logged after its last checkpoint are done again
        with open(log_path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= trainer.step_count]
        with open(log_path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)
    started = time.perf_counter()
    with open(log_path, "w" if new_log else "a", newline="") as handle:
        writer = None
        steps = range(trainer.step_count, int(train["steps"]))
        progress = tqdm(zip(steps, batches(dataset, steps, int(train["workers"])), strict=True),
                        desc="train tryon", unit="step", file=sys.stderr, initial=trainer.step_count,
                        total=int(train["steps"]))  # fmt: skip
        for step, batch in progress:
            # MultiStepLR's schedule, from the step number alone (so resuming keeps it)
            drops = sum(step >= m for m in train["lr_milestones"])
            trainer.set_learning_rate(settings.learning_rate * float(train["lr_gamma"]) ** drops)
            losses = trainer.step(batch)
            row = {"step": step + 1, "seconds": round(time.perf_counter() - started, 2), **losses}
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                if new_log:
                    writer.writeheader()
            writer.writerow(row)
            handle.flush()
            done = step + 1
            if done % int(train["sample_every"]) == 0 or done == int(train["steps"]):
                with torch.inference_mode():
                    out_images = trainer.generator(*(batch[k].to(trainer.device) for k in
                                                     ("agnostic", "garment", "garment_mask", "pose",
                                                      "tps_control", "tps_params")))  # fmt: skip
                _grid(batch, out_images, out / "samples" / f"step-{done:06d}.png")
            if done % int(train["checkpoint_every"]) == 0 or done == int(train["steps"]):
                trainer.save(checkpoint)
                # the latest generator stands beside the run, so a stopped run leaves one
                staging = out / f"{GENERATOR_FILE}.tmp"
                shutil.copy(checkpoint / GENERATOR_FILE, staging)
                os.replace(staging, out / GENERATOR_FILE)
    if real:
        real.close()
    print(f"trained {trainer.step_count} steps in {time.perf_counter() - started:.0f} s; "
          f"generator: {out / GENERATOR_FILE}; log: {log_path}; samples: {out / 'samples'}")  # fmt: skip
    return 0
