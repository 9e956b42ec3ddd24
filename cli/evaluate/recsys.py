"""`drape eval recsys`: offline evaluation; prints a table and writes JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from drape.cli.bench import format_table, write_report


def register(sub: argparse._SubParsersAction) -> None:
    recsys = sub.add_parser("recsys", help="the recommender against popularity and ALS-only")
    recsys.add_argument("--dataset", choices=("movielens", "generated"), default="generated")
    recsys.add_argument(
        "--out", type=Path, help="JSON output (default: bench-results/eval-recsys-DATASET.json)"
    )
    recsys.add_argument(
        "--cache-dir", default=str(Path.home() / ".cache" / "drape"), help="title embeddings cache"
    )
    recsys.add_argument(
        "--no-tune", action="store_true", help="skip the ALS hyper-parameter search"
    )
    recsys.add_argument("--seed", type=int, default=0)
    recsys.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.recsys import datasets
    from drape.recsys.evaluation import K_COLD, K, evaluate

    if args.dataset == "movielens":
        try:
            data = datasets.movielens(cache_dir=Path(args.cache_dir))
        except ImportError as exc:
            print(f"drape eval: MovieLens needs the eval extra: pip install -e '.[eval]' ({exc})")
            return 2
    else:
        data = datasets.generated(seed=args.seed)
    report = evaluate(data, tune=not args.no_tune)
    columns = ["model", f"precision@{K}", f"recall@{K}", f"ndcg@{K}", f"map@{K}", f"recall@{K_COLD}",
               "coverage@10", f"cold_recall@{K_COLD}"]  # fmt: skip
    rows = [
        {c: (f"{v:.4f}" if isinstance(v, float) else v) for c, v in row.items()}
        for row in report["results"]
    ]
    print(format_table(rows, columns))
    out = write_report(
        f"eval-recsys-{data.name}",
        report["results"],
        args.out,
        {k: v for k, v in report.items() if k != "results"},
    )
    print(f"wrote {out} ({report['seconds']} s)")
    return 0
