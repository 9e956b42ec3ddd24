"""A try-on training recipe: the TOML file `drape train tryon --recipe` reads, as a strict,
typed model. An unknown key or a value of the wrong type is refused with a message that
names it, before any training starts.

    [spec]     the generator's shape (:class:`TryOnSpec`)
    [weights]  the loss weights (:class:`LossWeights`)
    [train]    the schedule and the data (:class:`TrainSection`)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from drape.models.tryon.losses import LossWeights
from drape.models.tryon.networks import TryOnSpec
from drape.models.tryon.training import TrainSettings


class RecipeError(ValueError):
    """The recipe file is missing, not TOML, or has a bad setting (the message names it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainSection(_Strict):
    """``[train]``: how long, how fast, and on which data."""

    batch_size: PositiveInt = Field(8, description="Pairs per step.")
    steps: PositiveInt = Field(1000, description="Steps of the whole run (a resume continues).")
    learning_rate: float = Field(2e-4, gt=0, description="Adam's learning rate at step 0.")
    lr_milestones: list[PositiveInt] = Field(
        default_factory=list,
        description="Steps at which the learning rate is multiplied by lr_gamma (MultiStepLR).",
    )
    lr_gamma: float = Field(0.1, gt=0, le=1)
    seed: int = 0
    checkpoint_every: PositiveInt = Field(100, description="Steps between checkpoints.")
    sample_every: PositiveInt = Field(200, description="Steps between PNG sample grids.")
    real_share: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Share of each batch drawn from real photos instead of synthetic pairs."
    )
    photos: str = Field(
        "",
        description='Real person photos: "bundled" (the ones scikit-image and matplotlib ship) '
        "or a folder.",
    )
    viton: str = Field("", description="A VITON-HD split folder (its pairs replace `photos`).")
    fitted_share: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0,
        description="Share of the synthetic pairs made the way photos are served: the garment "
        "fitted to the body part by part, for the generator to refine (the rest: a flat shot "
        "and the keypoint TPS).",
    )
    workers: int = Field(0, ge=0, description="Processes building batches ahead (0 = this one).")
    init: str = Field("", description="Generator safetensors to start from (fine-tuning).")


class TrainingRecipe(_Strict):
    spec: TryOnSpec = Field(default_factory=TryOnSpec)
    weights: LossWeights = Field(default_factory=LossWeights)
    train: TrainSection = Field(default_factory=TrainSection)

    def settings(self) -> TrainSettings:
        """What the trainer needs (and what a checkpoint records to refuse a mismatched resume)."""
        return TrainSettings(
            spec=self.spec,
            weights=self.weights,
            batch_size=self.train.batch_size,
            learning_rate=self.train.learning_rate,
            seed=self.train.seed,
        )

    def learning_rate(self, step: int) -> float:
        """MultiStepLR's schedule from the step number alone, so a resumed run keeps it."""
        drops = sum(step >= m for m in self.train.lr_milestones)
        return self.train.learning_rate * self.train.lr_gamma**drops


def load_recipe(path: Path) -> TrainingRecipe:
    """Reads and validates a recipe; :class:`RecipeError` names the file and the bad key."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return TrainingRecipe.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(
            f"  [{item['loc'][0]}] {'.'.join(str(p) for p in item['loc'][1:]) or '(section)'}: "
            f"{item['msg']}"
            for item in exc.errors()
        )
        raise RecipeError(f"{path}: invalid recipe:\n{problems}") from None
