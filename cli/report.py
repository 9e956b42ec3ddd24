"""`drape report experiment NAME`: an experiment's result for analysts, from the event store
the events service writes (see :mod:`drape.recsys.report`): a table on the terminal, and
optionally the whole report as JSON and as one self-contained HTML page with plots.

Exit status: 0, or 3 when the report carries a warning (a sample-ratio mismatch, a guardrail
breached, a definition change, no exposures), so a scheduled job cannot miss it."""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from drape.cli.options import add_config_argument


def _time(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="analysts' reports: an experiment's result")
    kinds = report.add_subparsers(dest="kind", required=True, metavar="KIND")
    experiment = kinds.add_parser(
        "experiment", help="per-variant metrics, lift, tests, CUPED, sequential view, plots"
    )
    experiment.add_argument("name", help="the experiment's name (as in the experiments file)")
    experiment.add_argument("--since", type=_time, help="start (ISO 8601, UTC; default: all)")
    experiment.add_argument("--until", type=_time, help="end, exclusive (default: now)")
    experiment.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    experiment.add_argument("--html", type=Path, metavar="FILE", help="write the HTML page")
    experiment.add_argument("--store-url", help="the event store (default: the configuration's)")
    experiment.add_argument("--control", default="", help="the control variant (default: control)")
    experiment.add_argument("--attribution-days", type=float, default=7.0,
                            help="how long after a garment was shown a purchase of it counts")  # fmt: skip
    experiment.add_argument("--pre-period-days", type=float, default=14.0,
                            help="the pre-period CUPED reads, before each user's first exposure")  # fmt: skip
    add_config_argument(experiment)
    experiment.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.recsys.report import ReportSettings, experiment_report, report_json
    from drape.recsys.report_html import render
    from drape.services.events.store import open_event_store
    from drape.services.runtime.config import load_config

    url = args.store_url or load_config(args.config).events_store_url()
    until = args.until if args.until is not None else time.time_ns() // 1000
    settings = ReportSettings(args.name, args.since or 0, until, args.attribution_days,
                              args.pre_period_days, args.control)  # fmt: skip
    if settings.since_us >= settings.until_us:
        print("drape report experiment: --since must be before --until", file=sys.stderr)
        return 2
    store = open_event_store(url)
    try:
        report = experiment_report(store, settings)
    finally:
        store.close()
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report_json(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render(report))
        print(f"wrote {args.html}")
    return 3 if report["warnings"] else 0


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.1%}"


def _value(value: float, share: bool) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.2%}" if share else f"{value:,.3g}"


def format_report(report: dict) -> str:
    """The report as terminal tables: warnings first, then per-variant metrics with 95%
    intervals, then each treatment against the control."""
    from drape.cli.bench import format_table
    from drape.recsys.outcomes import METRICS, metric

    lines = [f"experiment {report['experiment']}: {report['since']} to {report['until']}, "
             f"{report['users']:,} exposed users, control {report['control']!r}"]  # fmt: skip
    lines += [f"!! {w}" for w in report["warnings"]]
    variants = report["variants"]
    rows = [{"metric": "exposed users", **{v: f"{x['users']:,}" for v, x in variants.items()}}]
    for m in METRICS:
        rows.append({"metric": m.title, **{
            v: f"{_value(e['value'], m.is_share)} [{_value(e['low'], m.is_share)}, "
               f"{_value(e['high'], m.is_share)}]"
            for v, x in variants.items() for e in [x["metrics"][m.name]]}})  # fmt: skip
    lines += ["", format_table(rows, ["metric", *variants])]
    comparisons = [
        {"variant": c["variant"], "metric": metric(c["metric"]).title,
         "lift [95%]": f"{_pct(c['lift'])} [{_pct(c['lift_low'])}, {_pct(c['lift_high'])}]",
         "p": f"{c['p_value']:.3g}", "Holm p": f"{c['p_holm']:.3g}", "test": c["test"],
         "CUPED lift": "" if not c["cuped"] else
             f"{_pct(c['cuped']['lift'])} (variance -{c['cuped']['variance_reduction']:.1%})",
         "": "*" if c["significant"] else ""}
        for c in report["comparisons"]
    ]  # fmt: skip
    if comparisons:
        lines += ["", format_table(comparisons, ["variant", "metric", "lift [95%]", "p", "Holm p",
                                                 "test", "CUPED lift", ""])]  # fmt: skip
    ratio = report["sample_ratio"]
    if ratio:
        lines.append(f"\nsample ratio: {ratio['observed']} users, chi-square p = "
                     f"{ratio['p_value']:.3g}{' MISMATCH' if ratio['mismatch'] else ''}")  # fmt: skip
    for v, looks in report["sequential"].items():
        if looks:
            last = looks[-1]
            lines.append(f"sequential ({v}, {len(looks)} looks): conversion lift "
                         f"{_pct(last['lift'])}, always-valid p = {last['always_valid_p']:.3g} "
                         f"(naive p = {last['naive_p']:.3g})")  # fmt: skip
    lines.append("* significant at 5% after Holm's correction across every metric and variant")
    return "\n".join(lines)
