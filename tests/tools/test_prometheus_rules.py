"""The experiment recording rules come from the metric catalog the report reads: fresh, valid
for promtool, and each one computes its metric from the counters the services export."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from drape.recsys.outcomes import METRICS
from tools.prometheus_rules import OUT, render


def test_the_rule_file_is_fresh():
    assert OUT.read_text() == render(), "run python tools/prometheus_rules.py"


def test_every_live_metric_has_a_rule_named_after_the_convention():
    text = OUT.read_text()
    for m in METRICS:
        if m.live is not None:
            assert f"record: {m.live.record}" in text
            assert m.live.record.startswith("drape:") and m.live.record.count(":") == 2


@pytest.mark.skipif(shutil.which("promtool") is None and not __import__("os").environ.get("CI"),
                    reason="promtool comes with the prometheus package (scripts/install.sh)")  # fmt: skip
def test_promtool_accepts_the_rules_and_they_compute_the_metrics(tmp_path):
    checked = subprocess.run(["promtool", "check", "rules", str(OUT)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Two variants over an hour: 100 exposures and 10 purchases per minute in treatment,
    # 100 and 5 in control; ratings 5,5,2 per minute in treatment.
    series = {
        'drape_exposures_total{experiment="e", variant="t"}': "0+100x120",
        'drape_exposures_total{experiment="e", variant="c"}': "0+100x120",
        'drape_events_total{type="purchase", experiment="e", variant="t"}': "0+10x120",
        'drape_events_total{type="purchase", experiment="e", variant="c"}': "0+5x120",
        'drape_satisfaction_rating_sum{experiment="e", variant="t"}': "0+12x120",
        'drape_satisfaction_rating_count{experiment="e", variant="t"}': "0+3x120",
        'drape_satisfaction_rating_bucket{le="3.0", experiment="e", variant="t"}': "0+1x120",
    }
    lines = "\n".join(
        f"          - series: '{k}'\n            values: '{v}'" for k, v in series.items()
    )
    # Each rule's value, within floating-point rounding, per variant (1 = as expected).
    checks = "\n".join(
        f"      - expr: abs(drape:{name}:ratio_rate1h{{variant=\"{v}\"}} - {value!r}) < bool 1e-9\n"
        f"        eval_time: 100m\n"
        f"        exp_samples:\n"
        f"          - labels: '{{experiment=\"e\", variant=\"{v}\", metric=\"{name}\"}}'\n"
        f"            value: 1"
        for name, v, value in (("purchases_per_exposure", "t", 0.1),
                               ("purchases_per_exposure", "c", 0.05),
                               ("mean_rating", "t", 4.0), ("high_rating_share", "t", 2 / 3))
    )  # fmt: skip
    tests = tmp_path / "test.yml"
    tests.write_text(f"""rule_files: [{OUT}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{lines.replace("          - ", "      - ").replace("            values", "        values")}
    promql_expr_test:
{checks}
""")
    result = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
