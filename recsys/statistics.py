"""The statistics an experiment report rests on: estimates with 95% intervals, lift over the
control with its interval, p-values, the sample-ratio check, CUPED, always-valid sequential
p-values and Holm's correction.

SciPy and statsmodels compute what they can: Wilson intervals and the two-proportion z-test
(statsmodels), Welch's t-test, Mann-Whitney and the chi-square goodness of fit (SciPy), Holm
(statsmodels). Written here, because neither library has them: the delta-method interval of a
*relative* lift (a ratio of two means), the delta-method variance of a ratio metric (purchases
per exposure, summed per user), CUPED's adjustment (Deng et al., 2013) and the mixture
sequential probability ratio test's always-valid p-value (Johari et al., 2017, normal mixture).

Every function takes per-user numbers (one value per exposed user), so each user counts once
whatever their number of events, which is what the variance formulas assume.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

Z_95 = float(stats.norm.ppf(0.975))
# A sample-ratio mismatch is declared below this p-value: strict, because a false alarm
# stops an experiment (at 0.001, one honest experiment in a thousand is flagged).
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Estimate:
    """A per-variant value with its 95% interval."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control: the absolute difference and the relative lift, each
    with its 95% interval, and the test's two-sided p-value."""

    difference: float
    difference_low: float
    difference_high: float
    lift: float
    lift_low: float
    lift_high: float
    p_value: float
    test: str

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def proportion(successes: int, n: int) -> Estimate:
    """A share (converted users over exposed users) with its Wilson interval."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return Estimate(successes / n, float(low), float(high), n)


def mean(values: np.ndarray) -> Estimate:
    """A mean (revenue per exposed user, a mean rating) with its t interval."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return Estimate(float(values.mean()) if n else math.nan, math.nan, math.nan, n)
    centre = float(values.mean())
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return Estimate(centre, centre - half, centre + half, n)


def _lift_interval(
    mean_t: float, var_mean_t: float, mean_c: float, var_mean_c: float
) -> tuple[float, float, float]:
    """Relative lift mean_t / mean_c - 1 and its 95% interval by the delta method: for
    independent arms, Var(mt/mc) ~= Var(mt)/mc^2 + mt^2 Var(mc)/mc^4."""
    if mean_c == 0:
        return math.nan, math.nan, math.nan
    ratio = mean_t / mean_c
    se = math.sqrt(var_mean_t / mean_c**2 + mean_t**2 * var_mean_c / mean_c**4)
    return ratio - 1, ratio - 1 - Z_95 * se, ratio - 1 + Z_95 * se


def compare_proportions(s_t: int, n_t: int, s_c: int, n_c: int) -> Comparison:
    """Two shares (conversion): the two-proportion z-test (statsmodels, pooled variance
    under the null), the difference's Wald interval and the lift's delta-method interval."""
    from statsmodels.stats.proportion import proportions_ztest

    p_t, p_c = s_t / n_t, s_c / n_c
    var_t, var_c = p_t * (1 - p_t) / n_t, p_c * (1 - p_c) / n_c
    no_variation = s_t + s_c in (0, n_t + n_c)  # nothing to test
    p_value = 1.0 if no_variation else float(proportions_ztest([s_t, s_c], [n_t, n_c])[1])
    half = Z_95 * math.sqrt(var_t + var_c)
    lift, low, high = _lift_interval(p_t, var_t, p_c, var_c)
    return Comparison(p_t - p_c, p_t - p_c - half, p_t - p_c + half, lift, low, high, p_value,
                      "two-proportion z")  # fmt: skip


def compare_means(treatment: np.ndarray, control: np.ndarray) -> Comparison:
    """Two means (revenue per exposed user, CUPED-adjusted values): Welch's t-test (SciPy),
    the difference's Welch interval and the lift's delta-method interval."""
    t = np.asarray(treatment, dtype=np.float64)
    c = np.asarray(control, dtype=np.float64)
    var_t, var_c = t.var(ddof=1) / len(t), c.var(ddof=1) / len(c)
    result = stats.ttest_ind(t, c, equal_var=False)
    p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    se = math.sqrt(var_t + var_c)
    # Welch-Satterthwaite degrees of freedom, as the test uses.
    dof = (var_t + var_c) ** 2 / (var_t**2 / (len(t) - 1) + var_c**2 / (len(c) - 1)) if se else 1.0
    half = float(stats.t.ppf(0.975, dof)) * se if se else 0.0
    difference = float(t.mean() - c.mean())
    lift, low, high = _lift_interval(float(t.mean()), var_t, float(c.mean()), var_c)
    return Comparison(difference, difference - half, difference + half, lift, low, high,
                      p_value, "Welch t")  # fmt: skip


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """A ratio metric over users (purchases per exposure: sum of purchases over sum of
    exposures) and the variance of that ratio by the delta method, treating each user's pair
    as one observation (users, not events, are independent)."""
    x = np.asarray(numerator, dtype=np.float64)
    y = np.asarray(denominator, dtype=np.float64)
    n = len(x)
    mx, my = x.mean(), y.mean()
    ratio = mx / my
    covariance = np.cov(x, y, ddof=1)
    variance = (covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio**2 * covariance[1, 1]) / (
        n * my**2
    )
    return float(ratio), float(variance)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> Estimate:
    """A ratio metric with its 95% delta-method interval (NaN without a denominator)."""
    x = np.asarray(numerator, dtype=np.float64)
    y = np.asarray(denominator, dtype=np.float64)
    if len(x) < 2 or y.sum() <= 0:
        value = float(x.sum() / y.sum()) if y.sum() > 0 else math.nan
        return Estimate(value, math.nan, math.nan, len(x))
    value, variance = ratio_of_sums(x, y)
    half = Z_95 * math.sqrt(max(variance, 0.0))
    return Estimate(value, value - half, value + half, len(x))


def compare_ratios(
    numerator_t: np.ndarray, denominator_t: np.ndarray,
    numerator_c: np.ndarray, denominator_c: np.ndarray,
) -> Comparison:  # fmt: skip
    """Two ratio metrics (purchases per exposure): a z-test on the difference with
    delta-method variances, and the lift's delta-method interval."""
    if min(len(numerator_t), len(numerator_c)) < 2 or 0 in (
        np.sum(denominator_t),
        np.sum(denominator_c),
    ):  # nothing to compare (no previews attempted in an arm without previews)
        nan = math.nan
        return Comparison(nan, nan, nan, nan, nan, nan, 1.0, "delta-method z")
    r_t, v_t = ratio_of_sums(numerator_t, denominator_t)
    r_c, v_c = ratio_of_sums(numerator_c, denominator_c)
    se = math.sqrt(v_t + v_c)
    z = (r_t - r_c) / se if se else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    lift, low, high = _lift_interval(r_t, v_t, r_c, v_c)
    return Comparison(r_t - r_c, r_t - r_c - Z_95 * se, r_t - r_c + Z_95 * se, lift, low, high,
                      p_value, "delta-method z")  # fmt: skip


def compare_ratings(treatment: np.ndarray, control: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (SciPy) for ratings (ordinal, 1-5: a mean hides
    where they moved)."""
    if len(treatment) == 0 or len(control) == 0:
        return 1.0
    return float(stats.mannwhitneyu(treatment, control, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio check: users per variant against the shares they were assigned."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA

    def warning(self) -> str:
        if not self.mismatch:
            return ""
        return (
            f"SAMPLE RATIO MISMATCH (chi-square p = {self.p_value:.2g} < {SRM_ALPHA}): users per "
            f"variant {list(self.observed)} do not match the assigned shares; assignment or "
            "logging is broken, and no result of this experiment can be trusted until it is "
            "explained"
        )


def sample_ratio(counts: list[int], shares: list[float]) -> SampleRatio:
    """Chi-square goodness of fit (SciPy) of users per variant to the assigned shares."""
    total = sum(counts)
    weights = np.asarray(shares, dtype=np.float64) / sum(shares)
    expected = weights * total
    p_value = float(stats.chisquare(counts, expected).pvalue) if total else 1.0
    return SampleRatio(tuple(counts), tuple(float(e) for e in expected), p_value)


def cuped(
    values: np.ndarray, covariate: np.ndarray, theta: float | None = None
) -> tuple[np.ndarray, float, float]:
    """CUPED (Deng et al., 2013): values minus theta times the pre-period covariate's
    deviation from its mean (theta from :func:`pooled_theta` unless given: pass the one
    pooled over all variants, so every arm is adjusted alike). Returns the adjusted values,
    theta, and the share of variance removed. Means are unchanged in expectation; variance
    falls by the squared correlation."""
    y = np.asarray(values, dtype=np.float64)
    x = np.asarray(covariate, dtype=np.float64)
    if theta is None:
        theta = pooled_theta(y, x)
    adjusted = y - theta * (x - x.mean())
    before = y.var(ddof=1)
    reduction = float(1 - adjusted.var(ddof=1) / before) if before > 0 else 0.0
    return adjusted, float(theta), reduction


def pooled_theta(values: np.ndarray, covariate: np.ndarray) -> float:
    """CUPED's theta, Cov(value, covariate) / Var(covariate), over the users of every variant
    together (0 for a covariate that does not vary)."""
    x = np.asarray(covariate, dtype=np.float64)
    variance = x.var(ddof=1)
    if variance <= 0:
        return 0.0
    return float(np.cov(np.asarray(values, dtype=np.float64), x, ddof=1)[0, 1] / variance)


# The mixture's spread, in units of the standard deviation of one user's value: effects of
# around a tenth of a standard deviation are the ones experiments are run to find.
MSPRT_TAU = 0.1


def msprt_p_values(differences: np.ndarray, variances: np.ndarray, tau: float) -> np.ndarray:
    """Always-valid p-values at each look: the normal-mixture sequential probability ratio
    (Johari, Koomen, Pekelis & Walsh, 2017) for an estimated difference ``differences[k]``
    with variance ``variances[k]`` at look k, mixing over effects ~ N(0, tau^2):
    Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))), and
    p_k = min(1, 1 / max_{j <= k} Lambda_j). Looking as often as one likes keeps the chance
    that any p_k falls below alpha under the null at most alpha."""
    d = np.asarray(differences, dtype=np.float64)
    v = np.maximum(np.asarray(variances, dtype=np.float64), 1e-300)
    t2 = tau**2
    log_lambda = 0.5 * np.log(v / (v + t2)) + t2 * d**2 / (2 * v * (v + t2))
    running = np.maximum.accumulate(log_lambda)
    return np.minimum(1.0, np.exp(-running))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values across every metric and variant of a report: the k-th smallest
    of m is multiplied by m - k + 1, capped at 1, and made non-decreasing in that order (the
    same values as statsmodels' ``multipletests(method="holm")``, which also runs a full
    garbage collection on every call: most of a report's time in a large process)."""
    p = np.asarray(p_values, dtype=np.float64)
    if not len(p):
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]
