"""The Kubernetes manifests: generated from one table and fresh, rendered by kustomize,
valid against the Kubernetes 1.32 schemas, and consistent with Drape's own config."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from services.runtime.config import DrapeConfig

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = shutil.which("kubectl")


def _render(path: str) -> list[dict]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_generated_manifests_are_fresh():
    result = subprocess.run([sys.executable, str(ROOT / "k8s" / "generate.py"), "--check"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overlay", ["k8s/base", "k8s/overlays/gpu"])
def test_manifests_are_valid_kubernetes(overlay: str):
    import kubernetes_validate

    docs = _render(overlay)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32", strict=True)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in ("gateway", "recommend", "features", "tryon", "splice", "events", "triton"):
        assert ("Deployment", name) in kinds and ("Service", name) in kinds, name


def test_every_service_is_probed_bounded_and_locked_down():
    for doc in _render("k8s/base"):
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        name = doc["metadata"]["name"]
        assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container), name
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], (
            name
        )
        assert (
            container["securityContext"]["runAsNonRoot"]
            and container["securityContext"]["readOnlyRootFilesystem"]
        )
        assert doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        # Longer than the service's own drain (drain_delay_s 5 + grace_s 10).
        assert pod["terminationGracePeriodSeconds"] >= 15


def test_the_config_map_is_a_valid_drape_config_pointing_at_the_services():
    docs = _render("k8s/base")
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    data = tomllib.loads(config_map["data"]["drape.toml"])
    config = DrapeConfig.model_validate(data)
    services = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for d in docs
        if d["kind"] == "Service"
    }
    gateway = config.gateway
    for address in (gateway.recommend_address, gateway.features_address, gateway.tryon_address,
                    gateway.splice_address, gateway.events_address, config.features.triton_url):  # fmt: skip
        host, port = address.rsplit(":", 1)
        assert int(port) in services[host], address
    for name in ("gateway", "recommend", "features", "tryon", "splice", "events"):
        server = config.server(name)
        assert server.host == "0.0.0.0" and server.port in services[name], name
