"""Grafana dashboards, built as Grafana's JSON model from code: storefront health, the
experiments, and the model servers. Every query is plain PromQL (no Grafana variables but the
data source), so the tests run each one against a real Prometheus as it stands."""

from __future__ import annotations

from dataclasses import dataclass

from drape.monitoring.rules import AVAILABILITY_SLO, LATENCY_SLO

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MODEL = "{{model}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    needs_data: bool = True  # False: only where the hardware is (GPU metrics)


def _by_method(record: str) -> tuple[Query, ...]:
    return (Query(record, "{{grpc_service}}/{{grpc_method}}"),)


def _by_variant(record: str) -> Query:
    return Query(record, "{{experiment}} / {{variant}}")


DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...]]] = {
    "drape-storefront": ("Drape: storefront health", (
        Panel("Calls per second by method", _by_method("drape:rpc_requests:rate5m"), "reqps"),
        Panel("Server-error ratio by method", _by_method("drape:rpc_errors:ratio_rate5m"), "percentunit"),
        Panel("p99 latency by method", _by_method("drape:rpc_duration_seconds:p99_5m"), "s"),
        Panel("Gateway availability: error-budget burn rate (1h, 6h)",
              (Query(f"drape:gateway_errors:ratio_rate1h / {1 - AVAILABILITY_SLO:g}", "1h"),
               Query(f"drape:gateway_errors:ratio_rate6h / {1 - AVAILABILITY_SLO:g}", "6h")),
              description="1 spends the budget exactly over 30 days; 14.4 over 1h pages"),
        Panel("Recommend latency: error-budget burn rate (1h, 6h)",
              (Query(f"drape:recommend_slow:ratio_rate1h / {1 - LATENCY_SLO:g}", "1h"),
               Query(f"drape:recommend_slow:ratio_rate6h / {1 - LATENCY_SLO:g}", "6h"))),
        Panel("Previews by status", (Query("sum by (status) (rate(drape_previews_total[5m]))", "{{status}}"),), "ops"),
        Panel("Exposure log: logged and dropped",
              (Query("sum(rate(drape_exposures_logged_total[5m]))", "logged"),
               Query("sum by (reason) (rate(drape_exposures_dropped_total[5m]))", "dropped: {{reason}}")), "ops"),
        Panel("Event writes by outcome",
              (Query('sum by (grpc_code) (rate(drape_rpc_handled_total{grpc_service="drape.v1.EventsService"}[5m]))',
                     "{{grpc_code}}"),), "reqps"),
    )),
    "drape-experiments": ("Drape: experiments", (
        Panel("Recommendation lists per second",
              (_by_variant("sum by (experiment, variant) (rate(drape_exposures_total[5m]))"),), "ops"),
        Panel("Share of lists against the assigned share",
              (Query("sum by (experiment, variant) (rate(drape_exposures_total[1h])) / on (experiment) group_left "
                     "sum by (experiment) (rate(drape_exposures_total[1h]))", "{{experiment}} / {{variant}}"),
               Query("max by (experiment, variant) (drape_experiment_variant_share)", "assigned {{variant}}")),
              "percentunit"),
        Panel("Purchases per exposure", (_by_variant("drape:purchases_per_exposure:ratio_rate1h"),)),
        Panel("Revenue per exposure", (_by_variant("drape:revenue_per_exposure:ratio_rate1h"),), "currencyEUR"),
        Panel("Mean rating", (_by_variant("drape:mean_rating:ratio_rate1h"),)),
        Panel("Ratings of 4 or more", (_by_variant("drape:high_rating_share:ratio_rate1h"),), "percentunit"),
        Panel("Try-ons per exposure", (_by_variant("drape:tryons_per_exposure:ratio_rate1h"),)),
        Panel("Preview failures", (_by_variant("drape:preview_failures:ratio_rate1h"),), "percentunit",
              needs_data=False),
    )),
    "drape-model-servers": ("Drape: model servers", (
        Panel("Inferences per second by model",
              (Query("sum by (model) (rate(nv_inference_request_success[5m]))", "{{model}}"),), "ops"),
        Panel("Queue time per request", (Query("drape:triton_queue_seconds_per_request:rate5m", MODEL),), "s"),
        Panel("Compute time per request", (Query("drape:triton_compute_seconds_per_request:rate5m", MODEL),), "s"),
        Panel("Mean batch size", (Query("drape:triton_batch_size:mean_rate5m", "{{model}}"),)),
        Panel("GPU utilisation", (Query("avg by (gpu_uuid) (nv_gpu_utilization)", "{{gpu_uuid}}"),), "percentunit",
              needs_data=False),
        Panel("GPU memory used", (Query("sum by (gpu_uuid) (nv_gpu_memory_used_bytes)", "{{gpu_uuid}}"),), "bytes",
              needs_data=False),
        Panel("Try-on stage time (p95)",
              (Query("histogram_quantile(0.95, sum by (stage, le) (rate(drape_tryon_stage_seconds_bucket[5m])))",
                     "{{stage}}"),), "s", needs_data=False),
    )),
}  # fmt: skip


def dashboard(uid: str) -> dict:
    """One dashboard in Grafana's JSON model: two panels a row, a data-source variable."""
    title, panels = DASHBOARDS[uid]
    out = []
    for i, panel in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": panel.title, "description": panel.description,
            "datasource": DATASOURCE, "gridPos": {"x": 12 * (i % 2), "y": 8 * (i // 2), "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [{"datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend,
                         "refId": chr(ord("A") + j)} for j, q in enumerate(panel.queries)],
        })  # fmt: skip
    return {
        "uid": uid, "title": title, "tags": ["drape"], "timezone": "utc", "schemaVersion": 39,
        "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": out,
    }  # fmt: skip


def queries() -> list[tuple[str, Panel, Query]]:
    return [
        (uid, p, q) for uid, (_, panels) in DASHBOARDS.items() for p in panels for q in p.queries
    ]
