"""`drape train recsys`: trains the recommender from the event store and publishes it."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from drape.cli.options import add_config_argument
from drape.services.runtime.config import DrapeConfig, load_config

if TYPE_CHECKING:
    from drape.recsys.als import ALSParams


def train_recsys(
    config: DrapeConfig, als: ALSParams | None = None, tune: bool = True, quiet: bool = False
) -> str:
    """Trains from the configured event store and catalog; returns the published version."""
    from drape.recsys import artifacts as recsys_artifacts
    from drape.recsys.als import ALSParams
    from drape.recsys.catalog import Catalog
    from drape.recsys.index import EmbeddingIndex
    from drape.recsys.training import TrainSettings, train
    from drape.services.events.store import INTERACTION_COLUMNS, open_event_store

    als = als or ALSParams()
    say = (lambda message: None) if quiet else print
    started = time.perf_counter()
    catalog = Catalog.load(config.catalog_path())
    store = open_event_store(config.recommend.events_store_url or config.events_store_url())
    try:
        events = store.read_frame(columns=INTERACTION_COLUMNS)
    finally:
        store.close()
    if events.empty:
        raise ValueError(f"the event store {store.url} holds no events yet; record some first")
    embeddings_dir = config.embeddings_path()
    embeddings = (
        EmbeddingIndex.load(embeddings_dir) if (embeddings_dir / "index.json").exists() else None
    )
    described = (
        f"{len(embeddings):,} x {embeddings.dim}"
        if embeddings
        else "none (ALS and popularity only)"
    )
    say(f"read {len(events):,} events and {len(catalog):,} garments in {time.perf_counter() - started:.1f} s"
        f"; embeddings: {described}")  # fmt: skip
    settings = TrainSettings(
        weights=config.recommend.weights.model_dump(),
        half_life_days=config.recommend.half_life_days,
        als=als,
        tune=tune,
    )
    artifacts, report = train(events, catalog, embeddings, settings, progress=say)
    path = recsys_artifacts.save(config.recsys_artifacts(), artifacts)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    say(f"trained {report.version}: {report.users:,} users x {report.items:,} garments ({stages})")
    say(f"blend weights: {artifacts.params.weights}")
    say(f"published {path} ({time.perf_counter() - started:.1f} s end to end)")
    return report.version


def register(sub: argparse._SubParsersAction) -> None:
    recsys = sub.add_parser("recsys", help="train from the event store and publish a version")
    add_config_argument(recsys)
    recsys.add_argument("--factors", type=int, default=64, help="ALS factors")
    recsys.add_argument("--iterations", type=int, default=15, help="ALS iterations")
    recsys.add_argument("--no-tune", action="store_true", help="keep the configured blend weights")
    recsys.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.recsys.als import ALSParams

    config = load_config(args.config)
    try:
        train_recsys(
            config,
            ALSParams(factors=args.factors, iterations=args.iterations),
            tune=not args.no_tune,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"drape train recsys: {exc}")
        return 2
    return 0
