"""The rules in a real Prometheus (the one the install provides) scraping the real stack:
known traffic in two variants, and the recording rules must give per variant what the
experiment report computes from the database; every series scraped is one the metric list
(read from the code) names, with its labels; the rules page shows every rule; Triton stopped
raises its alert, and the alert resolves when Triton is back."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import yaml

from drape.cli.stack import Stack, ephemeral
from drape.monitoring import rules as r
from drape.monitoring.dashboards import queries
from drape.monitoring.inventory import family_of, metrics
from drape.monitoring.prometheus import LocalPrometheus
from drape.recsys.report import ReportSettings, experiment_report
from drape.services.events.store import open_event_store
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.workers import WORKER_LABEL
from drape.synthetic.catalog import generate_catalog
from drape.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import chromium, needs_chromium, wait_until
from tools.monitoring import rule_files

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None and not __import__("os").environ.get("CI"),
    reason="Prometheus comes with scripts/install.sh",
)
EXPERIMENT = "checkout-previews"
PLAN = f"""name: {EXPERIMENT}
salt: s-prom
variants:
  - {{name: control, share: 50, previews: false}}
  - {{name: treatment, share: 50, previews: true}}
"""


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, LocalPrometheus]]:
    root = tmp_path_factory.mktemp("prometheus")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    (root / "experiments.yaml").write_text(PLAN)
    config.recommend.experiments_path = str(root / "experiments.yaml")
    generate_catalog(200, seed=2).save(config.catalog_path())
    # The production rules, with every alert's `for` cut to a fiftieth (1m -> 1s).
    rules = []
    for name, data in rule_files(for_scale=0.02).items():
        path = root / f"{name}.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        rules.append(path)
    stack = Stack(config, ["events", "recommend", "gateway", "tryon", "splice", "features"],
                  run_dir=root / "run").start(timeout=120)  # fmt: skip
    prometheus = LocalPrometheus({n: e.metrics_port for n, e in stack.endpoints.items()}, rules,
                                 scrape_s=1, evaluate_s=1)  # fmt: skip
    try:
        prometheus.start()
        # Every target scraped once before any traffic: counters start at zero in Prometheus.
        jobs = len(stack.endpoints)
        assert wait_until(lambda: (r := prometheus.query("count(up == 1)")) and int(r[0]["value"][1]) == jobs,
                          timeout=60, interval=0.5), prometheus.query("up")  # fmt: skip
        yield stack, prometheus
    finally:
        prometheus.stop()
        stack.stop()


def _traffic(stack: Stack, users: int = 120) -> int:
    """Each user gets a list; some buy a shown garment and some rate, citing the list; and
    some calls fail (bad k). Returns the lists served."""
    rng = np.random.default_rng(4)
    gateway = gateway_pb2_grpc.GatewayServiceStub(connect(stack.address("gateway")))
    served = 0
    for i in range(users):
        user = f"shopper-{i}"
        reply = gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=4),
                                  timeout=10)  # fmt: skip
        served += 1
        events = []
        if rng.random() < (0.3 if reply.assignment.variant == "treatment" else 0.15):
            garment = reply.items[int(rng.integers(4))].garment
            events.append(events_pb2.Event(event_id=uuid.uuid4().hex, user_id=user,
                                           type=events_pb2.EVENT_TYPE_PURCHASE,
                                           garment_id=garment.garment_id, value_minor=garment.price_minor,
                                           recommendation_id=reply.recommendation_id))  # fmt: skip
        if rng.random() < 0.5:
            events.append(events_pb2.Event(event_id=uuid.uuid4().hex, user_id=user,
                                           type=events_pb2.EVENT_TYPE_RATING, rating=int(rng.integers(1, 6)),
                                           recommendation_id=reply.recommendation_id))  # fmt: skip
        if events:
            gateway.Track(gateway_pb2.TrackRequest(events=events), timeout=10)
        if i % 10 == 0:
            with pytest.raises(grpc.RpcError):
                gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=0))
    return served


def _by_variant(prometheus: LocalPrometheus, promql: str) -> dict[str, float]:
    return {s["metric"]["variant"]: float(s["value"][1]) for s in prometheus.query(promql)}


def test_recording_rules_agree_with_the_report(observed):
    stack, prometheus = observed
    served = _traffic(stack)
    logged = f'sum(drape_exposures_total{{experiment="{EXPERIMENT}"}})'
    assert wait_until(lambda: (r := prometheus.query(logged)) and float(r[0]["value"][1]) == served,
                      timeout=60, interval=0.5), prometheus.query(logged)  # fmt: skip
    store = open_event_store(stack.config.events_store_url())
    try:
        report = experiment_report(
            store, ReportSettings(EXPERIMENT, 0, time.time_ns() // 1000 + 10**8)
        )
    finally:
        store.close()
    variants = report["variants"]
    # Counts: the counters equal the database's.
    exposures = _by_variant(
        prometheus, f'sum by (variant) (drape_exposures_total{{experiment="{EXPERIMENT}"}})'
    )
    assert exposures == {v: float(x["exposures"]) for v, x in variants.items()}

    # The recording rules, once the last scrape is in a rule evaluation: per variant, what the
    # report computed from the rows.
    def rule(name: str) -> dict[str, float]:
        return _by_variant(prometheus, f'{name}{{experiment="{EXPERIMENT}"}}')

    def agrees() -> bool:
        purchases, rating = (
            rule("drape:purchases_per_exposure:ratio_rate1h"),
            rule("drape:mean_rating:ratio_rate1h"),
        )
        return len(purchases) == 2 and all(
            purchases[v]
            == pytest.approx(variants[v]["metrics"]["purchases_per_exposure"]["value"], rel=1e-6)
            and rating.get(v)
            == pytest.approx(variants[v]["metrics"]["mean_rating"]["value"], rel=1e-6)
            for v in variants
        )

    assert wait_until(agrees, timeout=30, interval=0.5), (
        rule("drape:purchases_per_exposure:ratio_rate1h"), rule("drape:mean_rating:ratio_rate1h"),
        {v: x["metrics"]["purchases_per_exposure"] for v, x in variants.items()})  # fmt: skip
    # RED: the bad calls are the caller's errors, not the service's. The gateway is a target
    # of its own: wait until a scrape of it has every call (one refused per ten users), then
    # until a rule evaluation has that scrape.
    method = 'grpc_service="drape.v1.GatewayService", grpc_method="Recommend"'
    calls = served + (served + 9) // 10
    handled = f"sum(drape_rpc_handled_total{{{method}}})"
    assert wait_until(lambda: (r := prometheus.query(handled)) and float(r[0]["value"][1]) == calls,
                      timeout=60, interval=0.5), prometheus.query(handled)  # fmt: skip
    refused = f'sum(rate(drape_rpc_handled_total{{{method}, grpc_code="INVALID_ARGUMENT"}}[5m]))'

    def errors() -> list[dict]:
        # The rule's evaluation that follows the scrape above: requests seen in its window.
        if not (r := prometheus.query(refused)) or float(r[0]["value"][1]) == 0:
            return []
        return prometheus.query(f"drape:rpc_errors:ratio_rate5m{{{method}}} >= 0")

    assert wait_until(errors, timeout=30, interval=0.5), prometheus.query(
        f"drape:rpc_errors:ratio_rate5m{{{method}}}")  # fmt: skip
    assert float(errors()[0]["value"][1]) == 0.0
    shares = _by_variant(prometheus, f'drape_experiment_variant_share{{experiment="{EXPERIMENT}"}}')
    assert shares == {"control": 0.5, "treatment": 0.5}
    # Every rule group is loaded and evaluates without error.
    groups = prometheus.rules()
    assert {g["name"] for g in groups} >= {
        "drape-red",
        "drape-slo",
        "drape-experiments",
        "drape-alerts",
    }
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"
    ]


def test_every_dashboard_query_runs(observed):
    """After the traffic above: every panel's query parses and returns in Prometheus (series,
    except the GPU and try-on panels, which need a GPU or photos)."""
    _, prometheus = observed

    def empty() -> list[tuple[str, str, str]]:
        # prometheus.query raises on a query Prometheus refuses.
        return [(uid, panel.title, query.expr) for uid, panel, query in queries()
                if not prometheus.query(query.expr) and panel.needs_data]  # fmt: skip

    # Rules evaluate every second; give a loaded machine a few rounds.
    assert wait_until(lambda: not empty(), timeout=30, interval=1), empty()


def test_every_family_scraped_is_listed_with_its_labels(observed):
    """What the running stack exports is what docs/metrics.md lists (it is read from the code):
    every drape_* series scraped belongs to a listed metric and carries exactly its labels."""
    _, prometheus = observed
    known = metrics()
    scraped = prometheus.query('{__name__=~"drape_.+"}')
    assert len({s["metric"]["__name__"] for s in scraped}) > 20
    unlisted, mislabelled = set(), set()
    for sample in scraped:
        labels = dict(sample["metric"])
        name = labels.pop("__name__")
        metric = family_of(name, known)
        if metric is None:
            unlisted.add(name)
            continue
        extra = {"le"} if name.endswith("_bucket") else set()
        if set(labels) - {"job", "instance", WORKER_LABEL} != set(metric.labels) | extra:
            mislabelled.add((name, tuple(sorted(labels))))
    assert not unlisted and not mislabelled, (unlisted, mislabelled)


@needs_chromium
def test_the_rules_page_shows_every_rule(observed, tmp_path):
    """The page `drape up --prometheus` points at, as a browser renders it: every group, every
    recording rule and every alert of the loaded files."""
    _, prometheus = observed
    page = chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                    prometheus.page("rules"))  # fmt: skip
    names = [g["name"] for g in prometheus.rules()]
    names += [x.record for x in r.recordings()] + [a.name for a in r.alerts()]
    assert len(names) > 40
    assert not [n for n in names if n not in page], page[:2000]


def _firing(prometheus: LocalPrometheus, name: str) -> bool:
    return any(
        a["labels"]["alertname"] == name and a["state"] == "firing" for a in prometheus.alerts()
    )


def test_triton_down_fires_and_resolves(observed):
    stack, prometheus = observed
    assert wait_until(lambda: prometheus.query('up{job="triton"} == 1'), timeout=30, interval=0.5)
    assert not _firing(prometheus, "DrapeTritonDown")
    stack.kill("triton")
    assert wait_until(lambda: _firing(prometheus, "DrapeTritonDown"), timeout=60, interval=0.5), (
        prometheus.alerts()
    )
    stack.restart("triton", timeout=180)
    assert wait_until(lambda: not _firing(prometheus, "DrapeTritonDown"), timeout=60, interval=0.5)
