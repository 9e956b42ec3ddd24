"""`drape generate catalog --garments N --out DIR`: a catalog feed (CSV + product shots) to
try `drape ingest` on."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    generate = sub.add_parser("generate", help="write a generated catalog feed with product shots")
    generate.add_argument("what", choices=("catalog",))
    generate.add_argument("--garments", type=int, default=500)
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.synthetic.catalog import write_generated_feed

    path = write_generated_feed(args.garments, args.out, args.seed)
    print(f"wrote {args.garments:,} garments: {path} and {args.out / 'images'}")
    print(f"next: drape ingest {path} --images {args.out / 'images'}")
    return 0
