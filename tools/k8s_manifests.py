"""Writes k8s/base from the service table (drape.services.table: names, ports, who calls whom)
and the sizing below: every service gets the same probes, security context, scrape
annotations and shutdown budget, and the ConfigMap points each service at its callees'
Services.

    python tools/k8s_manifests.py           # rewrite k8s/base/<service>.yaml
    python tools/k8s_manifests.py --check   # fail if they are stale (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from drape.services.table import MODEL_SERVER, SERVICE_NAMES, SERVICES, grpc_port

BASE = Path(__file__).resolve().parents[1] / "k8s" / "base"
# name: (replicas, cpu request, memory request, memory limit, autoscale to)
SIZING = {
    "gateway": (2, "250m", "256Mi", "1Gi", 10),
    # Two CPUs for two worker processes (recommend.server.processes in config.yaml).
    "recommend": (2, "2", "2Gi", "6Gi", 8),
    "features": (2, "500m", "1Gi", "3Gi", 8),
    "tryon": (1, "250m", "512Mi", "2Gi", 4),
    "splice": (1, "250m", "512Mi", "2Gi", 4),
    "events": (2, "250m", "256Mi", "1Gi", 0),
}
# Settings of the shared config file beyond ports and addresses, by config section.
SETTINGS = {
    "": {"data_dir": "/var/lib/drape", "log_level": "INFO"},
    # Calls are spread over this many connections (and so over pods and their workers).
    "gateway": {"recommend_connections": 8},
    # The experiments file is the ConfigMap's second key, mounted beside drape.toml (no
    # subPath, so an applied change reaches the pods and the services reload it).
    "recommend": {"refresh_s": 30, "experiments_path": "/etc/drape/experiments.yaml"},
    # Ranking is CPU-bound Python: one worker process per CPU requested.
    "recommend.server": {"processes": 2},
    "features": {"runner": "triton"},
    "triton": {"max_batch": 32, "max_queue_delay_us": 2000},
}
DRAIN_DELAY_S = 5
# Pods get SIGTERM, report NOT_SERVING for drain_delay_s (5 s), then drain for grace_s (10 s).
GRACE_SECONDS = 30


def _container(name: str, command: list[str], ports: list[dict], resources: dict) -> dict:
    return {
        "name": name,
        "image": "drape",
        "command": command,
        "ports": ports,
        "env": [
            {"name": "DRAPE_CONFIG", "value": "/etc/drape/drape.toml"},
            {"name": "OPENBLAS_NUM_THREADS", "value": "1"},
        ],
        "resources": resources,
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/drape", "readOnly": True},
            {"name": "data", "mountPath": "/var/lib/drape"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _pod_spec(containers: list[dict]) -> dict:
    return {
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "securityContext": {"fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": [
            {"name": "config", "configMap": {"name": "drape-config"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "drape-data"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }


def _pod_template(labels: dict, metrics_port: int, container: dict) -> dict:
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port)}
    return {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": _pod_spec([container]),
    }


def service_manifests(name: str) -> list[dict]:
    grpc_port, metrics_port = SERVICES[name].grpc_port, SERVICES[name].metrics_port
    replicas, cpu, memory, memory_limit, autoscale = SIZING[name]
    labels = {"app.kubernetes.io/name": name}
    probe = {"grpc": {"port": grpc_port}, "periodSeconds": 5, "failureThreshold": 3}
    container = _container(
        name,
        ["drape", "serve", name],
        [
            {"name": "grpc", "containerPort": grpc_port},
            {"name": "metrics", "containerPort": metrics_port},
        ],
        {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
    )
    container["readinessProbe"] = probe
    container["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 6}
    container["startupProbe"] = {**probe, "failureThreshold": 60}
    if name == "events":
        secret = {"secretKeyRef": {"name": "drape-events", "key": "store-url"}}
        container["env"].append({"name": "DRAPE_EVENTS__STORE_URL", "valueFrom": secret})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": _pod_template(labels, metrics_port, container),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "grpc", "port": grpc_port, "targetPort": "grpc", "appProtocol": "grpc"},
                {"name": "metrics", "port": metrics_port, "targetPort": "metrics"},
            ],
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }
    manifests = [deployment, service, budget]
    if autoscale:
        manifests.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": replicas,
                    "maxReplicas": autoscale,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                },
            }
        )
    return manifests


def triton_manifests() -> list[dict]:
    """The CPU model server: `drape serve triton` (Triton via pytriton) with Drape's models."""
    labels = {"app.kubernetes.io/name": "triton"}
    grpc, http, metrics = MODEL_SERVER.grpc_port, MODEL_SERVER.http_port, MODEL_SERVER.metrics_port
    ports = [{"name": "grpc", "containerPort": grpc}, {"name": "http", "containerPort": http},
             {"name": "metrics", "containerPort": metrics}]  # fmt: skip
    container = _container("triton", ["drape", "serve", "triton"], ports,
                           {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "6Gi"}})  # fmt: skip
    ready = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5}
    container["readinessProbe"] = ready
    container["livenessProbe"] = {
        "httpGet": {"path": "/v2/health/live", "port": "http"},
        "periodSeconds": 10,
    }
    container["startupProbe"] = {**ready, "failureThreshold": 60}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "triton", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": _pod_template(labels, metrics, container),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "triton", "labels": labels},
        "spec": {"selector": labels, "ports": [
            {"name": "grpc", "port": grpc, "targetPort": "grpc", "appProtocol": "grpc"},
            {"name": "http", "port": http, "targetPort": "http"},
            {"name": "metrics", "port": metrics, "targetPort": "metrics"},
        ]},
    }  # fmt: skip
    return [deployment, service]


def _toml_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _toml_section(name: str, values: dict[str, object]) -> list[str]:
    lines = [f"[{name}]"] if name else []
    return lines + [f"{key} = {_toml_value(value)}" for key, value in values.items()]


def config_toml() -> str:
    """The one config file every pod reads: each service listens on all interfaces on its
    table ports and reaches its callees through their Services' DNS names."""
    sections = [_toml_section("", SETTINGS[""])]
    for name in SERVICE_NAMES:
        entry = SERVICES[name]
        callees = {
            setting: f"{callee}:{grpc_port(callee)}" for callee, setting in entry.calls.items()
        }
        own = {**SETTINGS.get(name, {}), **callees}
        if own:
            sections.append(_toml_section(name, own))
        server = {"host": "0.0.0.0", "port": entry.grpc_port, "metrics_port": entry.metrics_port,
                  "drain_delay_s": DRAIN_DELAY_S, **SETTINGS.get(f"{name}.server", {})}  # fmt: skip
        sections.append(_toml_section(f"{name}.server", server))
    triton = {"host": "0.0.0.0", "grpc_port": MODEL_SERVER.grpc_port,
              "http_port": MODEL_SERVER.http_port, "metrics_port": MODEL_SERVER.metrics_port,
              **SETTINGS["triton"]}  # fmt: skip
    sections.append(_toml_section("triton", triton))
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


# What the cluster runs from the start: a holdout that keeps previews from a tenth of the
# shoppers, so the value of try-on previews is always being measured. Layers are declared for
# ranking and previews, so a ranking experiment can run beside it.
EXPERIMENTS = """\
# The experiments the cluster runs (see drape.recsys.experiments). Apply a change and the
# recommend and events services take it within seconds; changing the shares, salt, buckets or
# layer of a running experiment is refused unless that experiment says force: true.
defaults: {strategy: popularity, previews: true}
layers:
  - {name: ranking, salt: ranking-2026}
  - {name: previews, salt: previews-2026}
experiments:
  - name: previews-holdout
    layer: previews
    variants:
      - {name: control, share: 10, previews: false}
      - {name: treatment, share: 90, previews: true}
"""


def _indented(text: str) -> str:
    return "".join(f"    {line}\n" if line else "\n" for line in text.splitlines())


def config_map() -> str:
    return (
        "# One config file for every service (TOML; any value can be overridden per pod with\n"
        "# DRAPE_SECTION__KEY environment variables), and the experiments file.\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: drape-config\ndata:\n"
        f"  drape.toml: |\n{_indented(config_toml())}"
        f"  experiments.yaml: |\n{_indented(EXPERIMENTS)}"
    )


def rendered() -> dict[Path, str]:
    files = {BASE / f"{name}.yaml": service_manifests(name) for name in SERVICE_NAMES}
    files[BASE / "triton.yaml"] = triton_manifests()
    header = "# Generated by tools/k8s_manifests.py: edit the table there, not this file.\n"
    texts = {
        path: header + yaml.safe_dump_all(docs, sort_keys=False) for path, docs in files.items()
    }
    texts[BASE / "config.yaml"] = header + config_map()
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale manifests: {stale}; run python tools/k8s_manifests.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
