"""`drape eval recsys`: offline evaluation; prints a table and writes JSON.

On a built-in dataset (MovieLens, the generated catalog, the generated replenishment
store) or on a team's own export: ``--events FILE [--items FILE]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drape.cli.bench import format_table, write_report
from drape.cli.options import add_event_file_arguments, event_columns, event_weights, item_columns

DATASETS = ("generated", "movielens", "replenishment")
EVENT_TYPES = ("impression", "view", "tryon_view", "add_to_cart", "purchase", "rating")


def register(sub: argparse._SubParsersAction) -> None:
    recsys = sub.add_parser("recsys", help="the recommender against popularity, ALS and baselines")
    recsys.add_argument("--dataset", choices=DATASETS, default="generated")
    add_event_file_arguments(recsys)
    recsys.add_argument(
        "--split", choices=("last_basket", "per_user", "global"), default="last_basket",
        help="with --events: each user's last basket out (default), each user's own 80/10/10, "
        "or one 80/10/10 cut by time; a basket is never split",
    )  # fmt: skip
    recsys.add_argument(
        "--relevant", default="", metavar="TYPES",
        help="with --events: event types that count as test positives (default: purchase when "
        "there are purchases, else every type)",
    )  # fmt: skip
    recsys.add_argument(
        "--exclude-after", default="purchase", metavar="TYPES",
        help="with --events: the repeat policy, types after which an item is not recommended "
        "again ('none' for none; replenishable items come back when due)",
    )  # fmt: skip
    recsys.add_argument(
        "--replenishable", default="auto", metavar="auto|none|all|CATEGORIES",
        help="with --events: replenishable categories (auto: the items file's column, else "
        "inferred from repeat purchases)",
    )  # fmt: skip
    recsys.add_argument(
        "--half-life-days", type=float, default=180.0,
        help="with --events: age at which an interaction counts half, from the end of training",
    )  # fmt: skip
    recsys.add_argument(
        "--cold-share", type=float, default=None,
        help="share of items held out as cold (default 0.1 with item vectors, else 0)",
    )  # fmt: skip
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


def _types(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "none":
        return ()
    return tuple(t.strip().lower() for t in value.split(",") if t.strip())


def _dataset(args: argparse.Namespace):
    from drape.recsys import datasets

    if args.events is not None:
        from drape.services.runtime.config import EventWeights

        options = datasets.FileOptions(
            weights=event_weights(args, EventWeights().model_dump()),
            columns=event_columns(args),
            item_columns=item_columns(args),
            split=args.split,
            relevant=_types(args.relevant),
            half_life_days=args.half_life_days,
            exclude_after=_types(args.exclude_after),
            replenishable=args.replenishable,
            drop_invalid=args.drop_invalid,
            cold_share=args.cold_share,
        )
        data, notes = datasets.from_files(args.events, args.items, options)
        for note in notes:
            print(f"  {note}")
        return data
    if args.items is not None:
        raise ValueError("--items goes with --events")
    if args.dataset == "movielens":
        return datasets.movielens(cache_dir=Path(args.cache_dir))
    if args.dataset == "replenishment":
        return datasets.replenishment(seed=args.seed)
    return datasets.generated(seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from drape.recsys.evaluation import K_COLD, K, evaluate
    from drape.recsys.loading import DataError

    try:
        data = _dataset(args)
        report = evaluate(data, tune=not args.no_tune, progress=sys.stderr.isatty())
    except ImportError as exc:
        print(f"drape eval: MovieLens needs the eval extra: pip install -e '.[eval]' ({exc})")
        return 2
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"drape eval recsys: {exc}")
        return 2
    columns = ["model", f"precision@{K}", f"recall@{K}", f"ndcg@{K}", f"map@{K}", f"recall@{K_COLD}",
               "coverage@10", f"cold_recall@{K_COLD}"]  # fmt: skip
    rows = [
        {c: (f"{v:.4f}" if isinstance(v, float) else v) for c, v in row.items()}
        for row in report["results"]
    ]
    print(format_table(rows, [c for c in columns if any(c in row for row in rows)]))
    out = write_report(
        f"eval-recsys-{data.name}",
        report["results"],
        args.out,
        {k: v for k, v in report.items() if k != "results"},
    )
    print(f"{report['test_users']:,} test users; wrote {out} ({report['seconds']} s)")
    return 0
