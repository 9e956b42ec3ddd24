"""`drape train recsys`: trains the recommender from the event store and publishes it."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from drape.cli.options import (
    add_config_argument,
    add_event_file_arguments,
    event_columns,
    event_weights,
)
from drape.services.runtime.config import DrapeConfig, load_config

if TYPE_CHECKING:
    from drape.recsys.als import ALSParams
    from drape.recsys.loading import Loaded


def train_recsys(
    config: DrapeConfig,
    als: ALSParams | None = None,
    tune: bool = True,
    quiet: bool = False,
    events_file: Loaded | None = None,
    weights: dict[str, float] | None = None,
) -> str:
    """Trains from the configured event store (or ``events_file``, an export read by
    :func:`drape.recsys.loading.load_events`) and catalog; returns the published version."""
    from drape.recsys import artifacts as recsys_artifacts
    from drape.recsys.als import ALSParams
    from drape.recsys.catalog import Catalog
    from drape.recsys.index import EmbeddingIndex
    from drape.recsys.training import TrainSettings, train
    from drape.services.events.store import RANKING_COLUMNS, open_event_store
    from drape.services.runtime.storage import ObjectStorage

    als = als or ALSParams()
    say = (lambda message: None) if quiet else print
    started = time.perf_counter()
    remote = ObjectStorage.from_config(config)
    if remote is not None:
        remote.pull_catalog(force=True, embeddings=True)
    catalog = Catalog.load(config.catalog_path())
    if events_file is not None:
        events = events_file.frame
        known = catalog.positions(events["garment_id"]) >= 0
        if not known.any():
            raise ValueError(
                f"none of the {events['garment_id'].nunique():,} item ids of the events is in the "
                f"catalog {config.catalog_path()}: events have e.g. "
                f"{events['garment_id'].unique()[:3].tolist()}, the catalog e.g. {catalog.ids[:3].tolist()}"
            )
        for note in events_file.notes:
            say(f"  {note}")
        if not known.all():
            say(f"  {int((~known).sum()):,} events name garments not in the catalog: they shape the "
                "model but are never recommended")  # fmt: skip
    else:
        store = open_event_store(config.recommend.events_store_url or config.events_store_url())
        try:
            events = store.read_frame(columns=RANKING_COLUMNS)
        finally:
            store.close()
        if events.empty:
            raise ValueError(f"the event store {store.url} holds no events yet; record some first")
    embeddings_dir = config.embeddings_path()
    embeddings = (
        EmbeddingIndex.load(embeddings_dir) if (embeddings_dir / "index.json").exists() else None
    )
    read_s = time.perf_counter() - started
    described = (
        f"{len(embeddings):,} x {embeddings.dim}"
        if embeddings
        else "none (ALS and popularity only)"
    )
    say(f"read {len(events):,} events and {len(catalog):,} garments in {time.perf_counter() - started:.1f} s"
        f"; embeddings: {described}")  # fmt: skip
    settings = TrainSettings(
        # "event": rows of a log with a weight column and no type weigh that column.
        weights={"event": 1.0, **(weights or config.recommend.weights.model_dump())},
        half_life_days=config.recommend.half_life_days,
        als=als,
        tune=tune,
        exclude_after=tuple(config.recommend.exclude_after),
    )
    artifacts, report = train(
        events, catalog, embeddings, settings, progress=say, timed={"read": read_s}
    )
    path = recsys_artifacts.save(config.recsys_artifacts(), artifacts)
    if remote is not None:
        remote.push_version(report.version)
        say(f"pushed {report.version} to {remote.url}")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    say(f"trained {report.version}: {report.users:,} users x {report.items:,} garments ({stages})")
    say(f"blend weights: {artifacts.params.weights}")
    say(f"published {path} ({time.perf_counter() - started:.1f} s end to end)")
    return report.version


def register(sub: argparse._SubParsersAction) -> None:
    recsys = sub.add_parser("recsys", help="train from the event store and publish a version")
    add_config_argument(recsys)
    add_event_file_arguments(recsys, items=False)
    # Defaults: drape.recsys.als.ALSParams (not imported here: it loads scipy for every command).
    recsys.add_argument("--factors", type=int, help="ALS factors (default: ALSParams's)")
    recsys.add_argument("--iterations", type=int, help="ALS sweeps (default: ALSParams's)")
    recsys.add_argument("--no-tune", action="store_true", help="keep the configured blend weights")
    recsys.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.recsys.als import ALSParams

    config = load_config(args.config)
    given = {"factors": args.factors, "iterations": args.iterations}
    try:
        als = ALSParams(**{name: value for name, value in given.items() if value is not None})
        weights = event_weights(args, config.recommend.weights.model_dump())
        events_file = None
        if args.events is not None:
            from drape.recsys.loading import load_events

            events_file = load_events(args.events, weights, event_columns(args), args.drop_invalid)
        train_recsys(
            config,
            als,
            tune=not args.no_tune,
            events_file=events_file,
            weights=weights,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"drape train recsys: {exc}")
        return 2
    return 0
