"""`drape eval recsys`: offline evaluation; prints a table and writes JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.bench import format_table, write_report


def run_eval(args: argparse.Namespace) -> int:
    from recsys import datasets
    from recsys.evaluation import K_COLD, K, evaluate

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
