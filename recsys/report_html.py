"""The experiment report as one self-contained HTML page: tables, warnings at the top, and
plots drawn as inline SVG (cumulative lift with its interval per day, the funnel per
variant, the ratings and revenue distributions), so the file opens anywhere, offline."""

from __future__ import annotations

import html
import json
import math

from drape.recsys.outcomes import FUNNEL, METRICS, metric

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
W, H, PAD = 640, 260, 48


def _fmt(value: float, share: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&#8211;"
    if share:
        return f"{value:.2%}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _metric_cell(estimate: dict[str, float], share: bool) -> str:
    return (f"{_fmt(estimate['value'], share)} <small>[{_fmt(estimate['low'], share)}, "
            f"{_fmt(estimate['high'], share)}]</small>")  # fmt: skip


def _scale(lo: float, hi: float, size: float, flip: bool = False):
    if hi <= lo:
        hi = lo + 1
    if flip:
        return lambda v: PAD + (1 - (v - lo) / (hi - lo)) * (size - 2 * PAD)
    return lambda v: PAD + (v - lo) / (hi - lo) * (size - 2 * PAD)


def _svg(body: str, title: str) -> str:
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{html.escape(title)}">{body}</svg></figure>')  # fmt: skip


def _text(x: float, y: float, label: str, anchor: str = "middle", size: int = 11) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
            f"{html.escape(label)}</text>")  # fmt: skip


def lift_plot(series: dict[str, list[dict[str, float]]]) -> str:
    """Cumulative conversion lift per day with its 95% band, one line per treatment."""
    points = [p for rows in series.values() for p in rows if math.isfinite(p["lift_low"])]
    if not points:
        return "<p>Not enough data for the cumulative lift yet.</p>"
    lo = min(min(p["lift_low"] for p in points), 0.0)
    hi = max(max(p["lift_high"] for p in points), 0.0)
    days = max(len(rows) for rows in series.values())
    x = _scale(0, max(days - 1, 1), W)
    y = _scale(lo, hi, H, flip=True)
    parts = [f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#888" '
             'stroke-dasharray="4 3"/>',
             _text(PAD - 6, y(hi) + 4, f"{hi:+.0%}", "end"), _text(PAD - 6, y(lo) + 4, f"{lo:+.0%}", "end"),
             _text(PAD - 6, y(0) + 4, "0", "end")]  # fmt: skip
    for colour, (variant, rows) in zip(COLOURS[1:], series.items(), strict=False):
        rows = [r for r in rows if math.isfinite(r["lift_low"])]
        if not rows:
            continue
        upper = " ".join(f"{x(i):.1f},{y(r['lift_high']):.1f}" for i, r in enumerate(rows))
        lower = " ".join(
            f"{x(i):.1f},{y(r['lift_low']):.1f}" for i, r in reversed(list(enumerate(rows)))
        )
        line = " ".join(f"{x(i):.1f},{y(r['lift']):.1f}" for i, r in enumerate(rows))
        parts += [
            f'<circle cx="{x(i):.1f}" cy="{y(r["lift"]):.1f}" r="3" fill="{colour}"/>'
            for i, r in enumerate(rows)
        ]
        parts += [f'<polygon class="band" points="{upper} {lower}" fill="{colour}" fill-opacity="0.2"/>',
                  f'<polyline class="lift" points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>',
                  _text(x(len(rows) - 1), y(rows[-1]["lift"]) - 8, variant, "end")]  # fmt: skip
        parts += [_text(x(0), H - PAD + 16, rows[0]["at"][:16].replace("T", " ")),
                  _text(x(len(rows) - 1), H - PAD + 16, rows[-1]["at"][:16].replace("T", " "))]  # fmt: skip
    return _svg(
        "".join(parts),
        "Cumulative conversion lift over the control at each look, with its 95% interval",
    )


def bar_plot(groups: list[str], values: dict[str, list[float]], title: str, as_share: bool) -> str:
    """Grouped bars: one group per label, one bar per variant."""
    finite = [v for row in values.values() for v in row if math.isfinite(v)]
    top = max(finite, default=1.0) or 1.0
    y = _scale(0, top, H, flip=True)
    width = (W - 2 * PAD) / max(len(groups), 1)
    bar = width * 0.8 / max(len(values), 1)
    parts = [_text(PAD - 6, y(top) + 4, f"{top:.0%}" if as_share else f"{top:.3g}", "end"),
             _text(PAD - 6, y(0) + 4, "0", "end")]  # fmt: skip
    for g, label in enumerate(groups):
        parts.append(_text(PAD + g * width + width / 2, H - PAD + 16, label))
        for v, (colour, (variant, row)) in enumerate(zip(COLOURS, values.items(), strict=False)):
            value = row[g] if math.isfinite(row[g]) else 0.0
            left = PAD + g * width + width * 0.1 + v * bar
            parts.append(f'<rect class="bar" x="{left:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                         f'height="{max(y(0) - y(value), 0):.1f}" fill="{colour}">'
                         f"<title>{html.escape(variant)}: {_fmt(value, as_share)}"
                         "</title></rect>")  # fmt: skip
    legend = "".join(
        f'<rect x="{W - PAD - 110}" y="{8 + 16 * i}" width="10" height="10" fill="{c}"/>'
        + _text(W - PAD - 95, 17 + 16 * i, name, "start")
        for i, (c, name) in enumerate(zip(COLOURS, values, strict=False))
    )
    return _svg("".join(parts) + legend, title)


def render(report: dict[str, object]) -> str:
    variants: dict[str, dict] = report["variants"]  # type: ignore[assignment]
    names = list(variants)
    esc = html.escape
    warnings = "".join(f'<div class="warning">{esc(w)}</div>' for w in report["warnings"])
    head = "".join(f"<th>{esc(v)}</th>" for v in names)
    rows = [
        f"<tr><td>{label}</td>{''.join(f'<td>{variants[v][key]:,}</td>' for v in names)}</tr>"
        for label, key in (("Exposed users", "users"), ("Exposures", "exposures"))
    ]
    for m in METRICS:
        cells = "".join(
            f"<td>{_metric_cell(variants[v]['metrics'][m.name], m.is_share)}</td>" for v in names
        )
        rows.append(f'<tr title="{esc(m.description)}"><td>{esc(m.title)}</td>{cells}</tr>')
    comparisons = []
    for c in report["comparisons"]:
        m = metric(c["metric"])
        cuped = c.get("cuped")
        cuped_cell = ("&#8211;" if not cuped else
                      f"{cuped['lift']:+.2%} <small>[{cuped['lift_low']:+.2%}, {cuped['lift_high']:+.2%}]"
                      f" variance &#8722;{cuped['variance_reduction']:.1%}</small>")  # fmt: skip
        mark = ' class="significant"' if c["significant"] else ""
        comparisons.append(
            f"<tr{mark}><td>{esc(c['variant'])}</td><td>{esc(m.title)}</td>"
            f"<td>{c['lift']:+.2%} <small>[{c['lift_low']:+.2%}, {c['lift_high']:+.2%}]</small></td>"
            f"<td>{c['p_value']:.3g}</td><td>{c['p_holm']:.3g}</td><td>{esc(c['test'])}</td>"
            f"<td>{cuped_cell}</td></tr>"
            if math.isfinite(c["lift"]) else
            f"<tr><td>{esc(c['variant'])}</td><td>{esc(m.title)}</td><td colspan=5>no lift: the "
            f"control has none; difference {_difference(c['difference'], m.is_share)}</td></tr>"
        )  # fmt: skip
    sequential = report["sequential"]
    seq_rows = "".join(
        f"<tr><td>{esc(v)}</td><td>{rows_[-1]['at']}</td><td>{rows_[-1]['lift']:+.2%}</td>"
        f"<td>{rows_[-1]['naive_p']:.3g}</td><td>{rows_[-1]['always_valid_p']:.3g}</td></tr>"
        for v, rows_ in sequential.items() if rows_
    )  # fmt: skip
    ratio = report["sample_ratio"]
    srm = ("<p>Variant shares unknown: no definition kept.</p>" if ratio is None else
           f"<p>Users per variant {ratio['observed']} against expected "
           f"{[round(e) for e in ratio['expected']]}: chi-square p = {ratio['p_value']:.3g} "
           f"({'MISMATCH' if ratio['mismatch'] else 'consistent with the assigned shares'}).</p>")  # fmt: skip
    funnel = bar_plot([metric(s).title.removeprefix("Funnel: ") for s in FUNNEL],
                      report["funnel"], "The try-on funnel: share of exposed users reaching each step",
                      as_share=True)  # fmt: skip
    ratings = bar_plot([str(r) for r in range(1, 6)],
                       {v: _shares(variants[v]["ratings"]) for v in names},
                       "Ratings: share of each value, per variant", as_share=True)  # fmt: skip
    revenue = _revenue_plot(variants)
    definitions = "".join(
        f"<details><summary>version {esc(d['version'])} (first seen {esc(d['first_seen'])})</summary>"
        f"<pre>{esc(json.dumps(d['definition'], indent=2))}</pre></details>"
        for d in report.get("definitions", [])
    )  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Experiment {esc(str(report["experiment"]))}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
small {{ color: #666; }}
tr.significant td {{ background: #eef6ee; font-weight: 600; }}
.warning {{ background: #c0392b; color: white; padding: 10px 14px; margin: 8px 0; font-weight: 700; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }}
figcaption {{ font-weight: 600; }}
</style></head><body>
<h1>Experiment <code>{esc(str(report["experiment"]))}</code></h1>
<p>{esc(str(report["since"]))} to {esc(str(report["until"]))} · control <b>{esc(str(report["control"]))}</b> ·
{report["users"]:,} exposed users · attribution window {report["attribution_days"]:g} days ·
pre-period {report["pre_period_days"]:g} days · 95% intervals · p-values Holm-adjusted across
every metric and variant</p>
{warnings}
<h2>Per variant</h2>
<table><tr><th>metric</th>{head}</tr>{"".join(rows)}</table>
<h2>Against the control</h2>
<table><tr><th>variant</th><th>metric</th><th>lift [95%]</th><th>p</th><th>Holm p</th><th>test</th>
<th>CUPED lift [95%]</th></tr>{"".join(comparisons)}</table>
<h2>Sample ratio</h2>{srm}
<h2>Sequential (conversion, looked at daily)</h2>
<p>The always-valid p-value (mixture SPRT) stays valid however often the report is read; the
naive p-value does not.</p>
<table><tr><th>variant</th><th>as of</th><th>lift</th><th>naive p</th><th>always-valid p</th></tr>{seq_rows}</table>
{lift_plot(sequential)}
<h2>Funnel and distributions</h2>
{funnel}{ratings}{revenue}
<h2>Definitions</h2>{definitions or "<p>None kept.</p>"}
</body></html>
"""


def _difference(value: float, share: bool) -> str:
    if not math.isfinite(value):
        return "not measurable (nothing to measure in one arm)"
    return f"{value * 100:+.2f} percentage points" if share else f"{value:+.3g}"


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else math.nan for c in counts]


def _revenue_plot(variants: dict[str, dict]) -> str:
    """Revenue per converted user: each variant's histogram as a share of its buyers."""
    edges = [e for v in variants.values() for e in v["revenue_histogram"]["edges"]]
    if not edges:
        return ""
    bins = 8
    lo, hi = min(edges), max(edges)
    step = (hi - lo) / bins or 1.0
    labels = [f"{lo + i * step:.0f}" for i in range(bins)]
    values = {}
    for name, v in variants.items():
        hist = v["revenue_histogram"]
        counts = [0.0] * bins
        for left, count in zip(hist["edges"], hist["counts"], strict=False):
            counts[min(int((left - lo) / step), bins - 1)] += count
        values[name] = _shares([int(c) for c in counts])
    return bar_plot(
        labels, values, "Revenue per converted user (from), share of buyers", as_share=True
    )
