"""Flags that several commands share, defined once so each means the same everywhere."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterable
from pathlib import Path


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: always a Drape configuration (:class:`DrapeConfig`)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="Drape configuration (TOML, YAML or JSON; default: $DRAPE_CONFIG, then the "
        "built-in defaults; DRAPE_* variables override either)",
    )


def add_ready_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ready-file", type=Path, help="write the bound address here once serving")


def register_commands(sub: argparse._SubParsersAction, package: str, names: Iterable[str]) -> None:
    """Adds the subcommands of ``package`` (one module per name, each with its own
    ``register(sub)``); a command imports what it needs only when it runs."""
    for name in names:
        importlib.import_module(f"{package}.{name}").register(sub)


# Short names for --column: the event log's columns as Drape calls them.
_EVENT_COLUMN_NAMES = {"user": "user_id", "item": "garment_id", "garment": "garment_id",
                       "time": "occurred_at", "timestamp": "occurred_at", "type": "type",
                       "weight": "weight", "basket": "basket_id", "session": "basket_id",
                       "rating": "rating"}  # fmt: skip
_ITEM_COLUMN_NAMES = {"item": "garment_id", "garment": "garment_id", "category": "category",
                      "title": "title", "replenishable": "replenishable", "in_stock": "in_stock"}  # fmt: skip


def add_event_file_arguments(parser: argparse.ArgumentParser, items: bool = True) -> None:
    """``--events FILE`` and how to read it: an export of interactions instead of the event
    store (CSV, TSV or Parquet; see drape.recsys.loading)."""
    parser.add_argument(
        "--events", type=Path, metavar="FILE",
        help="an event log (CSV, TSV or Parquet): user, item, time (epoch s/ms/us/ns, ISO 8601 "
        "or datetime), and optionally type, weight, basket or session id, rating",
    )  # fmt: skip
    if items:
        parser.add_argument(
            "--items", type=Path, metavar="FILE",
            help="an item table with any attributes (category and text become item vectors)",
        )  # fmt: skip
        parser.add_argument(
            "--item-column", action="append", default=[], metavar="OURS=THEIRS",
            help=f"name an item column ({', '.join(sorted(_ITEM_COLUMN_NAMES))})",
        )  # fmt: skip
    parser.add_argument(
        "--column", action="append", default=[], metavar="OURS=THEIRS",
        help=f"name an event column the file calls otherwise ({', '.join(sorted(_EVENT_COLUMN_NAMES))})",
    )  # fmt: skip
    parser.add_argument(
        "--weight", action="append", default=[], metavar="TYPE=W",
        help="the confidence an event type adds (default: the configured weights)",
    )  # fmt: skip
    parser.add_argument(
        "--drop-invalid", action="store_true", help="skip invalid rows (counted) instead of refusing the file"
    )  # fmt: skip


def _pairs(values: list[str], flag: str, names: dict[str, str] | None) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, target = value.partition("=")
        key, target = key.strip().lower(), target.strip()
        if not sep or not key or not target:
            raise ValueError(f"{flag} {value!r}: expected NAME=VALUE")
        if names is not None:
            if key not in names and key not in names.values():
                raise ValueError(
                    f"{flag} {value!r}: {key!r} is not one of {', '.join(sorted(names))}"
                )
            key = names.get(key, key)
        out[key] = target
    return out


def event_columns(args: argparse.Namespace) -> dict[str, str]:
    return _pairs(args.column, "--column", _EVENT_COLUMN_NAMES)


def item_columns(args: argparse.Namespace) -> dict[str, str]:
    return _pairs(getattr(args, "item_column", []), "--item-column", _ITEM_COLUMN_NAMES)


def event_weights(args: argparse.Namespace, configured: dict[str, float]) -> dict[str, float]:
    weights = dict(configured)
    for kind, value in _pairs(args.weight, "--weight", None).items():
        try:
            weights[kind] = float(value)
        except ValueError:
            raise ValueError(f"--weight {kind}={value}: {value!r} is not a number") from None
        if not weights[kind] >= 0:
            raise ValueError(f"--weight {kind}={value}: a weight is a number >= 0")
    return weights
