"""What an experiment is judged by, defined once: the report computes every metric here from
the exposure log and the events, and the Prometheus recording rules are generated from the
same entries (each metric's ``live`` rule, in :mod:`drape.monitoring.rules`), so a dashboard
and a report never disagree on what "conversion" means.

Attribution. A user enters an experiment at their first exposure to it (a recommendation list
served under one of its variants) within the report's window. An event counts for the
experiment when it is on a garment the user was shown in that experiment, at or after the
first time it was shown and at most the attribution window after the last time; a rating
counts from the user's first exposure on (a rating of the experience has no garment).
Pre-period behaviour (for CUPED) is the user's purchases in the ``pre-period`` before their
first exposure, whatever they bought.

Every metric is per exposed user, so each user counts once however many events they send;
a ratio metric (purchases per exposure) is the ratio of the sums over users, with its
variance by the delta method. Prometheus sees only counters, so its rules give rates per
exposure over the last hour: the live view, not the decision (purchases there are all of the
users' purchases, not only of garments they were shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["proportion", "mean", "ratio"]

# Per exposed user, as the report's query returns them.
USER_COLUMNS = (
    "exposures",  # recommendation lists served
    "previewed",  # 1 when any garment came with a preview shown (ok or cached)
    "preview_attempts",  # garments whose preview was attempted (not skipped)
    "preview_failures",  # ... of which failed, were unavailable or timed out
    "latency_ms",  # gateway latency summed over the user's exposures
    "tried_on",  # 1 when they looked at a try-on of a garment they were shown
    "carted",  # 1 when they put a garment they were shown in the cart
    "purchases",  # purchases of garments they were shown
    "converted",  # 1 when purchases > 0
    "revenue",  # the value of those purchases, major currency units
    "ratings",  # ratings given after the first exposure
    "rating_sum",
    "high_ratings",  # ratings of 4 or 5
    "pre_converted",  # 1 when they bought anything in the pre-period
    "pre_revenue",  # what they spent then
)
_RATE = "[1h]"
_BY = "sum by (experiment, variant)"


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    kind: Kind
    numerator: str  # a USER_COLUMNS name
    denominator: str | None = None  # ratio metrics: another; proportions and means: users
    covariate: str | None = None  # the pre-period column CUPED adjusts by
    lower_is_better: bool = False
    guardrail: bool = False
    test: str = ""  # the test named in the report (empty = the kind's own)
    unit: str = ""
    live: Live | None = None  # its live counterpart in Prometheus, per experiment and variant
    description: str = ""

    @property
    def is_share(self) -> bool:
        """Shown as a percentage: a proportion, or a ratio of a part to its whole."""
        return self.kind == "proportion" or self.unit == "share"


@dataclass(frozen=True)
class Live:
    """A recording rule: its name (Prometheus' level:metric:operations convention) and query."""

    record: str
    expr: str


def _ratio_rule(name: str, numerator: str, denominator: str, scale: str = "") -> Live:
    return Live(f"drape:{name}:ratio_rate1h",
                f"{_BY} (rate({numerator}{_RATE})) / {_BY} (rate({denominator}{_RATE})){scale}")  # fmt: skip


_EXPOSURES = "drape_exposures_total"
METRICS: tuple[Metric, ...] = (
    Metric("conversion", "Conversion", "proportion", "converted", covariate="pre_converted",
           description="Exposed users who bought a garment they were shown within the "
                       "attribution window, over exposed users. Per-user, so it has no live "
                       "counterpart: watch purchases per exposure."),
    Metric("purchases_per_exposure", "Purchases per exposure", "ratio", "purchases",
           "exposures", live=_ratio_rule("purchases_per_exposure",
                                         'drape_events_total{type="purchase"}', _EXPOSURES),
           description="Purchases of shown garments over recommendation lists served."),
    Metric("revenue_per_user", "Revenue per exposed user", "mean", "revenue",
           covariate="pre_revenue", unit="currency units",
           live=_ratio_rule("revenue_per_exposure", "drape_purchase_value_minor_total",
                            _EXPOSURES, " / 100"),
           description="Value of purchases of shown garments per exposed user (major units). "
                       "Live: value per exposure."),
    Metric("mean_rating", "Mean rating", "ratio", "rating_sum", "ratings",
           test="Mann-Whitney U", unit="of 5",
           live=_ratio_rule("mean_rating", "drape_satisfaction_rating_sum",
                            "drape_satisfaction_rating_count"),
           description="Mean satisfaction rating (1-5) given after the first exposure; tested "
                       "with Mann-Whitney on the ratings (ordinal), interval by the delta method."),
    Metric("high_rating_share", "Ratings of 4 or more", "ratio", "high_ratings", "ratings",
           unit="share",
           live=Live("drape:high_rating_share:ratio_rate1h",
                     f"1 - {_BY} (rate(drape_satisfaction_rating_bucket{{le=\"3.0\"}}{_RATE})) / "
                     f"{_BY} (rate(drape_satisfaction_rating_count{_RATE}))"),
           description="Share of ratings that are 4 or 5."),
    Metric("previewed", "Funnel: saw a preview", "proportion", "previewed",
           live=_ratio_rule("previews_shown_per_exposure",
                            'drape_exposed_items_total{preview_status=~"ok|cached"}', _EXPOSURES),
           description="Exposed users shown at least one try-on preview. Live: previews "
                       "shown per exposure."),
    Metric("tried_on", "Funnel: opened a try-on", "proportion", "tried_on",
           live=_ratio_rule("tryons_per_exposure", 'drape_events_total{type="tryon_view"}',
                            _EXPOSURES),
           description="Exposed users who looked at a try-on of a garment they were shown."),
    Metric("carted", "Funnel: added to cart", "proportion", "carted",
           live=_ratio_rule("carts_per_exposure", 'drape_events_total{type="add_to_cart"}',
                            _EXPOSURES),
           description="Exposed users who put a garment they were shown in the cart."),
    Metric("preview_failure_rate", "Guardrail: preview failures", "ratio", "preview_failures",
           "preview_attempts", lower_is_better=True, guardrail=True, unit="share",
           live=_ratio_rule("preview_failures",
                            'drape_exposed_items_total{preview_status=~"failed|unavailable|timed_out"}',
                            'drape_exposed_items_total{preview_status!="skipped"}'),
           description="Previews attempted that failed, were unavailable or timed out."),
    Metric("latency_ms", "Guardrail: latency per list", "ratio", "latency_ms", "exposures",
           lower_is_better=True, guardrail=True, unit="ms",
           description="Mean time the gateway took to answer, per list served (previews "
                       "included). Live: the gateway's request-duration histograms."),
)  # fmt: skip
# The funnel, in order; its last step is conversion.
FUNNEL = ("previewed", "tried_on", "carted", "conversion")
PRIMARY = "conversion"


def metric(name: str) -> Metric:
    return next(m for m in METRICS if m.name == name)


def recording_rules() -> dict[str, object]:
    """The Prometheus rule file of the metrics that have a live rate."""
    return {
        "groups": [
            {
                "name": "drape-experiments",
                "interval": "1m",
                "rules": [
                    {"record": m.live.record, "expr": m.live.expr, "labels": {"metric": m.name}}
                    for m in METRICS
                    if m.live is not None
                ],
            }
        ]
    }
