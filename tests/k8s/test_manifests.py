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

from drape.recsys.experiments import parse_plan
from drape.services.runtime.config import DrapeConfig
from drape.services.table import SERVICE_NAMES, SERVICES

ROOT = Path(__file__).resolve().parents[2]
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
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "k8s_manifests.py"), "--check"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "overlay",
    [
        "k8s/base",
        "k8s/overlays/gpu",
        "k8s/overlays/tls",
        "k8s/overlays/gpu-tls",
        "k8s/overlays/object-storage",
    ],
)
def test_manifests_are_valid_kubernetes(overlay: str):
    import kubernetes_validate

    docs = _render(overlay)
    for doc in docs:
        if doc["apiVersion"].startswith("cert-manager.io/"):
            continue  # a CRD: checked by test_the_tls_component_issues_every_certificate
        kubernetes_validate.validate(doc, "1.32", strict=True)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in (*SERVICE_NAMES, "triton"):
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
    # Every address a service calls (the service table says which) is a rendered Service's port.
    for name, entry in SERVICES.items():
        for callee, setting in entry.calls.items():
            address = getattr(getattr(config, name), setting)
            host, port = address.rsplit(":", 1)
            assert host == callee and int(port) in services[host], f"{name}.{setting} = {address}"
    for name in SERVICE_NAMES:
        server = config.server(name)
        assert server.host == "0.0.0.0" and server.port in services[name], name


def test_the_cluster_runs_a_valid_experiment_plan_from_the_mounted_config():
    docs = _render("k8s/base")
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    config = DrapeConfig.model_validate(tomllib.loads(config_map["data"]["drape.toml"]))
    path = Path(config.recommend.experiments_path)
    assert path.parent == Path("/etc/drape") and path.name in config_map["data"]
    plan = parse_plan(yaml.safe_load(config_map["data"][path.name]))
    assert [e.name for e in plan.experiments] == ["previews-holdout"]
    # Mounted whole (no subPath), so an applied change reaches the running pods.
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] in ("recommend", "events"):
            mounts = d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            config_mount = next(m for m in mounts if m["name"] == "config")
            assert config_mount["mountPath"] == "/etc/drape" and "subPath" not in config_mount


def test_the_monitoring_overlay_scrapes_every_pod_and_carries_the_rules(tmp_path: Path):
    """Prometheus Operator objects (their CRDs are not in the Kubernetes schemas, so they are
    checked here): the PodMonitor selects every Deployment's pods on a port they have, naming
    the job as the rules expect; the PrometheusRule is the rule files, accepted by promtool."""
    import kubernetes_validate

    from tools.monitoring import rule_files

    docs = _render("k8s/overlays/monitoring")
    for doc in docs:
        if doc["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(doc, "1.32", strict=True)
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert all(e["relabelings"][0]["targetLabel"] == "job" for e in endpoints)
    for d in docs:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]
            assert pod["metadata"]["labels"]["app.kubernetes.io/name"] in selected, d["metadata"][
                "name"
            ]
            ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            # Exactly one endpoint scrapes each pod (no series twice).
            assert sum(e["port"] in ports for e in endpoints) == 1, d["metadata"]["name"]
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["metadata"]["namespace"] == "drape"
    assert rule["spec"]["groups"] == [g for data in rule_files().values() for g in data["groups"]]
    if shutil.which("promtool"):
        path = tmp_path / "rules.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                                 timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboards = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "drape-dashboards"
    )
    assert (
        dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
        and len(dashboards["data"]) == 3
    )


def test_the_autoscalers_read_metrics_the_adapter_serves(tmp_path: Path):
    """Gateway and recommend scale on requests per second per pod, Triton on its queue time:
    each custom metric an HPA names is one prometheus-adapter's rules define, and each rule's
    query (its template filled in as the adapter does) is valid PromQL."""
    from tools.monitoring import adapter_values

    docs = _render("k8s/overlays/monitoring")
    hpas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    custom = {name: [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
              for name, hpa in hpas.items()}  # fmt: skip
    assert custom["gateway"] and custom["recommend"] and custom["triton"]
    assert hpas["triton"]["spec"]["scaleTargetRef"]["name"] == "triton"
    rules = adapter_values()["rules"]["custom"]
    served = {rule["name"]["as"] for rule in rules}
    assert {m for names in custom.values() for m in names} <= served
    expressions = []
    for rule in rules:
        series = rule["seriesQuery"].split("{")[0]
        query = (rule["metricsQuery"].replace("<<.Series>>", series)
                 .replace("<<.LabelMatchers>>", 'namespace="drape",pod=~"gateway-.*"')
                 .replace("<<.GroupBy>>", "pod"))  # fmt: skip
        expressions.append({"record": f"adapter:{rule['name']['as']}", "expr": query})
    if shutil.which("promtool"):
        path = tmp_path / "adapter.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": expressions}]}))
        checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                                 timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_tls_component_issues_every_certificate():
    """cert-manager objects (CRDs, so checked here): a CA issuer chain, and a certificate for
    every service (its Service's DNS names) and for the jobs, whose Secrets the pods mount."""
    docs = _render("k8s/overlays/tls")
    certificates = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Certificate"}
    issuers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Issuer"}
    assert (
        certificates["drape-ca"]["isCA"] and issuers["drape-ca"]["ca"]["secretName"] == "drape-ca"
    )
    mounted = {v["secret"]["secretName"] for d in docs if d["kind"] in ("Deployment", "CronJob")
               for v in (d["spec"].get("jobTemplate", {}).get("spec", d["spec"])["template"]["spec"]["volumes"])
               if "secret" in v}  # fmt: skip
    for name in (*SERVICE_NAMES, "client"):
        spec = certificates[f"drape-{name}"]
        assert spec["issuerRef"]["name"] == "drape-ca" and "client auth" in spec["usages"]
        assert spec["secretName"] in mounted, name
        if name != "client":
            assert f"{name}.drape.svc" in spec["dnsNames"] and name in spec["dnsNames"]
