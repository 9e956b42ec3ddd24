"""A/B experiments: YAML definitions and deterministic hashed assignment.

    name: ranking-2026-11
    salt: 9f1c
    variants:
      - {name: control, share: 50, strategy: popularity, previews: false}
      - {name: treatment, share: 50, strategy: popularity, previews: true}

Assignment is weighted rendezvous hashing (Thaler & Ravishankar, 1998; the
weighted form of Schindelhauer & Schomaker, 2005): every variant draws a
uniform u = hash(salt, user, variant) and scores share / -ln(u); the highest
score wins. A user's variant is deterministic, each variant gets its share of
users, and changing one variant's share moves only the users it must: when a
share grows, users only move *into* that variant (and only out of it when it
shrinks), never between the others. A new salt reshuffles everyone.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

STRATEGIES = ("popularity", "als", "embedding", "hybrid")
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

    def _uniform(self, user_id: str, variant: str) -> float:
        digest = hashlib.sha256(f"{self.salt}\x1f{user_id}\x1f{variant}".encode()).digest()
        # 53 random bits mapped into (0, 1), never exactly 0 or 1.
        return (int.from_bytes(digest[:8], "big") >> 11 | 1) / 2.0**53

    def assign(self, user_id: str) -> Variant:
        """The variant ``user_id`` belongs to (deterministic)."""
        best, best_score = self.variants[0], -math.inf
        for variant in self.variants:
            if variant.share <= 0:
                continue
            score = variant.share / -math.log(self._uniform(user_id, variant.name))
            if score > best_score:
                best, best_score = variant, score
        return best


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
