"""`drape eval tryon --checkpoint F`: SSIM, PSNR and perceptual distance on held-out synthetic
pairs against the naive paste and the untrained generator, and a real photo as PNG (see
:mod:`drape.models.tryon.evaluation`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from drape.cli.bench import format_table


def register(sub: argparse._SubParsersAction) -> None:
    tryon = sub.add_parser(
        "tryon", help="the try-on generator on held-out pairs and on photos of people"
    )
    tryon.add_argument("--checkpoint", type=Path, required=True, help="generator safetensors")
    tryon.add_argument("--pairs", type=int, default=64, help="held-out synthetic pairs")
    tryon.add_argument(
        "--photos",
        type=Path,
        help="folder of person photos to measure previews on (default: the bundled ones)",
    )
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
    from drape.models.images import decode_image
    from drape.models.tryon.data import bundled_photos
    from drape.models.tryon.evaluation import PHOTO_GARMENTS, evaluate, evaluate_photos
    from drape.models.tryon.photos import photo_folder
    from drape.models.tryon.training import load_generator

    if args.photos is not None:
        if not args.photos.is_dir():
            print(f"drape eval tryon: {args.photos} is not a folder of photos", file=sys.stderr)
            return 2
        photos = [(p.name, decode_image(p.read_bytes()).pixels) for p in photo_folder(args.photos)]
    else:
        photos = [(f"bundled-{i}", photo) for i, photo in enumerate(bundled_photos())]
    started = time.perf_counter()
    generator = load_generator(Path(args.checkpoint))
    results = evaluate(generator, args.pairs)
    out = args.out or Path("bench-results") / "eval-tryon.json"
    measured = evaluate_photos(generator, photos, out.parent / "eval-tryon-photos")
    spec = generator.spec
    print(f"{args.pairs} held-out synthetic pairs at {spec.height}x{spec.width}:")
    print(f"{'':<22}{'SSIM':>8}{'PSNR dB':>10}{'perceptual':>12}")
    for name, scores in results.items():
        print(
            f"{name:<22}{scores['ssim']:>8.3f}{scores['psnr']:>10.2f}{scores['perceptual']:>12.3f}"
        )
    print(f"\n{len(photos)} photos x {len(PHOTO_GARMENTS)} garments:")
    columns = ["score", "coverage", "connectedness", "colour_delta_e", "pattern_ssim", "sharpness",
               "face_ssim", "background_difference", "refinement_agreement"]  # fmt: skip
    rows = [{"photo": r["photo"], "garment": r["garment"], **{c: f"{r[c]:.3f}" for c in columns}}
            for r in measured["previews"]]  # fmt: skip
    rows += [{"photo": p["photo"], "garment": f"unusable: {p['reason']}"}
             for p in measured["photos"] if not p["usable"]]  # fmt: skip
    print(format_table(rows, ["photo", "garment", *columns]))
    print({k: round(v, 3) for k, v in measured["summary"].items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "pairs": args.pairs, "synthetic": results,
                               "photos": measured, "seconds": time.perf_counter() - started}, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 0
