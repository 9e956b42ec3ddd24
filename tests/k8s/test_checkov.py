"""checkov on every rendered tree and on the Dockerfile: no failed check. The few checks that
do not apply are skipped in the manifests themselves, each with its reason
(tools/k8s_manifests.py, CHECKOV_SKIPS)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.k8s.test_manifests import ROOT, _render
from tools.k8s_manifests import CHECKOV_SKIPS

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
pytestmark = pytest.mark.skipif(not CHECKOV.exists() and not os.environ.get("CI"),
                                reason="checkov is installed by scripts/install.sh")  # fmt: skip


def _checkov(folder: Path, framework: str) -> dict:
    # Offline: no mapping of checks to the vendor's platform.
    result = subprocess.run([str(CHECKOV), "-d", str(folder), "--framework", framework, "-o", "json", "--quiet"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})  # fmt: skip
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize(
    "overlay",
    [
        "k8s/base",
        "k8s/overlays/gpu",
        "k8s/overlays/monitoring",
        "k8s/overlays/tls",
        "k8s/overlays/gpu-tls",
        "k8s/overlays/object-storage",
    ],
)
def test_no_failed_check_on_a_rendered_tree(overlay: str, tmp_path: Path):
    import yaml

    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump_all(_render(overlay)))
    report = _checkov(tmp_path, "kubernetes")
    failed = [(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])]
    assert report["summary"]["passed"] > 500 and not failed, failed
    assert report["summary"]["parsing_errors"] == 0
    skipped = {c["check_id"] for c in report["results"].get("skipped_checks", [])}
    assert skipped <= set(CHECKOV_SKIPS)


def test_no_failed_check_on_the_dockerfile(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text((ROOT / "Dockerfile").read_text())
    report = _checkov(tmp_path, "dockerfile")
    failed = [c["check_id"] for c in report["results"].get("failed_checks", [])]
    assert report["summary"]["passed"] > 20 and not failed, failed
