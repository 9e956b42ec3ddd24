"""`drape`: the one command line for Drape.

drape up                 start every service on localhost (Ctrl-C stops them)
drape serve SERVICE      run one service (what a Kubernetes pod runs)
drape triton             the model server (Triton with Drape's models)
drape demo               the whole flow on generated data; exits when done
drape ingest FEED        validate, store, embed and index a catalog feed
drape generate catalog   write a generated feed (CSV + product shots) to try it on
drape train WHAT         train the recommender, the encoder or the try-on GAN
drape eval WHAT          offline evaluation of the recommender or the try-on GAN
drape export models      write the Triton model repository (ONNX + config.pbtxt)
drape report experiment  an experiment's result: metrics, lift, tests, plots
drape bench NAME         a benchmark: prints a table, writes JSON
drape doctor             check the installation

Each command is a module of ``drape.cli`` with a ``register(subparsers)`` that adds its own
parser, with only its own flags, and sets ``func`` to the function that runs it. Commands
import what they need when they run, so ``drape --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from drape.cli.options import register_commands
from drape.services.runtime.config import ConfigError

# Module of drape.cli per command, in the order `drape --help` lists them.
COMMAND_MODULES = (
    "up",
    "web",
    "serve",
    "demo",
    "ingest",
    "generate",
    "train",
    "evaluate",
    "export",
    "report",
    "bench",
    "doctor",
    "health",
    "keys",
    "tls",
    "storage",
    "events",
)
# Commands that run until stopped: SIGTERM stops them like Ctrl-C.
_INTERRUPTIBLE = ("up", "web", "demo", "bench", "eval")


def _install_sigterm_as_interrupt() -> None:
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drape",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_commands(sub, "drape.cli", COMMAND_MODULES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in _INTERRUPTIBLE:
        _install_sigterm_as_interrupt()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"drape {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
