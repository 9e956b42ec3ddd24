"""`drape train tryon --recipe F --out DIR`: trains the try-on GAN on synthetic pairs mixed
with real ones (see :mod:`drape.models.tryon.fit`), resuming the run in DIR if there is one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    tryon = sub.add_parser(
        "tryon", help="train the try-on GAN (synthetic pairs + real photos or VITON-HD)"
    )
    tryon.add_argument(
        "--recipe",
        type=Path,
        required=True,
        help="training recipe (TOML with [spec], [weights], [train]), e.g. configs/tryon-cpu.toml",
    )
    tryon.add_argument("--out", type=Path, help="run folder (default: runs/<recipe name>)")
    tryon.add_argument("--cpu", action="store_true", help="train on CPU even when CUDA is present")
    tryon.add_argument("--no-resume", action="store_true", help="start over in the run folder")
    tryon.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from drape.models.tryon.fit import RunMismatch, train_run
    from drape.models.tryon.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe)
    except RecipeError as exc:
        print(f"drape train tryon: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out or Path("runs") / args.recipe.stem
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"

    def progress(items, initial: int, total: int):
        return tqdm(items, desc="train tryon", unit="step", file=sys.stderr, initial=initial,
                    total=total)  # fmt: skip

    try:
        result = train_run(recipe, args.recipe, out, device, resume=not args.no_resume,
                           progress=progress, say=print)  # fmt: skip
    except RunMismatch as exc:
        print(f"drape train tryon: {exc}; use --no-resume or another --out", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"drape train tryon: {exc}", file=sys.stderr)
        return 2
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; generator: {result.generator}; "
          f"log: {result.log}; samples: {result.samples}")  # fmt: skip
    return 0
