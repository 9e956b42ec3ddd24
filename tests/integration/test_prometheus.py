"""The rules in a real Prometheus (the one the install provides) scraping the real stack:
known traffic in two variants, and every experiment recording rule must give per variant what
the test sent, and what the experiment report computes from the database; every series scraped is one the metric list
(read from the code) names, with its labels; the rules page shows every rule; Triton stopped
raises its alert, and the alert resolves when Triton is back."""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
import yaml
from skimage import data as images

from drape.cli.stack import Stack, ephemeral
from drape.models.images import encode_jpeg
from drape.monitoring import rules as r
from drape.monitoring.dashboards import queries
from drape.monitoring.inventory import family_of, metrics
from drape.monitoring.prometheus import LocalPrometheus
from drape.recsys.experiments import parse_plan
from drape.recsys.outcomes import METRICS
from drape.recsys.report import ReportSettings, experiment_report
from drape.services.events.store import open_event_store
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.previews import preview_status_name
from drape.services.runtime.workers import WORKER_LABEL
from drape.synthetic.catalog import write_generated_feed
from drape.v1 import (
    common_pb2,
    events_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
)
from tests.conftest import chromium, ingest_feed, needs_chromium, wait_until
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
EXPERIMENT_PLAN = parse_plan(yaml.safe_load(PLAN)).experiments[0]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, LocalPrometheus]]:
    root = tmp_path_factory.mktemp("prometheus")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    (root / "experiments.yaml").write_text(PLAN)
    config.recommend.experiments_path = str(root / "experiments.yaml")
    feed = write_generated_feed(40, root / "feed", seed=2)  # garments with product shots
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
        ingest_feed(stack, feed, 40)
        prometheus.start()
        # Every target scraped once before any traffic: counters start at zero in Prometheus.
        jobs = len(stack.endpoints)
        assert wait_until(lambda: (r := prometheus.query("count(up == 1)")) and int(r[0]["value"][1]) == jobs,
                          timeout=60, interval=0.5), prometheus.query("up")  # fmt: skip
        yield stack, prometheus
    finally:
        prometheus.stop()
        stack.stop()


@dataclass
class Ledger:
    """What the test sent to one variant, tallied by the test itself."""

    exposures: int = 0
    purchases: int = 0
    value_minor: int = 0
    carts: int = 0
    tryons: int = 0
    ratings: list[int] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)  # by preview status

    def expected(self) -> dict[str, float | None]:
        """Each experiment recording rule's value over this traffic (None: 0/0)."""
        attempted = sum(n for status, n in self.items.items() if status != "skipped")
        failed = sum(self.items[s] for s in ("failed", "unavailable", "timed_out"))
        return {
            "drape:purchases_per_exposure:ratio_rate1h": self.purchases / self.exposures,
            "drape:revenue_per_exposure:ratio_rate1h": self.value_minor / self.exposures / 100,
            "drape:mean_rating:ratio_rate1h": sum(self.ratings) / len(self.ratings),
            "drape:high_rating_share:ratio_rate1h": sum(r >= 4 for r in self.ratings) / len(self.ratings),
            "drape:previews_shown_per_exposure:ratio_rate1h":
                (self.items["ok"] + self.items["cached"]) / self.exposures,
            "drape:tryons_per_exposure:ratio_rate1h": self.tryons / self.exposures,
            "drape:carts_per_exposure:ratio_rate1h": self.carts / self.exposures,
            "drape:preview_failures:ratio_rate1h": failed / attempted if attempted else None,
        }  # fmt: skip


def _traffic(stack: Stack, users: int = 120, with_photo: int = 3) -> tuple[int, dict[str, Ledger]]:
    """Each user gets a list (the first ``with_photo`` treatment users send a photo, so their
    lists carry previews); some look at a try-on, put a garment in the cart, buy it or rate,
    citing the list; and some calls fail (bad k). Returns the lists served and, per variant,
    what was sent."""
    rng = np.random.default_rng(4)
    gateway = gateway_pb2_grpc.GatewayServiceStub(connect(stack.address("gateway")))
    photo = common_pb2.Image(data=encode_jpeg(images.astronaut()))
    ledgers: dict[str, Ledger] = {}
    served = 0
    for i in range(users):
        user = f"shopper-{i}"
        treated = EXPERIMENT_PLAN.assign(user).previews
        request = gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=4, previews=treated)
        if treated and with_photo:
            request.photo.CopyFrom(photo)
            with_photo -= 1
        reply = gateway.Recommend(request, timeout=120)
        served += 1
        ledger = ledgers.setdefault(reply.assignment.variant, Ledger())
        ledger.exposures += 1
        ledger.items.update(preview_status_name(item.preview.status) for item in reply.items)

        def event(kind: int, garment: str = "", user: str = user, cited: str = reply.recommendation_id,
                  **fields) -> events_pb2.Event:  # fmt: skip
            return events_pb2.Event(event_id=uuid.uuid4().hex, user_id=user, type=kind, garment_id=garment,
                                    recommendation_id=cited, **fields)  # fmt: skip

        events = []
        garment = reply.items[int(rng.integers(4))].garment
        if rng.random() < 0.2:
            events.append(event(events_pb2.EVENT_TYPE_TRYON_VIEW, garment.garment_id))
            ledger.tryons += 1
        if rng.random() < 0.25:
            events.append(event(events_pb2.EVENT_TYPE_ADD_TO_CART, garment.garment_id))
            ledger.carts += 1
        if rng.random() < (0.3 if reply.assignment.variant == "treatment" else 0.15):
            events.append(event(events_pb2.EVENT_TYPE_PURCHASE, garment.garment_id,
                                value_minor=garment.price_minor))  # fmt: skip
            ledger.purchases += 1
            ledger.value_minor += garment.price_minor
        if rng.random() < 0.5:
            ledger.ratings.append(int(rng.integers(1, 6)))
            events.append(event(events_pb2.EVENT_TYPE_RATING, rating=ledger.ratings[-1]))
        if events:
            gateway.Track(gateway_pb2.TrackRequest(events=events), timeout=10)
        if i % 10 == 0:
            with pytest.raises(grpc.RpcError):
                gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=0))
    return served, ledgers


def _by_variant(prometheus: LocalPrometheus, promql: str) -> dict[str, float]:
    return {s["metric"]["variant"]: float(s["value"][1]) for s in prometheus.query(promql)}


def test_recording_rules_agree_with_the_report(observed):
    stack, prometheus = observed
    served, ledgers = _traffic(stack)
    assert sum(ledger.items["ok"] for ledger in ledgers.values()) > 0  # some previews were shown
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

    # Every experiment recording rule, per variant, against the test's own tally of what it
    # sent; and the ones that are the report's ratio metrics against the report.
    records = [m.live.record for m in METRICS if m.live is not None]
    assert set(records) == set(ledgers["control"].expected())
    same = {"drape:purchases_per_exposure:ratio_rate1h": "purchases_per_exposure",
            "drape:mean_rating:ratio_rate1h": "mean_rating",
            "drape:high_rating_share:ratio_rate1h": "high_rating_share"}  # fmt: skip

    def disagreements() -> list[tuple[str, str, float | None, float | None]]:
        wrong = []
        for record in records:
            got = rule(record)
            for variant, ledger in ledgers.items():
                want, value = ledger.expected()[record], got.get(variant)
                if want is None:
                    if value is not None and not np.isnan(value):
                        wrong.append((record, variant, want, value))
                elif value is None or value != pytest.approx(want, rel=1e-6):
                    wrong.append((record, variant, want, value))
                if record in same:
                    reported = variants[variant]["metrics"][same[record]]["value"]
                    if value is None or value != pytest.approx(reported, rel=1e-6):
                        wrong.append((record, f"{variant} (report)", reported, value))
        return wrong

    assert wait_until(lambda: not disagreements(), timeout=30, interval=0.5), disagreements()
    # RED: the bad calls are the caller's errors, not the service's. The gateway is a target
    # of its own: wait until a scrape of it has every call (one refused per ten users), then
    # for a rule evaluation after that scrape.
    method = 'grpc_service="drape.v1.GatewayService", grpc_method="Recommend"'
    calls = served + (served + 9) // 10
    handled = f"sum(drape_rpc_handled_total{{{method}}})"
    assert wait_until(lambda: (r := prometheus.query(handled)) and float(r[0]["value"][1]) == calls,
                      timeout=60, interval=0.5), prometheus.query(handled)  # fmt: skip
    scraped = float(
        prometheus.query(f"timestamp(max(drape_rpc_handled_total{{{method}}}))")[0]["value"][1]
    )
    errors = f"drape:rpc_errors:ratio_rate5m{{{method}}}"
    assert wait_until(lambda: (r := prometheus.query(f"timestamp({errors})")) and float(r[0]["value"][1]) > scraped,
                      timeout=30, interval=0.5), prometheus.query(errors)  # fmt: skip
    assert float(prometheus.query(errors)[0]["value"][1]) == 0.0
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
