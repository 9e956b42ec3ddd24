"""`drape eval experiments|recsys|tryon`: offline evaluation; prints a table and writes JSON."""

from __future__ import annotations

import argparse
import importlib

EVALUATIONS = ("experiments", "recsys", "tryon")


def register(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("eval", help="offline evaluation; prints a table and writes JSON")
    evaluations = evaluate.add_subparsers(dest="what", required=True, metavar="WHAT")
    for name in EVALUATIONS:
        importlib.import_module(f"drape.cli.evaluate.{name}").register(evaluations)
