"""The experiment statistics against SciPy and statsmodels on the same data, the hand-written
ones against their definitions, and a small run of the simulations that prove them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from drape.recsys import statistics as st
from drape.recsys.simulation import SimulationSettings, check, simulate


def test_a_share_and_its_interval_are_statsmodels_wilson():
    estimate = st.proportion(130, 1000)
    low, high = proportion_confint(130, 1000, alpha=0.05, method="wilson")
    assert estimate.value == 0.13 and estimate.n == 1000
    assert (estimate.low, estimate.high) == pytest.approx((low, high))
    assert math.isnan(st.proportion(0, 0).value)


def test_a_mean_and_its_interval_are_the_t_interval():
    values = np.random.default_rng(0).lognormal(3, 1, 500)
    estimate = st.mean(values)
    low, high = stats.t.interval(0.95, len(values) - 1, values.mean(), stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high))


def test_two_shares_use_statsmodels_z_test_and_a_delta_method_lift():
    comparison = st.compare_proportions(120, 1000, 100, 1000)
    assert comparison.p_value == pytest.approx(proportions_ztest([120, 100], [1000, 1000])[1])
    assert comparison.difference == pytest.approx(0.02) and comparison.lift == pytest.approx(0.2)
    # The lift's interval by simulation of the two estimates (the delta method's claim).
    rng = np.random.default_rng(1)
    draws = rng.binomial(1000, 0.12, 200_000) / rng.binomial(1000, 0.10, 200_000) - 1
    assert comparison.lift_high - comparison.lift_low == pytest.approx(
        np.percentile(draws, 97.5) - np.percentile(draws, 2.5), rel=0.08
    )
    assert st.compare_proportions(0, 10, 0, 10).p_value == 1.0


def test_two_means_use_welch_from_scipy():
    rng = np.random.default_rng(2)
    t, c = rng.normal(10.5, 3, 400), rng.normal(10, 1, 900)
    comparison = st.compare_means(t, c)
    assert comparison.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False).pvalue)
    interval = stats.ttest_ind(t, c, equal_var=False).confidence_interval(0.95)
    assert (comparison.difference_low, comparison.difference_high) == pytest.approx(
        (interval.low, interval.high)
    )


def test_a_ratio_metric_variance_is_the_delta_method():
    rng = np.random.default_rng(3)
    exposures = rng.integers(1, 11, 2000)
    purchases = rng.binomial(exposures, 0.1)
    ratio, variance = st.ratio_of_sums(purchases, exposures)
    assert ratio == pytest.approx(purchases.sum() / exposures.sum())
    # Against the bootstrap over users.
    boot = []
    for _ in range(2000):
        pick = rng.integers(0, 2000, 2000)
        boot.append(purchases[pick].sum() / exposures[pick].sum())
    assert math.sqrt(variance) == pytest.approx(np.std(boot), rel=0.08)


def test_ratings_use_mann_whitney_from_scipy():
    rng = np.random.default_rng(4)
    t, c = rng.integers(1, 6, 300), rng.integers(2, 6, 300)
    assert st.compare_ratings(t, c) == pytest.approx(
        stats.mannwhitneyu(t, c, alternative="two-sided").pvalue
    )
    assert st.compare_ratings(np.array([]), c) == 1.0


def test_the_sample_ratio_check_is_scipys_chi_square_and_warns_loudly():
    fine = st.sample_ratio([5030, 4970], [50, 50])
    assert fine.p_value == pytest.approx(stats.chisquare([5030, 4970], [5000, 5000]).pvalue)
    assert not fine.mismatch and fine.warning() == ""
    broken = st.sample_ratio([5300, 4700], [50, 50])
    assert broken.mismatch and "SAMPLE RATIO MISMATCH" in broken.warning()
    assert st.sample_ratio([900, 100], [90, 10]).p_value == pytest.approx(1.0)


def test_cuped_removes_the_variance_the_covariate_explains_and_keeps_the_mean():
    rng = np.random.default_rng(5)
    pre = rng.normal(0, 1, 20_000)
    metric = 5 + 0.8 * pre + 0.6 * rng.normal(0, 1, 20_000)
    adjusted, theta, reduction = st.cuped(metric, pre)
    assert theta == pytest.approx(np.polyfit(pre, metric, 1)[0], rel=1e-6)  # the OLS slope
    assert reduction == pytest.approx(np.corrcoef(metric, pre)[0, 1] ** 2, rel=1e-6)
    assert adjusted.mean() == pytest.approx(metric.mean())
    _, _, none = st.cuped(metric, rng.normal(0, 1, 20_000))
    assert abs(none) < 0.002


def test_the_always_valid_p_value_is_the_mixture_likelihood_ratio():
    d, v, tau = np.array([0.0, 0.01, 0.03, 0.0]), np.array([4e-4, 2e-4, 1e-4, 5e-5]), 0.02
    p = st.msprt_p_values(d, v, tau)
    lam = np.sqrt(v / (v + tau**2)) * np.exp(tau**2 * d**2 / (2 * v * (v + tau**2)))
    assert p == pytest.approx(np.minimum(1, 1 / np.maximum.accumulate(lam)))
    assert (np.diff(p) <= 0).all()  # once evidence is seen, it stays


def test_holm_is_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2]
    assert st.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert st.holm([]) == []
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 30):
        for draw in (rng.uniform(size=size), rng.choice([0.001, 0.02, 0.5, 1.0], size=size)):
            want = multipletests(draw, method="holm")[1]
            assert st.holm(draw.tolist()) == pytest.approx(list(want), abs=1e-15)


def test_the_simulations_meet_their_targets_in_a_small_run():
    """The CI-sized run (`drape eval experiments --runs 1000` is the full one, in the docs):
    the bands widen by two binomial standard errors at this size."""
    runs = 300
    results = simulate(SimulationSettings(runs=runs, seed=11))
    failed = [row for row in check(results, runs) if not row["met"]]
    assert not failed, failed
