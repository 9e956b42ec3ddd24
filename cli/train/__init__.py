"""`drape train recsys|encoder|tryon`: each trainer is a module here with its own flags."""

from __future__ import annotations

import argparse

from drape.cli.options import register_commands

TRAINERS = ("recsys", "encoder", "tryon")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train the recommender, the encoder or the try-on GAN")
    trainers = train.add_subparsers(dest="what", required=True, metavar="WHAT")
    # Each trainer imports only what it needs when it runs (a GPU box training the GAN has
    # no FAISS), so registering them all is cheap.
    register_commands(trainers, "drape.cli.train", TRAINERS)
