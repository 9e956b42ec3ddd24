"""`drape train recsys`: trains the recommender from the event store and publishes it."""

from __future__ import annotations

import argparse
import time

from recsys import artifacts as recsys_artifacts
from recsys.als import ALSParams
from recsys.catalog import Catalog
from recsys.index import EmbeddingIndex
from recsys.training import TrainSettings, train
from services.events.store import INTERACTION_COLUMNS, open_event_store
from services.runtime.config import DrapeConfig, load_config


def train_recsys(
    config: DrapeConfig, als: ALSParams | None = None, tune: bool = True, quiet: bool = False
) -> str:
    """Trains from the configured event store and catalog; returns the published version."""
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


def run_train(args: argparse.Namespace) -> int:
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
