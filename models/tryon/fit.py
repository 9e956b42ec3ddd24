"""A try-on training run in a folder: checkpoints every N steps that resume bit-exactly, PNG
sample grids, a CSV log of the losses, and the latest generator beside them, so a stopped run
always leaves one."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from drape.models.tryon.data import RealPairs, TrainBatches, batches
from drape.models.tryon.recipe import TrainingRecipe
from drape.models.tryon.training import GENERATOR_FILE, GENERATOR_INPUTS, TryOnTrainer

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "log.csv"
SAMPLES_DIR = "samples"
RECIPE_FILE = "config.toml"  # the recipe as given, kept with the run


class RunMismatch(ValueError):
    """The run folder holds a checkpoint trained with other settings."""


@dataclass(frozen=True)
class RunResult:
    steps: int
    seconds: float
    generator: Path
    log: Path
    samples: Path


Progress = Callable[[Iterable, int, int], Iterable]


def train_run(
    recipe: TrainingRecipe,
    recipe_file: Path,
    out: Path,
    device: str,
    resume: bool = True,
    progress: Progress = lambda items, _initial, _total: items,
    say: Callable[[str], None] = lambda _message: None,
) -> RunResult:
    """Trains to ``recipe.train.steps`` in ``out``, resuming its checkpoint unless
    ``resume`` is false. Raises :class:`RunMismatch` when the checkpoint's settings differ,
    and ValueError or OSError for an unusable ``init`` generator or data."""
    train = recipe.train
    settings = recipe.settings()
    (out / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copy(recipe_file, out / RECIPE_FILE)
    trainer = TryOnTrainer(settings, device=device)
    checkpoint = out / CHECKPOINT_DIR
    if checkpoint.exists() and resume:
        saved = json.loads((checkpoint / "settings.json").read_text())
        if saved != json.loads(json.dumps(asdict(settings))):
            raise RunMismatch(f"{checkpoint} was trained with other settings")
        trainer.load(checkpoint)
        say(f"resumed at step {trainer.step_count}")
    elif train.init:
        trainer.init_generator(Path(train.init))
        say(f"generator initialised from {train.init}")
    real = RealPairs(train, settings.spec, out) if train.real_share > 0 else None
    dataset = TrainBatches(settings, real, train.real_share, train.fitted_share)
    log_path = out / LOG_FILE
    new_log = not log_path.exists() or trainer.step_count == 0
    if not new_log:
        _drop_rows_after(log_path, trainer.step_count)
    started = time.perf_counter()
    try:
        with open(log_path, "w" if new_log else "a", newline="") as handle:
            writer = None
            steps = range(trainer.step_count, train.steps)
            stream = zip(steps, batches(dataset, steps, train.workers), strict=True)
            for step, batch in progress(stream, trainer.step_count, train.steps):
                trainer.set_learning_rate(recipe.learning_rate(step))
                losses = trainer.step(batch)
                row = {
                    "step": step + 1,
                    "seconds": round(time.perf_counter() - started, 2),
                    **losses,
                }
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    if new_log:
                        writer.writeheader()
                writer.writerow(row)
                handle.flush()
                done = step + 1
                if done % train.sample_every == 0 or done == train.steps:
                    with torch.inference_mode():
                        images = trainer.generator(
                            *(batch[k].to(trainer.device) for k in GENERATOR_INPUTS)
                        )
                    sample_grid(batch, images, out / SAMPLES_DIR / f"step-{done:06d}.png")
                if done % train.checkpoint_every == 0 or done == train.steps:
                    _checkpoint(trainer, out)
    finally:
        if real:
            real.close()
    return RunResult(
        trainer.step_count, time.perf_counter() - started, out / GENERATOR_FILE, log_path,
        out / SAMPLES_DIR,
    )  # fmt: skip


def _checkpoint(trainer: TryOnTrainer, out: Path) -> None:
    checkpoint = out / CHECKPOINT_DIR
    trainer.save(checkpoint)
    # the latest generator stands beside the run, so a stopped run leaves one
    staging = out / f"{GENERATOR_FILE}.tmp"
    shutil.copy(checkpoint / GENERATOR_FILE, staging)
    os.replace(staging, out / GENERATOR_FILE)


def _drop_rows_after(log_path: Path, step: int) -> None:
    """Rows a stopped run logged after its last checkpoint: they are trained again."""
    with open(log_path, newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with open(log_path, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def sample_grid(
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
