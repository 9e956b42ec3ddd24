"""Simulated experiments that check the report's statistics do what they claim
(:mod:`drape.recsys.statistics`): every simulated experiment goes through the same functions
a report calls.

* A/A: both arms the same; a test at alpha = 0.05 must reject about 5% of the time, and the
  sample-ratio check must almost never fire.
* A known lift: the 95% intervals must cover the true lift about 95% of the time.
* CUPED: with a pre-period that correlates, the variance must fall (by about the squared
  correlation); with one that does not, nothing must change.
* Peeking: an A/A experiment looked at every day; the naive test, repeated, rejects far more
  than 5% of the time, the always-valid test at most 5%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from drape.recsys import statistics as st

ALPHA = 0.05


@dataclass(frozen=True)
class SimulationSettings:
    runs: int = 1000
    users: int = 4000  # exposed users per experiment, split 50/50 by assignment
    conversion: float = 0.10  # the control's conversion
    lift: float = 0.10  # the treatment's relative lift in the known-lift experiments
    days: int = 14  # looks in the peeking experiments
    seed: int = 0


def aa_proportions(settings: SimulationSettings) -> dict[str, float]:
    """A/A on conversion: the z-test's false-positive rate and the sample-ratio check's
    false-alarm rate, users assigned 50/50 at random."""
    rng = np.random.default_rng([settings.seed, 1])
    rejections = alarms = 0
    for _ in range(settings.runs):
        n_t = int(rng.binomial(settings.users, 0.5))
        n_c = settings.users - n_t
        s_t = int(rng.binomial(n_t, settings.conversion))
        s_c = int(rng.binomial(n_c, settings.conversion))
        rejections += st.compare_proportions(s_t, n_t, s_c, n_c).p_value < ALPHA
        alarms += st.sample_ratio([n_t, n_c], [50, 50]).mismatch
    return {"false_positive_rate": rejections / settings.runs,
            "sample_ratio_false_alarms": alarms / settings.runs}  # fmt: skip


def aa_means(settings: SimulationSettings) -> dict[str, float]:
    """A/A on revenue per exposed user (most users spend nothing, the rest a skewed amount):
    Welch's false-positive rate."""
    rng = np.random.default_rng([settings.seed, 2])
    rejections = 0
    half = settings.users // 2
    for _ in range(settings.runs):
        t, c = (_revenue(rng, half, settings.conversion) for _ in range(2))
        rejections += st.compare_means(t, c).p_value < ALPHA
    return {"false_positive_rate": rejections / settings.runs}


def _revenue(rng: np.random.Generator, n: int, conversion: float, scale: float = 1.0) -> np.ndarray:
    buys = rng.random(n) < conversion
    return np.where(buys, rng.lognormal(3.5, 0.6, n) * scale, 0.0)


def known_lift(settings: SimulationSettings) -> dict[str, float]:
    """Experiments with a true relative lift: how often the 95% intervals of the lift (delta
    method) and of the difference cover the truth, on conversion, on revenue per user and on
    purchases per exposure; and the power at that size."""
    rng = np.random.default_rng([settings.seed, 3])
    users = settings.users * 5  # large enough to see a 10% lift now and then
    half = users // 2
    p_c, p_t = settings.conversion, settings.conversion * (1 + settings.lift)
    covered = {"conversion_lift": 0, "conversion_difference": 0, "revenue_lift": 0,
               "purchases_per_exposure_lift": 0}  # fmt: skip
    significant = 0
    mean_revenue = math.exp(3.5 + 0.6**2 / 2)
    true_revenue_lift = (p_t * mean_revenue * 1.0) / (p_c * mean_revenue) - 1
    for _ in range(settings.runs):
        s_t, s_c = int(rng.binomial(half, p_t)), int(rng.binomial(half, p_c))
        comparison = st.compare_proportions(s_t, half, s_c, half)
        covered["conversion_lift"] += comparison.lift_low <= settings.lift <= comparison.lift_high
        covered["conversion_difference"] += (
            comparison.difference_low <= p_t - p_c <= comparison.difference_high
        )
        significant += comparison.p_value < ALPHA
        revenue = st.compare_means(_revenue(rng, half, p_t), _revenue(rng, half, p_c))
        covered["revenue_lift"] += revenue.lift_low <= true_revenue_lift <= revenue.lift_high
        # Purchases per exposure: users see 1-10 lists, each converting with the arm's rate.
        exposures_t, exposures_c = rng.integers(1, 11, half), rng.integers(1, 11, half)
        ratio = st.compare_ratios(rng.binomial(exposures_t, p_t), exposures_t,
                                  rng.binomial(exposures_c, p_c), exposures_c)  # fmt: skip
        covered["purchases_per_exposure_lift"] += ratio.lift_low <= settings.lift <= ratio.lift_high
    out = {f"{name}_coverage": count / settings.runs for name, count in covered.items()}
    out["conversion_power"] = significant / settings.runs
    return out


def cuped_effect(settings: SimulationSettings, correlation: float) -> dict[str, float]:
    """CUPED with a pre-period covariate of the given correlation with the metric: the mean
    share of variance it removes, how often the adjusted A/A test rejects, and the ratio of
    the adjusted to the unadjusted interval widths with a true lift."""
    rng = np.random.default_rng([settings.seed, 4, int(correlation * 1000)])
    half = settings.users // 2
    reductions, rejections, widths = [], 0, []
    for _ in range(settings.runs):
        pre = rng.normal(0, 1, 2 * half)
        noise = rng.normal(0, 1, 2 * half)
        metric = 10 + correlation * pre + math.sqrt(1 - correlation**2) * noise
        treated = np.arange(2 * half) < half
        theta = st.pooled_theta(metric, pre)
        adjusted, _, reduction = st.cuped(metric, pre, theta)
        reductions.append(reduction)
        rejections += st.compare_means(adjusted[treated], adjusted[~treated]).p_value < ALPHA
        lifted = metric + 0.1 * treated
        raw = st.compare_means(lifted[treated], lifted[~treated])
        adjusted_lifted = st.cuped(lifted, pre)[0]
        adj = st.compare_means(adjusted_lifted[treated], adjusted_lifted[~treated])
        widths.append((adj.difference_high - adj.difference_low)
                      / (raw.difference_high - raw.difference_low))  # fmt: skip
    return {"correlation": correlation, "variance_reduction": float(np.mean(reductions)),
            "expected_reduction": correlation**2,
            "aa_false_positive_rate": rejections / settings.runs,
            "interval_width_ratio": float(np.mean(widths))}  # fmt: skip


def peeking(settings: SimulationSettings) -> dict[str, float]:
    """A/A on conversion looked at every day (users arrive evenly): the share of experiments
    that some look declares significant, by the naive z-test repeated and by the always-valid
    mixture SPRT."""
    rng = np.random.default_rng([settings.seed, 5])
    daily = settings.users // settings.days // 2
    naive = always_valid = 0
    p = settings.conversion
    tau = st.MSPRT_TAU * math.sqrt(p * (1 - p))  # effects of a tenth of a user's SD
    for _ in range(settings.runs):
        s_t = np.cumsum(rng.binomial(daily, p, settings.days))
        s_c = np.cumsum(rng.binomial(daily, p, settings.days))
        n = daily * np.arange(1, settings.days + 1)
        p_t, p_c = s_t / n, s_c / n
        pooled = (s_t + s_c) / (2 * n)
        variance = np.maximum(pooled * (1 - pooled) * 2 / n, 1e-12)
        z = (p_t - p_c) / np.sqrt(variance)
        naive += bool((2 * stats.norm.sf(np.abs(z)) < ALPHA).any())
        always_valid += bool((st.msprt_p_values(p_t - p_c, variance, tau) < ALPHA).any())
    return {"looks": settings.days, "naive_false_positive_rate": naive / settings.runs,
            "always_valid_false_positive_rate": always_valid / settings.runs}  # fmt: skip


def _user_table(rng: np.random.Generator, settings: SimulationSettings, lift: float):
    """A report's per-user table for a simulated two-arm experiment: users assigned 50/50 at
    random over the days, conversion with the given relative lift in the treatment, revenue,
    lists, ratings, previews and latency alike in both arms."""
    import pandas as pd

    from drape.recsys.report import DAY_US

    n = settings.users
    treated = rng.random(n) < 0.5
    p = np.where(treated, settings.conversion * (1 + lift), settings.conversion)
    converted = rng.random(n) < p
    first = rng.integers(0, settings.days * DAY_US, n)
    rated = rng.multinomial(1, [0.05, 0.1, 0.25, 0.35, 0.25], n) * (rng.random(n) < 0.3)[:, None]
    lists = rng.integers(1, 5, n)
    attempts = lists * 8 * treated
    table = pd.DataFrame({
        "variant": np.where(treated, "treatment", "control"), "first_us": first,
        "exposures": lists, "previewed": (attempts > 0).astype(int),
        "preview_attempts": attempts, "preview_failures": rng.binomial(attempts, 0.05),
        "latency_ms": lists * rng.gamma(4, 20, n), "tried_on": rng.random(n) < 0.2,
        "carted": converted | (rng.random(n) < 0.1), "purchases": converted.astype(int),
        "converted": converted.astype(int), "revenue": _revenue(rng, n, 1.0) * converted,
        "first_purchase_us": np.where(converted, first + rng.integers(0, 3 * DAY_US, n), np.nan),
        **{f"rated_{r}": rated[:, r - 1] for r in range(1, 6)},
        "pre_converted": (rng.random(n) < 0.3).astype(int), "pre_revenue": 0.0,
    })  # fmt: skip
    table["ratings"] = rated.sum(axis=1)
    table["rating_sum"] = rated @ np.arange(1, 6)
    table["high_ratings"] = rated[:, 3:].sum(axis=1)
    return table


def aa_report(settings: SimulationSettings) -> dict[str, float]:
    """A/A experiments through the report itself (:func:`drape.recsys.report.analyse`, what
    ``drape report experiment`` runs on the database's per-user rows): conversion's
    false-positive rate, the sample-ratio check's false alarms, and how often Holm's correction
    lets any of the report's comparisons (every metric) through."""
    from drape.recsys.report import DAY_US, ReportSettings, analyse

    rng = np.random.default_rng([settings.seed, 6])
    report_settings = ReportSettings("aa", 0, settings.days * DAY_US)
    conversion = alarms = any_holm = 0
    for _ in range(settings.runs):
        report = analyse(_user_table(rng, settings, 0.0), report_settings,
                         {"control": 50, "treatment": 50})  # fmt: skip
        rows = {c["metric"]: c for c in report["comparisons"]}
        conversion += rows["conversion"]["p_value"] < ALPHA
        alarms += report["sample_ratio"]["mismatch"]
        # Previews and their failures differ by design (only the treatment has previews).
        any_holm += any(c["significant"] for name, c in rows.items()
                        if name not in ("previewed", "preview_failure_rate", "latency_ms"))  # fmt: skip
    return {"false_positive_rate": conversion / settings.runs,
            "sample_ratio_false_alarms": alarms / settings.runs,
            "holm_family_false_positive_rate": any_holm / settings.runs}  # fmt: skip


def simulate(settings: SimulationSettings) -> dict[str, dict[str, float]]:
    """Every simulation, with what each must meet."""
    return {
        "aa_report": aa_report(settings),
        "aa_conversion": aa_proportions(settings),
        "aa_revenue": aa_means(settings),
        "known_lift": known_lift(settings),
        "cuped_correlated": cuped_effect(settings, 0.7),
        "cuped_uncorrelated": cuped_effect(settings, 0.0),
        "peeking": peeking(settings),
    }


# What the simulations must show (checked by `drape eval experiments` and the tests):
# name -> (result key, low, high).
TARGETS = {
    "A/A conversion: false positives": ("aa_conversion", "false_positive_rate", 0.035, 0.065),
    "A/A: sample-ratio false alarms": ("aa_conversion", "sample_ratio_false_alarms", 0.0, 0.01),
    "A/A revenue: false positives": ("aa_revenue", "false_positive_rate", 0.035, 0.065),
    "conversion lift interval covers": ("known_lift", "conversion_lift_coverage", 0.93, 1.0),
    "revenue lift interval covers": ("known_lift", "revenue_lift_coverage", 0.93, 1.0),
    "purchases/exposure lift interval covers": (
        "known_lift", "purchases_per_exposure_lift_coverage", 0.93, 1.0),
    "CUPED (r = 0.7): variance removed": ("cuped_correlated", "variance_reduction", 0.4, 0.6),
    "CUPED (r = 0): variance removed": ("cuped_uncorrelated", "variance_reduction", -0.01, 0.01),
    "CUPED (r = 0.7): A/A false positives": (
        "cuped_correlated", "aa_false_positive_rate", 0.035, 0.065),
    "peeking daily: always-valid false positives": (
        "peeking", "always_valid_false_positive_rate", 0.0, 0.05),
    "A/A through the report: conversion false positives": (
        "aa_report", "false_positive_rate", 0.035, 0.065),
    "A/A through the report: sample-ratio false alarms": (
        "aa_report", "sample_ratio_false_alarms", 0.0, 0.01),
    "A/A through the report: any metric significant after Holm": (
        "aa_report", "holm_family_false_positive_rate", 0.0, 0.05),
    "peeking daily: naive repeated test false positives": (
        "peeking", "naive_false_positive_rate", 0.1, 1.0),
}  # fmt: skip


def check(results: dict[str, dict[str, float]], runs: int) -> list[dict[str, object]]:
    """Each target with its value and whether it is met. With fewer runs the bands widen by
    the binomial standard error (a rate's band is exact only at 1,000 runs and more)."""
    rows = []
    for name, (group, key, low, high) in TARGETS.items():
        value = results[group][key]
        slack = 0.0
        if runs < 1000 and ("rate" in key or "coverage" in key or "alarms" in key):
            slack = 2 * math.sqrt(0.05 * 0.95 / runs)
        met = low - slack <= value <= high + slack
        rows.append({"target": name, "value": value, "low": low, "high": high, "met": met})
    return rows
