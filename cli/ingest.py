"""`drape ingest FEED --images DIR`: a catalog feed into Drape (see :mod:`drape.catalog.ingest`):
validated, images stored content-addressed, embedded in-process or through a running
features service, indexed and published. Idempotent; skipped rows are listed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drape.cli.options import add_config_argument
from drape.services.runtime.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="validate, store, embed and index a catalog feed")
    ingest.add_argument("catalog", type=Path, help="catalog feed (.csv, .tsv or .parquet)")
    ingest.add_argument(
        "--images", type=Path, required=True, help="folder the image paths are relative to"
    )
    add_config_argument(ingest)
    ingest.add_argument("--data-dir", type=Path, help="override the config's data_dir")
    ingest.add_argument(
        "--features",
        help="embed through the features service at this address (default: in-process)",
    )
    ingest.add_argument(
        "--report", type=Path, help="JSON report (default: <data_dir>/ingest-report.json)"
    )
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from drape.catalog.embedders import inprocess_embedder, service_embedder
    from drape.catalog.ingest import ingest

    config = load_config(args.config)
    if args.data_dir:
        config.data_dir = args.data_dir.absolute()
    if args.features:
        embedder, version, close = service_embedder(args.features, config.client_tls)
    else:
        embedder, version, close = inprocess_embedder(config)
    try:
        report = ingest(
            args.catalog,
            args.images,
            config,
            embedder,
            version,
            progress=lambda items, stage: tqdm(items, desc=stage, file=sys.stderr),
            batch_size=config.features.batch_size,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"drape ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        close()
    print(
        f"ingested {report.ingested:,} of {report.rows:,} rows "
        f"(embedded {report.embedded:,}, reused {report.reused:,}, skipped {len(report.problems):,}) "
        f"with {version}"
    )
    for problem in report.problems[:20]:
        print(f"  row {problem.row} {problem.garment_id or '(no id)'}: {problem.reason}")
    if len(report.problems) > 20:
        print(f"  ... and {len(report.problems) - 20} more (see the JSON report)")
    out = args.report or config.data_dir / "ingest-report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=2))
    print(f"catalog {config.catalog_path()}; embeddings {config.embeddings_path()}; report {out}")
    return 0 if report.ingested else 1
