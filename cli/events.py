"""`drape events compact`: retention for the event store (see
:mod:`drape.services.events.retention`). Events older than the horizon (default: ten
half-lives of the recommender's decay, when they weigh less than 0.1%) are archived to
Parquet, then replaced by per-(user, garment, type) aggregates that keep training and
popularity exact. Run it from a schedule (the Kubernetes CronJob drape-compact-events)."""

from __future__ import annotations

import argparse
import sys
import time

from drape.cli.options import add_config_argument

US_PER_DAY = 86_400 * 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser("events", help="event store upkeep: compact old events")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    compact = actions.add_parser("compact", help="archive old events, keep their aggregates")
    add_config_argument(compact)
    compact.add_argument("--older-than-days", type=float,
                         help="horizon in days (default: 10 half-lives of recommend.half_life_days)")  # fmt: skip
    where = compact.add_mutually_exclusive_group()
    where.add_argument("--archive", metavar="DIR_OR_URL",
                       help="where the Parquet archive goes "
                       "(default: <storage.url or data_dir>/archive/events)")  # fmt: skip
    where.add_argument("--no-archive", action="store_true",
                       help="drop the old events once aggregated (reports can no longer read them)")  # fmt: skip
    compact.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.services.events.retention import Archive
    from drape.services.events.store import open_event_store
    from drape.services.runtime.config import load_config

    config = load_config(args.config)
    half_life = config.recommend.half_life_days
    days = args.older_than_days if args.older_than_days is not None else 10 * half_life
    if not days > 0:
        print("drape events compact: --older-than-days must be positive", file=sys.stderr)
        return 2
    before_us = int(time.time() * 1e6) - int(days * US_PER_DAY)
    archive = None
    if not args.no_archive:
        base = args.archive or (
            f"{config.storage.url.rstrip('/')}/archive/events" if config.storage.url
            else str(config.data_dir / "archive" / "events")
        )  # fmt: skip
        archive = Archive(base, before_us)
    store = open_event_store(config.recommend.events_store_url or config.events_store_url())
    try:
        done = store.compact(before_us, half_life, archive)
    finally:
        store.close()
    dropped = f", {done.dropped:,} of them by dropping whole partitions" if done.dropped else ""
    print(f"compacted {done.events:,} events older than {days:g} days into aggregates "
          f"({done.groups:,} (user, garment, type) rows kept{dropped}); "
          f"archive: {done.archive or 'none'}")  # fmt: skip
    return 0
