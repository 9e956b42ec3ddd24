"""`drape eval experiments|recsys|tryon`: offline evaluation; prints a table and writes JSON."""

from __future__ import annotations

import argparse

from drape.cli.options import register_commands

EVALUATIONS = ("experiments", "recsys", "tryon")


def register(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("eval", help="offline evaluation; prints a table and writes JSON")
    evaluations = evaluate.add_subparsers(dest="what", required=True, metavar="WHAT")
    register_commands(evaluations, "drape.cli.evaluate", EVALUATIONS)
