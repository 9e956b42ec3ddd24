"""A/B experiments: YAML definitions and deterministic hashed assignment.

    name: ranking-2026-11
    salt: 9f1c
    variants:
      - {name: control, share: 50, strategy: popularity, previews: false}
      - {name: treatment, share: 50, strategy: popularity, previews: true}

A user's bucket is a hash of ``salt:user_id`` in [0, 10000); variants own
consecutive bucket ranges in file order, sized by their shares. The same user
always gets the same variant for the same file; a new salt reshuffles everyone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

BUCKETS = 10_000
STRATEGIES = ("popularity",)
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ExperimentError(ValueError):
    """The experiments file is invalid; the message names the field."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    strategy: str
    previews: bool


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    variants: tuple[Variant, ...]

    def __post_init__(self) -> None:
        for label, value in (
            ("name", self.name),
            *(("variant name", v.name) for v in self.variants),
        ):
            if not _LABEL.match(value):
                raise ExperimentError(f"{label} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
        if not self.variants:
            raise ExperimentError(f"experiment {self.name!r} has no variants")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ExperimentError(f"experiment {self.name!r} repeats a variant name: {names}")
        for v in self.variants:
            if v.share < 0:
                raise ExperimentError(f"variant {v.name!r}: share must not be negative")
            if v.strategy not in STRATEGIES:
                raise ExperimentError(
                    f"variant {v.name!r}: unknown strategy {v.strategy!r}; expected one of {STRATEGIES}"
                )
        if sum(v.share for v in self.variants) <= 0:
            raise ExperimentError(f"experiment {self.name!r}: shares add up to zero")

    def bucket(self, user_id: str) -> int:
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % BUCKETS

    def assign(self, user_id: str) -> Variant:
        """The variant ``user_id`` belongs to (deterministic)."""
        total = sum(v.share for v in self.variants)
        point = self.bucket(user_id) / BUCKETS * total
        upper = 0.0
        for variant in self.variants:
            upper += variant.share
            if point < upper:
                return variant
        return self.variants[-1]


def default_experiment() -> Experiment:
    """Everyone in one control arm: popularity ranking, previews on."""
    return Experiment("default", "default", (Variant("control", 1.0, "popularity", True),))


def load_experiment(path: Path) -> Experiment:
    """Reads and validates an experiment YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentError(f"cannot read experiments file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping with name, salt and variants")
    try:
        variants = tuple(
            Variant(
                name=str(v["name"]),
                share=float(v.get("share", 1)),
                strategy=str(v.get("strategy", "popularity")),
                previews=bool(v.get("previews", True)),
            )
            for v in data["variants"]
        )
        return Experiment(str(data["name"]), str(data.get("salt", data["name"])), variants)
    except (KeyError, TypeError) as exc:
        raise ExperimentError(f"{path}: missing or malformed field {exc}") from exc
