"""A/B experiments: YAML definitions, layers, and deterministic hashed assignment.

One experiment (the short form):

    name: ranking-2026-11
    salt: 9f1c
    variants:
      - {name: control, share: 50, strategy: popularity, previews: false}
      - {name: treatment, share: 50, strategy: popularity, previews: true}

Several at once (the plan form), after Tang et al., "Overlapping experiment infrastructure"
(KDD 2010):

    defaults: {strategy: popularity, previews: true}
    layers:
      - name: ranking          # owns the ranking strategy
        salt: l-ranking
      - name: previews         # owns whether previews are shown
        salt: l-previews
    experiments:
      - name: hybrid-2026-12
        layer: ranking
        buckets: [0, 500]      # half of the layer's users; the other half see the defaults
        start: 2026-12-01T00:00:00Z
        stop: 2026-12-15T00:00:00Z
        variants:
          - {name: control, share: 50, strategy: popularity}
          - {name: treatment, share: 50, strategy: hybrid}
      - name: previews-2026-12
        layer: previews
        variants: [...]

* A **layer** hashes every user (with the layer's salt) into one of 1,000 buckets. Experiments
  in one layer are mutually exclusive: each takes a range of buckets, and ranges that overlap
  in time are refused. Experiments in different layers are independent (different salts), so
  a user is in at most one experiment per layer and may be in one of every layer at once.
* A parameter (``strategy``, ``previews``) is owned by one layer: two layers whose variants set
  the same parameter are refused, so concurrent experiments never fight over a setting.
* Within an experiment, the variant is weighted rendezvous hashing (Thaler & Ravishankar, 1998;
  the weighted form of Schindelhauer & Schomaker, 2005): every variant draws a uniform
  u = hash(salt, user, variant) and scores share / -ln(u); the highest score wins. A user's
  variant is deterministic, each variant gets its share of users, and changing one share moves
  only the users it must. A new salt reshuffles everyone.
* ``start`` and ``stop`` (UTC, ISO 8601) bound when an experiment assigns anyone.
* Every experiment's definition has a **version** (a hash of what decides assignment and
  treatment). A file is reloaded while the services run; changing the shares, salt, buckets or
  layer of an experiment that is running is refused (it biases the analysis: users switch arms
  mid-experiment) unless that experiment says ``force: true``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

STRATEGIES = ("popularity", "als", "embedding", "hybrid")
BUCKETS = 1000
_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PARAMETERS = ("strategy", "previews")
log = logging.getLogger("drape.experiments")


class ExperimentError(ValueError):
    """The experiments file is invalid; the message names the field."""


def _check_label(what: str, value: str) -> None:
    if not _LABEL.fullmatch(value):
        raise ExperimentError(f"{what} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")


def _uniform(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    # 53 random bits mapped into (0, 1), never exactly 0 or 1.
    return (int.from_bytes(digest[:8], "big") >> 11 | 1) / 2.0**53


@dataclass(frozen=True)
class Variant:
    """One arm. ``strategy``/``previews`` of None leave the plan's default in place."""

    name: str
    share: float
    strategy: str | None = "popularity"
    previews: bool | None = True

    def sets(self) -> dict[str, object]:
        return {p: getattr(self, p) for p in PARAMETERS if getattr(self, p) is not None}


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    variants: tuple[Variant, ...]
    layer: str = "main"
    buckets: tuple[int, int] = (0, BUCKETS)
    start_us: int | None = None
    stop_us: int | None = None
    force: bool = False

    def __post_init__(self) -> None:
        _check_label("name", self.name)
        for v in self.variants:
            _check_label("variant name", v.name)
        if not self.variants:
            raise ExperimentError(f"experiment {self.name!r} has no variants")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ExperimentError(f"experiment {self.name!r} repeats a variant name: {names}")
        for v in self.variants:
            if not math.isfinite(v.share) or v.share < 0:
                raise ExperimentError(f"variant {v.name!r}: share must not be negative")
            if v.strategy is not None and v.strategy not in STRATEGIES:
                raise ExperimentError(
                    f"variant {v.name!r}: unknown strategy {v.strategy!r}; expected one of {STRATEGIES}"
                )
        if sum(v.share for v in self.variants) <= 0:
            raise ExperimentError(f"experiment {self.name!r}: shares add up to zero")
        low, high = self.buckets
        if not 0 <= low < high <= BUCKETS:
            raise ExperimentError(
                f"experiment {self.name!r}: buckets must be [from, to) with 0 <= from < to <= "
                f"{BUCKETS} (got {list(self.buckets)})"
            )
        if self.start_us is not None and self.stop_us is not None and self.stop_us <= self.start_us:
            raise ExperimentError(f"experiment {self.name!r}: stop must be after start")

    def assign(self, user_id: str) -> Variant:
        """The variant ``user_id`` gets if they are in this experiment (deterministic)."""
        best, best_score = self.variants[0], -math.inf
        for variant in self.variants:
            if variant.share <= 0:
                continue
            score = variant.share / -math.log(_uniform(self.salt, user_id, variant.name))
            if score > best_score:
                best, best_score = variant, score
        return best

    def running(self, now_us: int) -> bool:
        return (self.start_us is None or self.start_us <= now_us) and (
            self.stop_us is None or now_us < self.stop_us
        )

    def shares(self) -> dict[str, float]:
        return {v.name: v.share for v in self.variants}

    def allocation(self) -> dict[str, object]:
        """What decides who gets which variant: changing it moves users between arms."""
        return {"salt": self.salt, "layer": self.layer, "buckets": list(self.buckets),
                "shares": self.shares()}  # fmt: skip

    def definition(self) -> dict[str, object]:
        """Everything that defines the experiment, as stored with its results."""
        return {
            "name": self.name,
            **self.allocation(),
            "variants": [{"name": v.name, "share": v.share, **v.sets()} for v in self.variants],
            "start": _iso(self.start_us),
            "stop": _iso(self.stop_us),
        }

    @property
    def version(self) -> str:
        canonical = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Assigned:
    """A user's variant in one experiment."""

    experiment: Experiment
    variant: Variant


@dataclass(frozen=True)
class Assignment:
    """What a user gets: their variant in each experiment they are in (one per layer, in the
    plan's layer order), and the strategy and previews setting that results."""

    arms: tuple[Assigned, ...]
    strategy: str
    previews: bool

    @property
    def primary(self) -> Assigned | None:
        return self.arms[0] if self.arms else None

    def variant_in(self, experiment: str) -> str | None:
        return next((a.variant.name for a in self.arms if a.experiment.name == experiment), None)


@dataclass(frozen=True)
class Plan:
    """Every experiment of a deployment, in layers."""

    experiments: tuple[Experiment, ...]
    layers: dict[str, str] = field(default_factory=lambda: {"main": "main"})  # name -> salt
    default_strategy: str = "popularity"
    default_previews: bool = True

    def __post_init__(self) -> None:
        if self.default_strategy not in STRATEGIES:
            raise ExperimentError(
                f"defaults.strategy {self.default_strategy!r} is not one of {STRATEGIES}"
            )
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ExperimentError(f"an experiment name is used twice: {names}")
        owner: dict[str, str] = {}
        for e in self.experiments:
            if e.layer not in self.layers:
                raise ExperimentError(
                    f"experiment {e.name!r}: unknown layer {e.layer!r}; declare it under layers"
                )
            for parameter in {p for v in e.variants for p in v.sets()}:
                if owner.setdefault(parameter, e.layer) != e.layer:
                    raise ExperimentError(
                        f"experiment {e.name!r} in layer {e.layer!r} sets {parameter!r}, which "
                        f"layer {owner[parameter]!r} owns: put both in one layer (mutually "
                        "exclusive) or let one leave it to the defaults"
                    )
        for i, a in enumerate(self.experiments):
            for b in self.experiments[i + 1 :]:
                if (
                    a.layer == b.layer
                    and _overlap(a.buckets, b.buckets)
                    and _overlap(
                        (a.start_us or -math.inf, a.stop_us or math.inf),
                        (b.start_us or -math.inf, b.stop_us or math.inf),
                    )
                ):
                    raise ExperimentError(
                        f"experiments {a.name!r} and {b.name!r} share layer {a.layer!r}, buckets "
                        "and time: a user could be in both; give them disjoint buckets or times"
                    )

    def current(self) -> Plan:
        """A fixed plan is its own source: services take a :class:`PlanSource` or a Plan."""
        return self

    def experiment(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)

    def assign(self, user_id: str, now_us: int | None = None) -> Assignment:
        """The user's variants in the experiments running at ``now_us`` (default: now)."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        buckets = {
            layer: int(_uniform(salt, user_id) * BUCKETS) for layer, salt in self.layers.items()
        }
        arms = []
        settings: dict[str, object] = {}
        for layer in self.layers:
            for e in self.experiments:
                low, high = e.buckets
                if e.layer == layer and e.running(now_us) and low <= buckets[layer] < high:
                    variant = e.assign(user_id)
                    arms.append(Assigned(e, variant))
                    settings.update(variant.sets())
                    break
        return Assignment(
            tuple(arms),
            str(settings.get("strategy", self.default_strategy)),
            bool(settings.get("previews", self.default_previews)),
        )

    def variants(self) -> list[tuple[Experiment, Variant]]:
        return [(e, v) for e in self.experiments for v in e.variants]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _time_us(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ExperimentError(f"{what}: {value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise ExperimentError(f"{what}: {value!r} needs a time zone (end it with Z for UTC)")
    return int(moment.timestamp() * 1_000_000)


def default_experiment() -> Experiment:
    """Everyone in one control arm: popularity ranking, previews on."""
    return Experiment("default", "default", (Variant("control", 1.0, "popularity", True),))


def default_plan() -> Plan:
    return Plan((default_experiment(),))


def _variant(raw: dict, short_form: bool) -> Variant:
    # The short form fills a variant's unset settings with the historical defaults; the plan
    # form leaves them to the plan's defaults (so a layer sets only what it owns).
    strategy = raw.get("strategy", "popularity" if short_form else None)
    previews = raw.get("previews", True if short_form else None)
    return Variant(
        name=str(raw["name"]),
        share=float(raw.get("share", 1)),
        strategy=None if strategy is None else str(strategy),
        previews=None if previews is None else bool(previews),
    )


def _experiment(raw: dict, short_form: bool, where: str) -> Experiment:
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: expected a mapping with name and variants")
    buckets = raw.get("buckets", [0, BUCKETS])
    if not (isinstance(buckets, list) and len(buckets) == 2):
        raise ExperimentError(f"{where}: buckets must be [from, to)")
    return Experiment(
        name=str(raw["name"]),
        salt=str(raw.get("salt", raw["name"])),
        variants=tuple(_variant(v, short_form) for v in raw["variants"]),
        layer=str(raw.get("layer", "main")),
        buckets=(int(buckets[0]), int(buckets[1])),
        start_us=_time_us(raw.get("start"), f"{where}.start"),
        stop_us=_time_us(raw.get("stop"), f"{where}.stop"),
        force=bool(raw.get("force", False)),
    )


def parse_plan(data: object, source: str = "experiments file") -> Plan:
    if not isinstance(data, dict):
        raise ExperimentError(f"{source}: expected a mapping (an experiment, or a plan)")
    try:
        if "experiments" not in data:
            return Plan((_experiment(data, True, source),))
        layers_raw = data.get("layers", [{"name": "main"}])
        layers = {}
        for raw in layers_raw:
            name = str(raw["name"])
            _check_label("layer name", name)
            layers[name] = str(raw.get("salt", name))
        defaults = data.get("defaults") or {}
        return Plan(
            tuple(
                _experiment(raw, False, f"{source}: experiments[{i}]")
                for i, raw in enumerate(data["experiments"] or [])
            ),
            layers,
            str(defaults.get("strategy", "popularity")),
            bool(defaults.get("previews", True)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ExperimentError(f"{source}: missing or malformed field {exc}") from exc


def load_plan(path: Path) -> Plan:
    """Reads and validates an experiments file (either form)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentError(f"cannot read experiments file {path}: {exc}") from exc
    return parse_plan(data, str(path))


def load_experiment(path: Path) -> Experiment:
    """Reads an experiments file holding one experiment."""
    plan = load_plan(path)
    if len(plan.experiments) != 1:
        raise ExperimentError(f"{path} defines {len(plan.experiments)} experiments; expected one")
    return plan.experiments[0]


def check_change(old: Plan, new: Plan, now_us: int) -> None:
    """Refuses a new plan that reallocates users of a running experiment (its salt, layer,
    buckets or shares changed) unless the new definition says ``force: true``."""
    for before in old.experiments:
        after = new.experiment(before.name)
        if after is None or not before.running(now_us) or after.force:
            continue
        if before.allocation() != after.allocation():
            raise ExperimentError(
                f"experiment {before.name!r} is running: changing its allocation from "
                f"{before.allocation()} to {after.allocation()} moves users between arms "
                "mid-experiment and biases the analysis; stop it and start a new one, or set "
                "force: true on it to do it anyway"
            )


class PlanSource:
    """The experiments file, reloaded while a service runs. ``current()`` checks the file at
    most every ``check_every_s``; a new plan is taken only when it is valid and
    :func:`check_change` allows it, else the running one stays and ``on_error`` is told."""

    def __init__(
        self,
        path: Path | None,
        check_every_s: float = 5.0,
        on_change: Callable[[Plan], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self.check_every_s = check_every_s
        self.on_change = on_change
        self.on_error = on_error
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._plan = load_plan(self.path) if self.path else default_plan()
        self._checked = time.monotonic()
        if on_change:
            on_change(self._plan)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def current(self) -> Plan:
        if self.path is None or time.monotonic() - self._checked < self.check_every_s:
            return self._plan
        with self._lock:
            if time.monotonic() - self._checked >= self.check_every_s:
                self._checked = time.monotonic()
                self._reload()
        return self._plan

    def reload(self) -> Plan:
        """Checks the file now (what ``current`` does every ``check_every_s``)."""
        with self._lock:
            self._checked = time.monotonic()
            self._reload()
        return self._plan

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            plan = load_plan(self.path)  # type: ignore[arg-type]
            check_change(self._plan, plan, time.time_ns() // 1000)
        except ExperimentError as exc:
            log.error("experiments file not reloaded, the running plan stays: %s", exc)
            if self.on_error:
                self.on_error(str(exc))
            return
        self._plan = plan
        log.info("experiments reloaded: %s", [f"{e.name}@{e.version}" for e in plan.experiments])
        if self.on_change:
            self.on_change(plan)
