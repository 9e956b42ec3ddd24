"""`drape eval tryon --checkpoint F`: SSIM, PSNR and perceptual distance on held-out synthetic
pairs against the naive paste and the untrained generator, and a real photo as PNG (see
:mod:`drape.models.tryon.evaluation`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    tryon = sub.add_parser("tryon", help="the try-on generator on held-out pairs and a real photo")
    tryon.add_argument("--checkpoint", type=Path, required=True, help="generator safetensors")
    tryon.add_argument("--pairs", type=int, default=64, help="held-out synthetic pairs")
    tryon.add_argument(
        "--out", type=Path, help="JSON output (default: bench-results/eval-tryon.json)"
    )
    tryon.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.checkpoint or not Path(args.checkpoint).exists():
        print(
            f"drape eval tryon: no generator at {args.checkpoint}; pass --checkpoint",
            file=sys.stderr,
        )
        return 2
    from drape.models.tryon.evaluation import evaluate, real_photo
    from drape.models.tryon.training import load_generator

    started = time.perf_counter()
    generator = load_generator(Path(args.checkpoint))
    results = evaluate(generator, args.pairs)
    out_dir = (args.out or Path("bench-results") / "eval-tryon.json").parent
    real = real_photo(generator, out_dir / "tryon-real-photo.png")
    spec = generator.spec
    print(f"{args.pairs} held-out synthetic pairs at {spec.height}x{spec.width}:")
    print(f"{'':<22}{'SSIM':>8}{'PSNR dB':>10}{'perceptual':>12}")
    for name, scores in results.items():
        print(
            f"{name:<22}{scores['ssim']:>8.3f}{scores['psnr']:>10.2f}{scores['perceptual']:>12.3f}"
        )
    if "upper_body_coverage" in real:
        print(
            f"real photo: the garment covers {real['upper_body_coverage']:.0%} of the upper-body region; {real['png']}"
        )
    else:
        print(f"real photo: {real['error']}")
    out = args.out or Path("bench-results") / "eval-tryon.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "pairs": args.pairs, "synthetic": results,
                               "real_photo": real, "seconds": time.perf_counter() - started}, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 0
