"""A generated experiment with known effects, written into an event store as the services
write it (exposures with their arms and garments, events on what was shown), for the report's
tests, ``drape bench report`` and the demo.

Each user is assigned by the experiment's own hashing, sees a few recommendation lists over
the days of the experiment, and then: views and impressions of shown garments (noise the
report must skip), try-ons where a preview was shown, carts, and a purchase of a shown garment
with their variant's conversion probability. Users who bought in the pre-period are more
likely to buy again (what CUPED exploits). Some rate their experience.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from drape.recsys.experiments import Experiment, Variant
from drape.services.events.store import EventStore, ExposedItem, StoredEvent, StoredExposure

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class GeneratedExperiment:
    experiment: Experiment = field(default_factory=lambda: Experiment(
        "previews-test", "s-previews", (Variant("control", 50, "popularity", False),
                                        Variant("treatment", 50, "popularity", True))))  # fmt: skip
    users: int = 2000
    garments: int = 500
    days: int = 14
    start_us: int = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z
    lists_per_user: float = 2.0  # mean; every exposed user sees at least one
    items_per_list: int = 8
    conversion: dict[str, float] = field(default_factory=lambda: {"control": 0.10,
                                                                  "treatment": 0.12})  # fmt: skip
    pre_buyers: float = 0.3  # share who bought in the pre-period
    pre_boost: float = 2.0  # how much likelier they are to convert
    views_per_item: float = 0.3
    rating_share: float = 0.3
    mean_rating: dict[str, float] = field(default_factory=lambda: {"control": 3.6,
                                                                   "treatment": 3.9})  # fmt: skip
    seed: int = 0


def _variants(spec: GeneratedExperiment, users: list[str]) -> np.ndarray:
    return np.array([spec.experiment.assign(u).name for u in users])


def generate(spec: GeneratedExperiment) -> Iterator[tuple[list[StoredExposure], list[StoredEvent]]]:
    """Batches of (exposures, events), a few hundred users at a time."""
    rng = np.random.default_rng(spec.seed)
    version = spec.experiment.version
    name = spec.experiment.name
    previews = {v.name: bool(v.previews) for v in spec.experiment.variants}
    user_ids = [f"user-{i:07d}" for i in range(spec.users)]
    variants = _variants(spec, user_ids)
    span = spec.days * DAY_US
    serial = 0
    for start in range(0, spec.users, 500):
        exposures: list[StoredExposure] = []
        events: list[StoredEvent] = []

        def event(type_: str, user: str, garment: str, at: int, rating: int = 0,
                  value: int = 0, into: list[StoredEvent] = events) -> None:  # fmt: skip
            nonlocal serial
            serial += 1
            into.append(StoredEvent(f"ev-{spec.seed}-{serial}", type_, user, garment, at, at,
                                    name, "", rating, "", value))  # fmt: skip

        for u in range(start, min(start + 500, spec.users)):
            user, variant = user_ids[u], str(variants[u])
            lists = 1 + rng.poisson(spec.lists_per_user - 1)
            times = np.sort(spec.start_us + rng.integers(0, span, lists))
            shown: list[tuple[str, int]] = []
            for i, at in enumerate(times):
                garments = rng.choice(spec.garments, spec.items_per_list, replace=False)
                status = "ok" if previews[variant] and rng.random() > 0.05 else (
                    "failed" if previews[variant] else "skipped")  # fmt: skip
                items = tuple(ExposedItem(r + 1, f"g{g}", status) for r, g in enumerate(garments))
                exposures.append(StoredExposure(
                    f"rec-{spec.seed}-{u}-{i}", user, int(at), int(at), "popularity", "pop-1",
                    float(rng.gamma(4, 25 if previews[variant] else 10)),
                    ((name, variant, version),), items))  # fmt: skip
                for item in items:
                    shown.append((item.garment_id, int(at)))
                    event("impression", user, item.garment_id, int(at) + 1_000_000)
                    if rng.random() < spec.views_per_item:
                        event("view", user, item.garment_id, int(at) + 30_000_000)
                        if status == "ok" and rng.random() < 0.3:
                            event("tryon_view", user, item.garment_id, int(at) + 60_000_000)
            pre_buyer = rng.random() < spec.pre_buyers
            if pre_buyer:
                event("purchase", user, f"g{rng.integers(spec.garments)}",
                      int(times[0] - rng.integers(1, 10) * DAY_US), value=int(rng.gamma(2, 2500)))  # fmt: skip
            p = spec.conversion[variant] * (spec.pre_boost if pre_buyer else 1.0) / (
                1 + spec.pre_buyers * (spec.pre_boost - 1))  # fmt: skip
            if rng.random() < p:
                garment, at = shown[rng.integers(len(shown))]
                event("add_to_cart", user, garment, at + 120_000_000)
                event("purchase", user, garment, at + 600_000_000, value=int(rng.gamma(2, 3000)))
            elif rng.random() < 0.2:
                garment, at = shown[rng.integers(len(shown))]
                event("add_to_cart", user, garment, at + 120_000_000)
            if rng.random() < spec.rating_share:
                rating = int(np.clip(np.rint(rng.normal(spec.mean_rating[variant], 1.0)), 1, 5))
                event("rating", user, "", int(times[-1]) + 900_000_000, rating=rating)
        yield exposures, events


def store_experiment(store: EventStore, spec: GeneratedExperiment) -> tuple[int, int]:
    """Writes the experiment's definition and every batch; (exposures, events) written."""
    e = spec.experiment
    store.record_definitions([(e.name, e.version, json.dumps(e.definition(), sort_keys=True))])
    exposures = events = 0
    for batch_exposures, batch_events in generate(spec):
        store.append_exposures(batch_exposures)
        store.append(batch_events)
        exposures += len(batch_exposures)
        events += len(batch_events)
    return exposures, events
