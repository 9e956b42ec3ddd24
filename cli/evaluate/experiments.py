"""`drape eval experiments --runs N`: simulated experiments through the report's statistics
(:mod:`drape.recsys.simulation`); prints each target with its value, writes JSON, and exits
1 when a target is missed."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from drape.cli.bench import format_table


def register(sub: argparse._SubParsersAction) -> None:
    experiments = sub.add_parser(
        "experiments",
        help="simulated A/A, known-lift, CUPED and peeking experiments through the statistics",
    )
    experiments.add_argument("--runs", type=int, default=1000, help="experiments per simulation")
    experiments.add_argument("--users", type=int, default=4000, help="exposed users per experiment")
    experiments.add_argument("--seed", type=int, default=0)
    experiments.add_argument(
        "--out", type=Path, help="JSON output (default: bench-results/eval-experiments.json)"
    )
    experiments.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.recsys.simulation import SimulationSettings, check, simulate

    if args.runs < 10 or args.users < 100:
        print("drape eval experiments: use at least 10 runs of 100 users")
        return 2
    started = time.perf_counter()
    settings = SimulationSettings(runs=args.runs, users=args.users, seed=args.seed)
    results = simulate(settings)
    rows = check(results, args.runs)
    print(format_table(
        [{"target": r["target"], "value": f"{r['value']:.4f}", "band": f"[{r['low']}, {r['high']}]",
          "met": "yes" if r["met"] else "NO"} for r in rows],
        ["target", "value", "band", "met"],
    ))  # fmt: skip
    out = args.out or Path("bench-results/eval-experiments.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": asdict(settings), "results": results, "targets": rows,
                               "seconds": time.perf_counter() - started}, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 0 if all(r["met"] for r in rows) else 1
