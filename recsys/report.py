"""``drape report experiment``: an experiment's result, from the exposure log and the events.

The database does the heavy part, per user: who was exposed in which variant and when
(``exposure_arms``), what they were shown (``exposure_items``), and what they did with it
(``events``), in four grouped queries that never bring raw events into Python. What comes back
is one row per exposed user; the per-variant figures, the tests and the plots are computed from
those rows with :mod:`drape.recsys.statistics`, the same functions the simulations of
``drape eval experiments`` prove. What each metric means is in :mod:`drape.recsys.outcomes`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from drape.recsys import statistics as st
from drape.recsys.outcomes import FUNNEL, METRICS, USER_COLUMNS, Metric, metric

DAY_US = 86_400_000_000
ALPHA = 0.05


@dataclass(frozen=True)
class ReportSettings:
    experiment: str
    since_us: int
    until_us: int
    attribution_days: float = 7.0
    pre_period_days: float = 14.0
    control: str = ""  # empty: the variant named "control", else the first defined


_WINDOW = "a.experiment = ? AND a.served_at_us >= ? AND a.served_at_us < ?"
_FAILED = "('failed', 'unavailable', 'timed_out')"
# Per user: the variant (and how many variants, to drop users seen in more than one), the
# first exposure and the number of lists.
_USERS = f"""
SELECT a.user_id, MIN(a.variant), COUNT(DISTINCT a.variant), MIN(a.served_at_us), COUNT(*)
FROM exposure_arms a WHERE {_WINDOW} GROUP BY a.user_id"""
# Per user: previews shown, attempted and failed, and the gateway's latency.
_LISTS = f"""
SELECT a.user_id, SUM(x.latency_ms)
FROM exposure_arms a JOIN exposures x ON x.recommendation_id = a.recommendation_id
WHERE {_WINDOW} GROUP BY a.user_id"""
_PREVIEWS = f"""
SELECT a.user_id,
  MAX(CASE WHEN i.preview_status IN ('ok', 'cached') THEN 1 ELSE 0 END),
  SUM(CASE WHEN i.preview_status <> 'skipped' THEN 1 ELSE 0 END),
  SUM(CASE WHEN i.preview_status IN {_FAILED} THEN 1 ELSE 0 END)
FROM exposure_arms a JOIN exposure_items i ON i.recommendation_id = a.recommendation_id
WHERE {_WINDOW} GROUP BY a.user_id"""
# Per user: what they did with garments they were shown, within the attribution window.
# CROSS JOIN (with the join condition in WHERE) keeps SQLite scanning the events once, looking
# each one up in the small table of shown garments, instead of the other way round; the unary
# plus on the time keeps it from reading the whole table through the time index instead of
# scanning it in order (three times faster over ten million events).
_OUTCOMES = f"""
WITH shown AS (
  SELECT i.user_id, i.garment_id, MIN(i.served_at_us) AS first_us, MAX(i.served_at_us) AS last_us
  FROM exposure_arms a JOIN exposure_items i ON i.recommendation_id = a.recommendation_id
  WHERE {_WINDOW} GROUP BY i.user_id, i.garment_id)
SELECT s.user_id,
  MAX(CASE WHEN e.type = 'tryon_view' THEN 1 ELSE 0 END),
  MAX(CASE WHEN e.type = 'add_to_cart' THEN 1 ELSE 0 END),
  SUM(CASE WHEN e.type = 'purchase' THEN 1 ELSE 0 END),
  SUM(CASE WHEN e.type = 'purchase' THEN e.value_minor ELSE 0 END),
  MIN(CASE WHEN e.type = 'purchase' THEN e.occurred_at_us END)
FROM events e CROSS JOIN shown s
WHERE s.user_id = e.user_id AND s.garment_id = e.garment_id
  AND e.type IN ('tryon_view', 'add_to_cart', 'purchase')
  AND e.occurred_at_us >= s.first_us AND e.occurred_at_us <= s.last_us + ?
  AND +e.occurred_at_us < ?
GROUP BY s.user_id"""
_AFTER = "e.type = 'rating' AND e.occurred_at_us >= x.first_us"
_BEFORE = "e.type = 'purchase' AND e.occurred_at_us < x.first_us"
# Per user: ratings from the first exposure on (counts of each value, for Mann-Whitney), and
# purchases in the pre-period (CUPED's covariates).
_RATINGS_AND_BEFORE = f"""
WITH exposed AS (
  SELECT a.user_id, MIN(a.served_at_us) AS first_us FROM exposure_arms a
  WHERE {_WINDOW} GROUP BY a.user_id)
SELECT x.user_id,
  {", ".join(f"SUM(CASE WHEN {_AFTER} AND e.rating = {r} THEN 1 ELSE 0 END)" for r in range(1, 6))},
  MAX(CASE WHEN {_BEFORE} THEN 1 ELSE 0 END),
  SUM(CASE WHEN {_BEFORE} THEN e.value_minor ELSE 0 END)
FROM events e CROSS JOIN exposed x
WHERE x.user_id = e.user_id AND e.type IN ('rating', 'purchase')
  AND +e.occurred_at_us < ? AND e.occurred_at_us >= x.first_us - ?
GROUP BY x.user_id"""


def _frame(rows: list[tuple[object, ...]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", *columns]).set_index("user_id")


def user_table(store, settings: ReportSettings) -> tuple[pd.DataFrame, int]:
    """One row per user exposed to the experiment in the window (USER_COLUMNS, the variant,
    the first exposure and the first attributed purchase), and the number of users dropped
    for having been exposed to more than one variant."""
    window = (settings.experiment, settings.since_us, settings.until_us)
    users = _frame(store.query(_USERS, window), ["variant", "variants", "first_us", "exposures"])
    if users.empty:
        return pd.DataFrame(columns=["variant", "first_us", *USER_COLUMNS]), 0
    lists = _frame(store.query(_LISTS, window), ["latency_ms"])
    previews = _frame(store.query(_PREVIEWS, window),
                      ["previewed", "preview_attempts", "preview_failures"])  # fmt: skip
    window_us = int(settings.attribution_days * DAY_US)
    outcomes = _frame(
        store.query(_OUTCOMES, (*window, window_us, settings.until_us)),
        ["tried_on", "carted", "purchases", "revenue", "first_purchase_us"],
    )
    ratings = _frame(
        store.query(_RATINGS_AND_BEFORE,
                    (*window, settings.until_us, int(settings.pre_period_days * DAY_US))),
        [*(f"rated_{r}" for r in range(1, 6)), "pre_converted", "pre_revenue"],
    )  # fmt: skip
    table = users.join([lists, previews, outcomes, ratings], how="left")
    mixed = int((table["variants"] > 1).sum())
    table = table[table["variants"] == 1].drop(columns="variants")
    table["first_purchase_us"] = table["first_purchase_us"].astype("float64")
    table = table.fillna({c: 0 for c in table.columns if c != "first_purchase_us"})
    table["converted"] = (table["purchases"] > 0).astype(np.int64)
    table["revenue"] = table["revenue"].astype(np.float64) / 100
    table["pre_revenue"] = table["pre_revenue"].astype(np.float64) / 100
    rated = table[[f"rated_{r}" for r in range(1, 6)]].to_numpy(np.float64)
    table["ratings"] = rated.sum(axis=1)
    table["rating_sum"] = rated @ np.arange(1, 6)
    table["high_ratings"] = rated[:, 3:].sum(axis=1)
    return table, mixed


def _estimate(m: Metric, rows: pd.DataFrame) -> st.Estimate:
    values = rows[m.numerator].to_numpy(np.float64)
    if m.kind == "proportion":
        return st.proportion(int(values.sum()), len(values))
    if m.kind == "mean":
        return st.mean(values)
    return st.ratio(values, rows[m.denominator].to_numpy(np.float64))


def _compare(m: Metric, t: pd.DataFrame, c: pd.DataFrame) -> st.Comparison:
    x_t, x_c = t[m.numerator].to_numpy(np.float64), c[m.numerator].to_numpy(np.float64)
    if m.kind == "proportion":
        return st.compare_proportions(int(x_t.sum()), len(x_t), int(x_c.sum()), len(x_c))
    if m.kind == "mean":
        return st.compare_means(x_t, x_c)
    return st.compare_ratios(x_t, t[m.denominator].to_numpy(np.float64),
                             x_c, c[m.denominator].to_numpy(np.float64))  # fmt: skip


def _ratings(rows: pd.DataFrame) -> np.ndarray:
    counts = rows[[f"rated_{r}" for r in range(1, 6)]].sum().to_numpy(np.int64)
    return np.repeat(np.arange(1, 6), counts)


def _cuped(m: Metric, table: pd.DataFrame, t: str, c: str) -> dict[str, float] | None:
    """The comparison on CUPED-adjusted values (theta pooled over both arms) and the share
    of variance the adjustment removed."""
    if m.covariate is None:
        return None
    rows = table[table["variant"].isin([t, c])]
    values = rows[m.numerator].to_numpy(np.float64)
    covariate = rows[m.covariate].to_numpy(np.float64)
    if len(values) < 4:
        return None
    adjusted, theta, reduction = st.cuped(values, covariate)
    treated = (rows["variant"] == t).to_numpy()
    comparison = st.compare_means(adjusted[treated], adjusted[~treated])
    return {"theta": theta, "variance_reduction": reduction, **comparison.as_dict()}


def sequential(table: pd.DataFrame, treatment: str, control: str, since_us: int,
               until_us: int) -> list[dict[str, float]]:  # fmt: skip
    """Conversion looked at daily (twelve even looks when the data span less than four days):
    at each look, the users exposed by then and
    whether they had converted by then; the lift with its 95% interval, the naive z-test's
    p-value and the always-valid mixture-SPRT p-value (valid however often one looks)."""
    rows = table[table["variant"].isin([treatment, control])]
    if rows.empty:
        return []
    start = int(rows["first_us"].min())
    if until_us - start >= 4 * DAY_US:  # daily, at midnights after the window's start
        start -= (start - since_us) % DAY_US
        looks = [*range(start + DAY_US, until_us, DAY_US), until_us]
    else:  # a short experiment (or the demo's minutes): twelve even looks
        looks = [start + (until_us - start) * (i + 1) // 12 for i in range(12)]
    first = rows["first_us"].to_numpy(np.int64)
    bought = rows["first_purchase_us"].to_numpy(np.float64)
    treated = (rows["variant"] == treatment).to_numpy()
    out, differences, variances = [], [], []
    for look in looks:
        exposed = first < look
        converted = exposed & (bought < look)
        n_t, n_c = int((exposed & treated).sum()), int((exposed & ~treated).sum())
        s_t, s_c = int((converted & treated).sum()), int((converted & ~treated).sum())
        if min(n_t, n_c) < 2 or s_c == 0:
            continue
        comparison = st.compare_proportions(s_t, n_t, s_c, n_c)
        p_t, p_c = s_t / n_t, s_c / n_c
        differences.append(p_t - p_c)
        variances.append(max(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c, 1e-12))
        out.append({"at": _iso(look), "users_treatment": n_t, "users_control": n_c,
                    "lift": comparison.lift, "lift_low": comparison.lift_low,
                    "lift_high": comparison.lift_high, "naive_p": comparison.p_value})  # fmt: skip
    if out:
        pooled = float(rows["converted"].mean())
        tau = st.MSPRT_TAU * math.sqrt(max(pooled * (1 - pooled), 1e-12))
        for row, p in zip(out, st.msprt_p_values(np.array(differences), np.array(variances), tau),
                          strict=True):  # fmt: skip
            row["always_valid_p"] = float(p)
    return out


def _iso(us: int) -> str:
    return (
        datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def definitions(store, experiment: str) -> list[dict[str, object]]:
    rows = store.query("SELECT version, definition, first_seen_us FROM experiment_definitions "
                       "WHERE experiment = ? ORDER BY first_seen_us", (experiment,))  # fmt: skip
    return [{"version": v, "definition": json.loads(d), "first_seen": _iso(int(t))}
            for v, d, t in rows]  # fmt: skip


def _histogram(values: np.ndarray, bins: int = 12) -> dict[str, list[float]]:
    positive = values[values > 0]
    if positive.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(positive, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def analyse(table: pd.DataFrame, settings: ReportSettings, shares: dict[str, float],
            versions: list[str] | None = None, mixed: int = 0) -> dict[str, object]:  # fmt: skip
    """The report from the per-user table: per variant every metric with its 95% interval;
    per treatment the lift over the control, its test and Holm-adjusted p-value, CUPED where a
    covariate exists; the sample-ratio check; the daily sequential view of conversion; the
    funnel and the distributions for the plots; and every warning an analyst must see."""
    names = list(shares) or sorted(table["variant"].unique())
    present = [v for v in names if (table["variant"] == v).any()]
    control = settings.control or ("control" if "control" in names or not names else names[0])
    warnings = []
    by_variant = {v: table[table["variant"] == v] for v in names}
    variants = {
        v: {"users": len(rows), "exposures": int(rows["exposures"].sum()),
            "metrics": {m.name: _estimate(m, rows).as_dict() for m in METRICS},
            "ratings": [int(rows[f"rated_{r}"].sum()) for r in range(1, 6)],
            "revenue_histogram": _histogram(rows["revenue"].to_numpy(np.float64))}
        for v, rows in by_variant.items()
    }  # fmt: skip
    comparisons = []
    if control not in present:
        warnings.append(f"no exposed users in the control {control!r}: nothing to compare")
    for v in present:
        if v == control or control not in present:
            continue
        t, c = by_variant[v], by_variant[control]
        if min(len(t), len(c)) < 2:
            continue
        for m in METRICS:
            comparison = _compare(m, t, c).as_dict()
            if m.test == "Mann-Whitney U":
                comparison["p_value"] = st.compare_ratings(_ratings(t), _ratings(c))
                comparison["test"] = m.test
            comparisons.append({"variant": v, "metric": m.name, **comparison,
                                "cuped": _cuped(m, table, v, control)})  # fmt: skip
    for row, adjusted in zip(comparisons, st.holm([_finite(r["p_value"]) for r in comparisons]),
                             strict=True):  # fmt: skip
        row["p_holm"] = adjusted
        m = metric(row["metric"])
        row["significant"] = adjusted < ALPHA
        worse = row["difference"] > 0 if m.lower_is_better else row["difference"] < 0
        if m.guardrail and row["significant"] and worse:
            warnings.append(f"GUARDRAIL: {m.title.removeprefix('Guardrail: ')} is significantly "
                            f"worse in {row['variant']!r} (lift {row['lift']:+.1%}, Holm p = "
                            f"{adjusted:.3g})")  # fmt: skip
    counts = [variants[v]["users"] for v in names]
    ratio = st.sample_ratio(counts, [shares.get(v, 1.0) for v in names]) if shares else None
    if ratio is not None and ratio.mismatch:
        warnings.insert(0, ratio.warning())
    if mixed:
        warnings.append(f"{mixed} users were exposed to more than one variant (the allocation "
                        "changed, or assignment is broken) and are left out")  # fmt: skip
    if versions and len(versions) > 1:
        warnings.append(f"the experiment's definition changed during the window (versions "
                        f"{', '.join(versions)}): results mix them")  # fmt: skip
    return {
        "experiment": settings.experiment,
        "since": _iso(settings.since_us),
        "until": _iso(settings.until_us),
        "attribution_days": settings.attribution_days,
        "pre_period_days": settings.pre_period_days,
        "control": control,
        "users": len(table),
        "variants": variants,
        "comparisons": comparisons,
        "sample_ratio": None if ratio is None else {
            "observed": list(ratio.observed), "expected": list(ratio.expected),
            "p_value": ratio.p_value, "mismatch": ratio.mismatch},
        "sequential": {v: sequential(table, v, control, settings.since_us, settings.until_us)
                       for v in present if v != control and control in present},
        "funnel": {v: [variants[v]["metrics"][step]["value"] for step in FUNNEL] for v in names},
        "warnings": warnings,
        "excluded_users": mixed,
    }  # fmt: skip


def _finite(p: float) -> float:
    return p if np.isfinite(p) else 1.0


def _plain(value: object) -> object:
    """``value`` with numpy scalars as Python numbers and NaN or infinity (a statistic that
    does not exist yet, such as a lift over a control with no conversions) as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def report_json(report: dict[str, object], indent: int | None = None) -> str:
    """The report as standard JSON (what a browser's JSON.parse and every other reader take)."""
    return json.dumps(_plain(report), indent=indent, allow_nan=False)


def experiment_report(store, settings: ReportSettings) -> dict[str, object]:
    """Queries the store and analyses: the whole report, as a JSON-ready dictionary."""
    table, mixed = user_table(store, settings)
    kept = definitions(store, settings.experiment)
    seen = [str(v) for (v,) in store.query(
        "SELECT DISTINCT version FROM exposure_arms a WHERE " + _WINDOW,
        (settings.experiment, settings.since_us, settings.until_us))]  # fmt: skip
    latest = next((d for d in reversed(kept) if d["version"] in seen), kept[-1] if kept else None)
    shares = {}
    if latest is not None:
        shares = {v["name"]: float(v["share"]) for v in latest["definition"]["variants"]}
    report = analyse(table, settings, shares, seen, mixed)
    report["definitions"] = [d for d in kept if d["version"] in seen] or kept
    if not kept:
        report["warnings"].append(f"no definition of {settings.experiment!r} is kept: variant "
                                  "shares unknown, sample ratio not checked")  # fmt: skip
    if table.empty:
        report["warnings"].append(f"no user was exposed to {settings.experiment!r} between "
                                  f"{report['since']} and {report['until']}")  # fmt: skip
    return report
