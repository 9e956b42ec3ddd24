"""The experiments file as the recommend and events services both follow it: reloaded while
they run, a refused reload counted where the alerts can see it."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from drape.recsys.experiments import Plan, PlanSource
from drape.services.runtime.config import DrapeConfig


def watch_experiments(
    config: DrapeConfig,
    registry: CollectorRegistry,
    on_change: Callable[[Plan], None] | None = None,
) -> PlanSource:
    refused = Counter(
        "drape_experiment_reload_failures",
        "Experiments files refused on reload (invalid, or reallocating a running experiment); "
        "the running plan stays.",
        registry=registry,
    )
    cfg = config.recommend
    return PlanSource(
        cfg.experiments_path or None,
        cfg.experiments_reload_s,
        on_change=on_change,
        on_error=lambda _: refused.inc(),
    )
