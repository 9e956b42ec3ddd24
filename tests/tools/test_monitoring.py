"""The monitoring files are generated from drape.monitoring and fresh; promtool accepts every
rule and passes every rule's test (a case that fires each alert and one that keeps it quiet,
a known value for each recording); every rule and panel reads metrics the services export,
as listed from their code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from drape.monitoring import rules as r
from drape.monitoring.dashboards import DASHBOARDS, queries
from drape.monitoring.inventory import InventoryError, _definitions, family_of, metrics
from tools.monitoring import ROOT, rendered

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                                    reason="promtool comes with the prometheus package")  # fmt: skip


def test_the_files_are_fresh():
    stale = [str(p) for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    assert not stale, "run python tools/monitoring.py"


def test_every_rule_has_its_cases():
    tests = "".join(p.read_text() for p in (ROOT / "rules" / "tests").glob("*.test.yml"))
    for rec in r.recordings():
        assert f"name: {rec.record}\n" in tests and rec.expected
    for alert in r.alerts():
        assert f"name: {alert.name} fires" in tests and f"name: {alert.name} stays quiet" in tests
        assert alert.runbook.startswith("runbook: ") and alert.severity in ("page", "ticket")
    names = [a.name for a in r.alerts()] + [x.record for x in r.recordings()]
    assert len(names) == len(set(names))


def test_every_metric_a_rule_or_panel_reads_is_exported():
    known = metrics()
    read = set()
    exprs = [x.expr for x in r.recordings()] + [a.expr for a in r.alerts()]
    for expr in exprs + [q.expr for _, _, q in queries()]:
        read |= set(re.findall(r"\b(drape_[a-z_]+)", expr))
    assert read and not {name for name in read if family_of(name, known) is None}


def test_the_metric_list_is_read_from_the_code(tmp_path):
    """Names, kinds, labels and buckets as the services define them; a metric whose name or
    labels are computed cannot be listed, and is refused with its place."""
    by_name = {m.name: m for m in metrics()}
    rpc = by_name["drape_rpc_handled"]
    assert rpc.kind == "counter" and rpc.labels == ("grpc_service", "grpc_method", "grpc_code")
    assert rpc.services == ("*",) and rpc.series == ("drape_rpc_handled_total",)
    latency = by_name["drape_rpc_duration_seconds"]
    assert 0.3 in latency.buckets  # the Recommend latency objective is a bucket boundary
    assert by_name["drape_cache_lookups"].services == ("gateway", "tryon", "web")
    assert by_name["drape_experiment_reload_failures"].services == ("events", "recommend")
    module = tmp_path / "m.py"
    module.write_text('from prometheus_client import Counter\nname = "x"\n'
                      'Counter(f"drape_{name}", "Computed.")\n')  # fmt: skip
    with pytest.raises(InventoryError, match=r"m.py:3: the metric's name must be a literal"):
        _definitions(module)
    module.write_text(
        'from prometheus_client import Gauge\nL = ["a"]\nGauge("drape_x", "Help.", L)\n'
    )
    with pytest.raises(InventoryError, match="label names must be a literal"):
        _definitions(module)
    module.write_text('from prometheus_client import Gauge\nGauge("queue_depth", "Help.")\n')
    with pytest.raises(InventoryError, match="named drape_"):
        _definitions(module)


@needs_promtool
def test_promtool_checks_and_tests_every_rule(tmp_path):
    files = sorted(str(p) for p in (ROOT / "rules").glob("*.yml"))
    checked = subprocess.run(
        ["promtool", "check", "rules", *files], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool runs one test file on one core: the test files, the long one in halves, run
    # side by side.
    import yaml

    tests_dir = ROOT / "rules" / "tests"
    parts = []
    for name in ("rules.test.yml", "error-budgets.test.yml"):
        suite = yaml.safe_load((tests_dir / name).read_text())
        suite["rule_files"] = [str((tests_dir / f).resolve()) for f in suite["rule_files"]]
        halves = (suite["tests"],) if name == "rules.test.yml" else (
            suite["tests"][::2], suite["tests"][1::2])  # fmt: skip
        for i, tests in enumerate(halves):
            part = tmp_path / f"{i}-{name}"
            part.write_text(yaml.safe_dump({**suite, "tests": tests}, sort_keys=False))
            parts.append(part)
    assert sum(len(yaml.safe_load(p.read_text())["tests"]) for p in parts) > 40
    runs = [subprocess.Popen(["promtool", "test", "rules", str(p)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for p in parts]  # fmt: skip
    for part, run in zip(parts, runs, strict=True):
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, f"{part.name}: {output}"


@pytest.mark.skipif(shutil.which("amtool") is None and not os.environ.get("CI"),
                    reason="amtool comes with prometheus-alertmanager (scripts/install.sh)")  # fmt: skip
def test_alertmanager_routes_by_severity():
    config = str(ROOT / "alertmanager.yml")
    checked = subprocess.run(
        ["amtool", "check-config", config], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for labels, receiver in ((["severity=page", "alertname=DrapeTritonDown"], "page"),
                             (["severity=ticket", "alertname=DrapePreviewFailureRatio"], "ticket"),
                             (["alertname=Unlabelled"], "ticket")):  # fmt: skip
        routed = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert routed.stdout.strip() == receiver, (labels, routed.stdout, routed.stderr)


def test_dashboards_are_well_formed_grafana_json():
    for uid in DASHBOARDS:
        board = json.loads((ROOT / "dashboards" / f"{uid}.json").read_text())
        assert board["uid"] == uid and board["panels"]
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
            # Plain PromQL: Grafana's variables would not run in Prometheus as they stand.
            assert not any("$" in t["expr"] for t in panel["targets"])
