"""Writes the per-service manifests of k8s/base from one table, so every service gets the
same probes, security context, scrape annotations and shutdown budget.

    python k8s/generate.py           # rewrite k8s/base/<service>.yaml
    python k8s/generate.py --check   # fail if they are stale (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

BASE = Path(__file__).parent / "base"
# name: (gRPC port, metrics port, replicas, cpu request, memory request, memory limit, autoscale to)
SERVICES = {
    "gateway": (50051, 9101, 2, "250m", "256Mi", "1Gi", 10),
    # Two CPUs for two worker processes (recommend.server.processes in config.yaml).
    "recommend": (50052, 9102, 2, "2", "2Gi", "6Gi", 8),
    "features": (50053, 9103, 2, "500m", "1Gi", "3Gi", 8),
    "tryon": (50054, 9104, 1, "250m", "512Mi", "2Gi", 4),
    "splice": (50055, 9105, 1, "250m", "512Mi", "2Gi", 4),
    "events": (50056, 9106, 2, "250m", "256Mi", "1Gi", 0),
}
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


def service_manifests(name: str) -> list[dict]:
    grpc_port, metrics_port, replicas, cpu, memory, memory_limit, autoscale = SERVICES[name]
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
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(metrics_port),
                    },
                },
                "spec": _pod_spec([container]),
            },
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
    ports = [{"name": "grpc", "containerPort": 8001}, {"name": "http", "containerPort": 8000},
             {"name": "metrics", "containerPort": 8002}]  # fmt: skip
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
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8002"},
                },
                "spec": _pod_spec([container]),
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "triton", "labels": labels},
        "spec": {"selector": labels, "ports": [
            {"name": "grpc", "port": 8001, "targetPort": "grpc", "appProtocol": "grpc"},
            {"name": "http", "port": 8000, "targetPort": "http"},
            {"name": "metrics", "port": 8002, "targetPort": "metrics"},
        ]},
    }  # fmt: skip
    return [deployment, service]


def rendered() -> dict[Path, str]:
    files = {BASE / f"{name}.yaml": service_manifests(name) for name in SERVICES}
    files[BASE / "triton.yaml"] = triton_manifests()
    header = "# Generated by k8s/generate.py: edit the table there, not this file.\n"
    return {
        path: header + yaml.safe_dump_all(docs, sort_keys=False) for path, docs in files.items()
    }


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
        print(f"stale manifests: {stale}; run python k8s/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
