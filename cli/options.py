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
