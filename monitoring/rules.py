"""The Prometheus rules, as data: every recording rule with a case and the value it must give,
every alert with a case that fires it and one that must not. ``tools/monitoring.py`` writes
them as rule files and as promtool unit tests, so no rule exists without its test.

Service-level objectives (the alerts burn their error budgets, after the multiwindow,
multi-burn-rate alerts of Google's SRE workbook, chapter 5):

* gateway availability: 99.9% of gateway calls end without a server-side error;
* Recommend latency: 99% of the recommend service's Recommend calls (a list without previews)
  within 300 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drape.recsys.outcomes import METRICS
from drape.services.runtime.metrics import SERVER_ERROR_CODES

SERVER_ERRORS = "|".join(SERVER_ERROR_CODES)
AVAILABILITY_SLO = 0.999
LATENCY_SLO = 0.99
LATENCY_THRESHOLD_S = 0.3  # a bucket boundary of drape_rpc_duration_seconds
# (long window, short window, burn rate, severity): the SRE workbook's table.
BURN_WINDOWS = (("1h", "5m", 14.4, "page"), ("6h", "30m", 6.0, "page"),
                ("1d", "2h", 3.0, "ticket"), ("3d", "6h", 1.0, "ticket"))  # fmt: skip
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
MODEL_MAX_AGE_DAYS = 7
PREVIEW_FAILURE_RATIO = 0.2
EXPOSURE_DROP_RATIO = 0.01
SRM_Z = 5.0  # standard deviations of the share of lists a variant got
SRM_MIN_LISTS = 1000


@dataclass(frozen=True)
class Case:
    """A promtool test input: series (``name{labels}``) and their values in promtool's
    expanding notation (``0+10x60``: 0, 10, ..., one per minute), evaluated at ``at``."""

    series: dict[str, str]
    at: str = "60m"


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    case: Case
    expected: tuple[tuple[dict[str, str], float], ...]  # output labels -> value
    labels: dict[str, str] = field(default_factory=dict)
    group: str = "drape-red"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str  # page (wake someone) | ticket (next working day)
    summary: str
    runbook: str  # what to look at first, in one line
    fires: Case
    quiet: Case
    fired: tuple[dict[str, str], ...] = ({},)  # the labels of each alert the fires case raises
    group: str = "drape-alerts"

    @property
    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "runbook": self.runbook}


def _handled(service: str, code: str, method: str = "Recommend") -> str:
    return (f'drape_rpc_handled_total{{grpc_service="{service}", grpc_method="{method}", '
            f'grpc_code="{code}"}}')  # fmt: skip


GATEWAY = "drape.v1.GatewayService"
RECOMMEND = "drape.v1.RecommendService"


def _error_ratio(by: str, selector: str, window: str) -> str:
    """Server errors over all calls; 0, not nothing, while there has been no error (a ratio
    over an empty numerator is empty, and a recording that vanishes hides the good news)."""
    sep = ", " if selector else ""
    errors = f'{by} (rate(drape_rpc_handled_total{{{selector}{sep}grpc_code=~"{SERVER_ERRORS}"}}[{window}]))'
    matcher = f"{{{selector}}}" if selector else ""
    calls = f"{by} (rate(drape_rpc_handled_total{matcher}[{window}]))"
    return f"({errors} or {calls} * 0) / {calls}"


def _gateway_errors(window: str) -> str:
    return _error_ratio("sum", f'grpc_service="{GATEWAY}"', window)


def _recommend_slow(window: str) -> str:
    selector = f'grpc_service="{RECOMMEND}", grpc_method="Recommend"'
    return (f'1 - sum(rate(drape_rpc_duration_seconds_bucket{{{selector}, le="{LATENCY_THRESHOLD_S}"}}[{window}]))'
            f" / sum(rate(drape_rpc_duration_seconds_count{{{selector}}}[{window}]))")  # fmt: skip


# Inputs over 25 hours (the day-long windows full): 1% of gateway calls fail; 5% of Recommend
# calls take more than 300 ms.
_GATEWAY_1PCT = {_handled(GATEWAY, "OK"): "0+99x1600", _handled(GATEWAY, "UNAVAILABLE"): "0+1x1600",
                 _handled(GATEWAY, "INVALID_ARGUMENT"): "0+0x1600"}  # fmt: skip
_REC = f'grpc_service="{RECOMMEND}", grpc_method="Recommend"'
_RECOMMEND_5PCT_SLOW = {
    f'drape_rpc_duration_seconds_bucket{{{_REC}, le="{LATENCY_THRESHOLD_S}"}}': "0+95x1600",
    f"drape_rpc_duration_seconds_count{{{_REC}}}": "0+100x1600",
}

_RECOMMEND_20PCT_SLOW = {
    k: ("0+80x1600" if "bucket" in k else v) for k, v in _RECOMMEND_5PCT_SLOW.items()
}


def _slo_recordings() -> list[Recording]:
    out = []
    for window in WINDOWS:
        out.append(Recording(f"drape:gateway_errors:ratio_rate{window}", _gateway_errors(window),
                             Case(_GATEWAY_1PCT, "1500m"), (({}, 0.01),), group="drape-slo"))  # fmt: skip
        out.append(Recording(f"drape:recommend_slow:ratio_rate{window}", _recommend_slow(window),
                             Case(_RECOMMEND_5PCT_SLOW, "1500m"), (({}, 0.05),), group="drape-slo"))  # fmt: skip
    return out


def _red_recordings() -> list[Recording]:
    by = "sum by (grpc_service, grpc_method)"
    two = {_handled(GATEWAY, "OK"): "0+90x60", _handled(GATEWAY, "INTERNAL"): "0+10x60",
           _handled(GATEWAY, "NOT_FOUND"): "0+20x60"}  # fmt: skip
    gateway = {"grpc_service": GATEWAY, "grpc_method": "Recommend"}
    latency = {f'drape_rpc_duration_seconds_bucket{{{_REC}, le="0.1"}}': "0+50x60",
               f'drape_rpc_duration_seconds_bucket{{{_REC}, le="0.3"}}': "0+100x60",
               f'drape_rpc_duration_seconds_bucket{{{_REC}, le="+Inf"}}': "0+100x60"}  # fmt: skip
    recommend = {"grpc_service": RECOMMEND, "grpc_method": "Recommend"}
    return [
        Recording("drape:rpc_requests:rate5m", f"{by} (rate(drape_rpc_handled_total[5m]))",
                  Case(two), ((gateway, 2.0),)),  # 120 calls a minute
        Recording("drape:rpc_errors:ratio_rate5m", _error_ratio(by, "", "5m"),
                  Case(two), ((gateway, 10 / 120),)),  # NOT_FOUND is the caller's, not an error
        Recording("drape:rpc_duration_seconds:p50_5m",
                  f"histogram_quantile(0.5, {by[:-1]}, le) (rate(drape_rpc_duration_seconds_bucket[5m])))",
                  Case(latency), ((recommend, 0.1),)),
        Recording("drape:rpc_duration_seconds:p99_5m",
                  f"histogram_quantile(0.99, {by[:-1]}, le) (rate(drape_rpc_duration_seconds_bucket[5m])))",
                  Case(latency), ((recommend, 0.296),)),
    ]  # fmt: skip


def _triton_recordings() -> list[Recording]:
    series = {'nv_inference_queue_duration_us{model="tryon_gan", version="1"}': "0+3000000x60",
              'nv_inference_compute_infer_duration_us{model="tryon_gan", version="1"}': "0+6000000x60",
              'nv_inference_request_success{model="tryon_gan", version="1"}': "0+60x60",
              'nv_inference_count{model="tryon_gan", version="1"}': "0+60x60",
              'nv_inference_exec_count{model="tryon_gan", version="1"}': "0+15x60"}  # fmt: skip
    model = {"model": "tryon_gan"}
    per_request = "sum by (model) (rate(nv_inference_request_success[5m]))"
    return [
        Recording("drape:triton_queue_seconds_per_request:rate5m",
                  f"sum by (model) (rate(nv_inference_queue_duration_us[5m])) / {per_request} / 1e6",
                  Case(series), ((model, 0.05),), group="drape-triton"),
        Recording("drape:triton_compute_seconds_per_request:rate5m",
                  f"sum by (model) (rate(nv_inference_compute_infer_duration_us[5m])) / {per_request} / 1e6",
                  Case(series), ((model, 0.1),), group="drape-triton"),
        Recording("drape:triton_batch_size:mean_rate5m",
                  "sum by (model) (rate(nv_inference_count[5m])) / sum by (model) (rate(nv_inference_exec_count[5m]))",
                  Case(series), ((model, 4.0),), group="drape-triton"),
    ]  # fmt: skip


def _experiment_recordings() -> list[Recording]:
    """The live rates of the experiment metrics the catalog defines (drape.recsys.outcomes),
    tested on two variants whose counters move by known amounts per minute."""
    arms = {"t": {"exposures": 100, "purchase": 10, "tryon_view": 30, "add_to_cart": 20,
                  "value": 50000, "rating_sum": 12, "rating_count": 3, "le3": 1,
                  "ok": 400, "failed": 40, "skipped": 0},
            "c": {"exposures": 100, "purchase": 5, "tryon_view": 0, "add_to_cart": 10,
                  "value": 20000, "rating_sum": 9, "rating_count": 3, "le3": 2,
                  "ok": 0, "failed": 0, "skipped": 800}}  # fmt: skip
    series = {}
    for v, a in arms.items():
        at = f'experiment="e", variant="{v}"'
        series[f"drape_exposures_total{{{at}}}"] = f"0+{a['exposures']}x120"
        for kind in ("purchase", "tryon_view", "add_to_cart"):
            series[f'drape_events_total{{type="{kind}", {at}}}'] = f"0+{a[kind]}x120"
        series[f"drape_purchase_value_minor_total{{{at}}}"] = f"0+{a['value']}x120"
        series[f"drape_satisfaction_rating_sum{{{at}}}"] = f"0+{a['rating_sum']}x120"
        series[f"drape_satisfaction_rating_count{{{at}}}"] = f"0+{a['rating_count']}x120"
        series[f'drape_satisfaction_rating_bucket{{le="3.0", {at}}}'] = f"0+{a['le3']}x120"
        for status in ("ok", "failed", "skipped"):
            series[f'drape_exposed_items_total{{preview_status="{status}", {at}}}'] = (
                f"0+{a[status]}x120"
            )
    expected = {
        "purchases_per_exposure": {"t": 0.1, "c": 0.05},
        "revenue_per_user": {"t": 5.0, "c": 2.0},
        "mean_rating": {"t": 4.0, "c": 3.0},
        "high_rating_share": {"t": 2 / 3, "c": 1 / 3},
        "previewed": {"t": 4.0, "c": 0.0},
        "tried_on": {"t": 0.3, "c": 0.0},
        "carted": {"t": 0.2, "c": 0.1},
        "preview_failure_rate": {"t": 40 / 440},
    }
    out = []
    for m in METRICS:
        if m.live is None:
            continue
        values = expected[m.name]
        out.append(Recording(
            m.live.record, m.live.expr, Case(series, "100m"),
            tuple(({"experiment": "e", "variant": v, "metric": m.name}, x) for v, x in values.items()),
            labels={"metric": m.name}, group="drape-experiments",
        ))  # fmt: skip
    return out


def recordings() -> list[Recording]:
    return [
        *_red_recordings(),
        *_slo_recordings(),
        *_triton_recordings(),
        *_experiment_recordings(),
    ]


def _burn_alert(name: str, slo_name: str, budget: float, record: str, severity: str,
                windows: list[tuple[str, str, float]], fires: Case, quiet: Case) -> Alert:  # fmt: skip
    expr = " or ".join(
        f"({record}{long} > {burn} * {budget:g} and {record}{short} > {burn} * {budget:g})"
        for long, short, burn in windows
    )
    return Alert(name, expr, "2m", severity,
                 f"{slo_name}: the error budget is burning {'fast' if severity == 'page' else 'steadily'}",
                 "runbook: check drape:rpc_errors:ratio_rate5m and drape:rpc_duration_seconds:p99_5m by "
                 "method to find the failing call, then that service's logs and its callees' alerts",
                 fires, quiet)  # fmt: skip


def _slo_alerts() -> list[Alert]:
    out = []
    budget_a, budget_l = 1 - AVAILABILITY_SLO, 1 - LATENCY_SLO
    gateway_quiet = Case({_handled(GATEWAY, "OK"): "0+9999x1600", _handled(GATEWAY, "UNAVAILABLE"): "0+1x1600"},
                         "1500m")  # 0.01%: within budget  # fmt: skip
    slow_quiet = Case({k: ("0+999x1600" if "bucket" in k else "0+1000x1600") for k in _RECOMMEND_5PCT_SLOW},
                      "1500m")  # 0.1% slow  # fmt: skip
    for severity in ("page", "ticket"):
        windows = [(lo, sh, burn) for lo, sh, burn, sev in BURN_WINDOWS if sev == severity]
        suffix = "Fast" if severity == "page" else "Slow"
        out.append(_burn_alert(f"DrapeGatewayAvailabilityBurn{suffix}", "Gateway availability (99.9%)",
                               budget_a, "drape:gateway_errors:ratio_rate", severity, windows,
                               Case(_GATEWAY_1PCT, "1500m"), gateway_quiet))  # fmt: skip
        # 20% slow burns the budget 20 times over (pages); 5% five times (a ticket only).
        slow = _RECOMMEND_20PCT_SLOW if severity == "page" else _RECOMMEND_5PCT_SLOW
        out.append(_burn_alert(f"DrapeRecommendLatencyBurn{suffix}",
                               "Recommend latency (99% within 300 ms)", budget_l,
                               "drape:recommend_slow:ratio_rate", severity, windows,
                               Case(slow, "1500m"), slow_quiet))  # fmt: skip
    return out


def _down(job: str, what: str, runbook: str) -> Alert:
    return Alert(f"Drape{what.replace(' ', '')}Down", f'up{{job="{job}"}} == 0', "1m", "page",
                 f"{what} is down (Prometheus cannot scrape it)", runbook,
                 Case({f'up{{job="{job}", instance="a:1"}}': "1 1 0 0 0 0"}, "5m"),
                 Case({f'up{{job="{job}", instance="a:1"}}': "1 1 1 0 1 1"}, "5m"),
                 ({"job": job, "instance": "a:1"},))  # fmt: skip


def alerts() -> list[Alert]:
    previews = 'sum(rate(drape_previews_total{status=~"failed|unavailable|timed_out"}[10m]))'
    attempted = 'sum(rate(drape_previews_total{status!="skipped"}[10m]))'
    dropped = "sum(rate(drape_exposures_dropped_total[10m]))"
    logged = "sum(rate(drape_exposures_logged_total[10m]))"
    share = "max by (experiment, variant) (drape_experiment_variant_share)"
    lists = "sum by (experiment, variant) (increase(drape_exposures_total[6h]))"
    total = "sum by (experiment) (increase(drape_exposures_total[6h]))"
    expected = f"({share} * on (experiment) group_left {total})"
    arm = 'experiment="e"'
    return [
        *_slo_alerts(),
        _down("triton", "Triton", "runbook: the tryon and features services answer UNAVAILABLE previews "
              "meanwhile; check the triton pod's events and GPU (nvidia-smi), then its logs"),
        _down("tryon", "Tryon", "runbook: previews come back UNAVAILABLE meanwhile; check the tryon "
              "pod's restarts and logs, and whether Triton is up"),
        _down("gateway", "Gateway", "runbook: storefronts get nothing; check the gateway pods, their "
              "readiness and the ingress"),
        _down("events", "Events", "runbook: feedback and exposures are not stored (clients retry, the "
              "gateway's exposure queue fills); check the events pods and the database"),
        Alert("DrapePreviewFailureRatio", f"{previews} / {attempted} > {PREVIEW_FAILURE_RATIO}", "10m",
              "ticket", f"More than {PREVIEW_FAILURE_RATIO:.0%} of previews fail, time out or find the "
              "try-on backend unavailable",
              "runbook: split drape_previews_total by status; timed_out means Triton is slow "
              "(drape:triton_queue_seconds_per_request), unavailable that it or tryon is down",
              Case({'drape_previews_total{status="ok", experiment="e", variant="t"}': "0+70x30",
                    'drape_previews_total{status="unavailable", experiment="e", variant="t"}': "0+30x30",
                    'drape_previews_total{status="skipped", experiment="e", variant="c"}': "0+500x30"}, "25m"),
              Case({'drape_previews_total{status="ok", experiment="e", variant="t"}': "0+90x30",
                    'drape_previews_total{status="unavailable", experiment="e", variant="t"}': "0+10x30",
                    'drape_previews_total{status="skipped", experiment="e", variant="c"}': "0+500x30"}, "25m")),
        Alert("DrapeEventWriteFailures",
              'sum(rate(drape_rpc_handled_total{grpc_service="drape.v1.EventsService", '
              'grpc_code=~"UNAVAILABLE|INTERNAL"}[5m])) > 0', "5m", "page",
              "The events service is failing writes (the store is unavailable); clients retry, "
              "but feedback and exposures wait or are dropped",
              "runbook: the events service's logs name the store error; check the database "
              "(connections, disk, failover)",
              Case({_handled("drape.v1.EventsService", "UNAVAILABLE", "Record"): "0+5x20",
                    _handled("drape.v1.EventsService", "OK", "Record"): "0+100x20"}, "15m"),
              Case({_handled("drape.v1.EventsService", "UNAVAILABLE", "Record"): "0+0x20",
                    _handled("drape.v1.EventsService", "OK", "Record"): "0+100x20"}, "15m")),
        Alert("DrapeExposureLoggingFailures", f"{dropped} / ({logged} + {dropped}) > {EXPOSURE_DROP_RATIO}",
              "10m", "ticket",
              f"More than {EXPOSURE_DROP_RATIO:.0%} of recommendation lists are not logged: "
              "experiment results are losing data",
              "runbook: drape_exposures_dropped_total by reason: queue_full or send_failed mean the "
              "events service is down or slow (see its alerts)",
              Case({'drape_exposures_dropped_total{reason="queue_full"}': "0+5x30",
                    'drape_exposures_logged_total': "0+95x30"}, "25m"),
              Case({'drape_exposures_dropped_total{reason="queue_full"}': "0+0x30",
                    'drape_exposures_logged_total': "0+95x30"}, "25m")),
        Alert("DrapeExperimentSampleRatioDrift",
              f"abs({lists} - on (experiment, variant) {expected}) / sqrt({expected} * (1 - {share}))"
              f" > {SRM_Z:g} and on (experiment) {total} > {SRM_MIN_LISTS}",
              "30m", "ticket",
              "A variant gets a share of recommendation lists far from its assigned share: "
              "assignment or logging is broken, and the experiment's results cannot be trusted",
              "runbook: run drape report experiment NAME for the users' sample-ratio test; look for "
              "a variant that errors more (drape_rpc_handled_total) or a reload of the experiments file",
              Case({f'drape_exposures_total{{{arm}, variant="control"}}': "0+60x480",
                    f'drape_exposures_total{{{arm}, variant="treatment"}}': "0+40x480",
                    f'drape_experiment_variant_share{{{arm}, variant="control", job="events"}}': "0.5x480",
                    f'drape_experiment_variant_share{{{arm}, variant="treatment", job="events"}}': "0.5x480"}, "400m"),
              Case({f'drape_exposures_total{{{arm}, variant="control"}}': "0+50x480",
                    f'drape_exposures_total{{{arm}, variant="treatment"}}': "0+51x480",
                    f'drape_experiment_variant_share{{{arm}, variant="control", job="events"}}': "0.5x480",
                    f'drape_experiment_variant_share{{{arm}, variant="treatment", job="events"}}': "0.5x480"}, "400m"),
              ({"experiment": "e", "variant": "control"}, {"experiment": "e", "variant": "treatment"})),
        Alert("DrapeRecommenderModelStale",
              f"time() - drape_recommend_model_trained_timestamp_seconds > {MODEL_MAX_AGE_DAYS} * 86400",
              "1h", "ticket", f"The recommender serves a model trained more than {MODEL_MAX_AGE_DAYS} days ago",
              "runbook: run (or check the schedule of) drape train recsys; its log says why it stopped "
              "publishing",
              # promtool's clock starts at 0: a model trained 700,000 s before it is stale.
              Case({'drape_recommend_model_trained_timestamp_seconds{job="recommend"}': "-700000x200"}, "190m"),
              Case({'drape_recommend_model_trained_timestamp_seconds{job="recommend"}': "0+60x200"}, "190m"),
              ({"job": "recommend"},)),
        Alert("DrapeRecommendRefreshFailing",
              'increase(drape_recommend_refreshes_total{outcome="failed"}[15m]) >= 3', "0m", "ticket",
              "The recommend service cannot refresh its models (it keeps serving the last good ones)",
              "runbook: the recommend service's log says why (the event store, the catalog file or a "
              "published version that does not load)",
              Case({'drape_recommend_refreshes_total{outcome="failed", job="recommend"}': "0+1x30"}, "20m"),
              Case({'drape_recommend_refreshes_total{outcome="failed", job="recommend"}': "0+0x30"}, "20m"),
              ({"outcome": "failed", "job": "recommend"},)),
        Alert("DrapeExperimentsFileRefused", "increase(drape_experiment_reload_failures_total[10m]) > 0",
              "0m", "ticket", "A changed experiments file was refused; the services run the previous one",
              "runbook: the recommend and events logs give the reason (invalid, or reallocating a "
              "running experiment without force: true)",
              Case({'drape_experiment_reload_failures_total{job="events"}': "0 0 0 1 1 1 1"}, "6m"),
              Case({'drape_experiment_reload_failures_total{job="events"}': "0 0 0 0 0 0 0"}, "6m"),
              ({"job": "events"},)),
    ]  # fmt: skip
