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

from drape.services.table import MODEL_SERVER, SERVICE_NAMES, SERVICES, WEB, grpc_port

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
    "web": (2, "250m", "256Mi", "1Gi", 10),
}
# Settings of the shared config file beyond ports and addresses, by config section.
SETTINGS = {
    "": {"data_dir": "/var/lib/drape", "log_level": "INFO"},
    # Calls are spread over this many connections (and so over pods and their workers).
    # Storefronts need an API key (`drape keys new`), from the Secret drape-api-keys.
    "gateway": {"recommend_connections": 8},
    # The experiments file is the ConfigMap's second key, mounted beside drape.toml (no
    # subPath, so an applied change reaches the pods and the services reload it).
    "recommend": {"refresh_s": 30, "experiments_path": "/etc/drape/experiments.yaml"},
    # Ranking is CPU-bound Python: one worker process per CPU requested.
    "recommend.server": {"processes": 2},
    # No server reflection in production: the API is the protos.
    "*.server": {"reflection": False},
    "features": {"runner": "triton"},
    "triton": {"max_batch": 32, "max_queue_delay_us": 2000},
    # Preview URLs lead to the web front through your ingress or CDN: set its public URL.
    "previews": {"public_url": "https://drape.example.com"},
    # The JSON API and the preview URLs; the demo storefront and the analyst page (which reads
    # the event store) stay off in a cluster.
    "web": {
        "address": f"0.0.0.0:{WEB.http_port}",
        "gateway_address": f"gateway:{SERVICES['gateway'].grpc_port}",
        "pages": False,
    },
}
# The image every Drape container runs: kustomize's `images` sets it in the base and in every
# overlay (an overlay's patches come after the base's transformers), from here.
IMAGE_NAME = "drape"
IMAGE = {"name": IMAGE_NAME, "newName": "ghcr.io/drape-platform/drape", "newTag": "0.1.0"}
# The Secrets the platform creates (nothing with credentials is committed), each mounted as
# files in its own folder of the pods that use it:
#   kubectl -n drape create secret generic drape-events --from-literal=store-url=postgresql://...
#   kubectl -n drape create secret generic drape-api-keys --from-file=api-keys.yaml
#   kubectl -n drape create secret generic drape-preview-keys \
#     --from-literal=signing.keys="$(openssl rand -base64 48)"
SECRETS_DIR = "/var/run/secrets/drape"
SECRETS = {
    "event-store": {"name": "drape-events", "key": "store-url"},
    "api-keys": {"name": "drape-api-keys", "key": "api-keys.yaml"},
    # The preview URLs' HMAC keys, shared by the gateway (signs) and the web front (checks).
    "preview-keys": {"name": "drape-preview-keys", "key": "signing.keys"},
}
EVENT_STORE_SECRET = SECRETS["event-store"]


def secret_file(volume: str) -> str:
    return f"{SECRETS_DIR}/{volume}/{SECRETS[volume]['key']}"


SETTINGS["gateway"]["api_keys_path"] = secret_file("api-keys")
SETTINGS["previews"]["signing_keys_path"] = secret_file("preview-keys")
# checkov's findings that do not apply, each with its reason, as the annotations it reads.
CHECKOV_SKIPS = {
    "CKV_K8S_11": "no CPU limits on purpose: CFS throttling adds tail latency to gRPC calls; requests size "
                  "the pods and the HPAs add pods",
    "CKV_K8S_43": "the tag is pinned here; the release pipeline pins the built image's digest with "
                  "kustomize edit set image",
}  # fmt: skip
assert not any("=" in reason for reason in CHECKOV_SKIPS.values())  # checkov splits on it


def _skips() -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in
            enumerate(CHECKOV_SKIPS.items(), 1)}  # fmt: skip


DRAIN_DELAY_S = 5
# Each service's plaintext health-only port: its gRPC port plus this.
HEALTH_PORT_OFFSET = 100


def health_port(name: str) -> int:
    return SERVICES[name].grpc_port + HEALTH_PORT_OFFSET


# Pods get SIGTERM, report NOT_SERVING for drain_delay_s (5 s), then drain for grace_s (10 s).
GRACE_SECONDS = 30


def _container(name: str, command: list[str], ports: list[dict], resources: dict,
               event_store: bool = False, secrets: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """A container of the Drape image: the config file, the shared data volume, and with
    ``event_store`` the event store's URL from its Secret."""
    env = [
        {"name": "DRAPE_CONFIG", "value": "/etc/drape/drape.toml"},
        {"name": "OPENBLAS_NUM_THREADS", "value": "1"},
    ]
    mounts = [
        {"name": "config", "mountPath": "/etc/drape", "readOnly": True},
        {"name": "data", "mountPath": "/var/lib/drape"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if event_store:
        # The URL as a file from the Secret, never in the env (which leaks into crash dumps
        # and `kubectl describe`).
        env.append({"name": "DRAPE_EVENTS__STORE_URL_FILE", "value": secret_file("event-store")})
        secrets = ("event-store", *secrets)
    for volume in secrets:
        mounts.append({"name": volume, "mountPath": f"{SECRETS_DIR}/{volume}", "readOnly": True})
    return {
        "name": name,
        "image": IMAGE_NAME,
        "imagePullPolicy": "Always",
        "command": command,
        "ports": ports,
        "env": env,
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _pod_spec(containers: list[dict]) -> dict:
    volumes = [
        {"name": "config", "configMap": {"name": "drape-config"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "drape-data"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounted = {m["name"] for c in containers for m in c["volumeMounts"]}
    for volume, secret in SECRETS.items():
        if volume in mounted:
            volumes.append({"name": volume, "secret": {
                "secretName": secret["name"], "defaultMode": 0o440,
                "items": [{"key": secret["key"], "path": secret["key"]}]}})  # fmt: skip
    return {
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        # No pod talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    }


def _pod_template(labels: dict, metrics_port: int, container: dict) -> dict:
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port)}
    return {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": _pod_spec([container]),
    }


def service_manifests(name: str) -> list[dict]:
    grpc_port, metrics_port = SERVICES[name].grpc_port, SERVICES[name].metrics_port
    _, cpu, memory, memory_limit, _ = SIZING[name]
    # The kubelet's gRPC probes speak plaintext only: they ask the health-only port, which
    # stays plaintext when the service port serves TLS (k8s/components/tls).
    probe = {"grpc": {"port": health_port(name)}, "periodSeconds": 5, "failureThreshold": 3}
    container = _container(
        name,
        ["drape", "serve", name],
        [
            {"name": "grpc", "containerPort": grpc_port},
            {"name": "metrics", "containerPort": metrics_port},
            {"name": "health", "containerPort": health_port(name)},
        ],
        {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        event_store=SERVICES[name].event_store,
        secrets=("api-keys", "preview-keys") if name == "gateway" else (),
    )
    ports = [
        {"name": "grpc", "port": grpc_port, "targetPort": "grpc", "appProtocol": "grpc"},
        {"name": "metrics", "port": metrics_port, "targetPort": "metrics"},
    ]
    return _workload(name, container, probe, ports, metrics_port)


def _workload(name: str, container: dict, probe: dict, ports: list[dict],
              metrics_port: int) -> list[dict]:  # fmt: skip
    """A Deployment of ``container`` (probed with ``probe``) behind a Service on ``ports``,
    with its disruption budget and, where SIZING says so, an autoscaler."""
    replicas, _, _, _, autoscale = SIZING[name]
    labels = {"app.kubernetes.io/name": name}
    container["readinessProbe"] = probe
    container["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 6}
    container["startupProbe"] = {**probe, "failureThreshold": 60}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": _skips()},
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
        "spec": {"selector": labels, "ports": ports},
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


def web_manifests() -> list[dict]:
    """The web front (`drape web`): the JSON API and the preview URLs over HTTP, probed on
    /healthz, scraped on its one port."""
    port = WEB.http_port
    _, cpu, memory, memory_limit, _ = SIZING[WEB.name]
    container = _container(
        WEB.name, ["drape", "web", "--no-stack"], [{"name": WEB.name, "containerPort": port}],
        {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        event_store=True, secrets=("preview-keys",),
    )  # fmt: skip
    probe = {
        "httpGet": {"path": "/healthz", "port": WEB.name},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return _workload(
        WEB.name, container, probe, [{"name": "http", "port": port, "targetPort": WEB.name}], port
    )


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
        "metadata": {"name": "triton", "labels": labels, "annotations": _skips()},
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
    # One model server at a time may be drained (a node upgrade); with one replica that waits
    # for its replacement to be ready.
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "triton"},
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}  # fmt: skip
    return [deployment, service, budget]


# Where the ingest job reads a feed: the shared volume (copy the feed and its images there).
FEED = "/var/lib/drape/feeds/catalog.csv"
FEED_IMAGES = "/var/lib/drape/feeds/images"


def _job_command(job: str) -> list[str]:
    if job == "drape-ingest":
        return ["drape", "ingest", FEED, "--images", FEED_IMAGES,
                "--features", f"features:{grpc_port('features')}"]  # fmt: skip
    if job == "drape-compact-events":
        return ["drape", "events", "compact"]
    return ["drape", "train", "recsys"]


def job_manifests() -> list[dict]:
    """The batch side: ingest (on demand: a suspended CronJob is its template,
    ``kubectl create job --from=cronjob/drape-ingest``) embeds a feed through the features
    service and publishes the catalog and index on the shared volume; training runs nightly
    from the event store and publishes a recommender version there. The recommend pods pick
    up both on their next refresh."""

    def cron(name: str, schedule: str, command: list[str], resources: dict, suspend: bool,
             event_store: bool = False) -> dict:  # fmt: skip
        container = _container(name, command, [], resources, event_store=event_store)
        del container["ports"]
        pod = _pod_spec([container])
        pod["restartPolicy"] = "Never"
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "job"}
        return {
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "labels": labels, "annotations": _skips()},
            "spec": {
                "schedule": schedule, "suspend": suspend, "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {
                    "backoffLimit": 2, "activeDeadlineSeconds": 6 * 3600, "ttlSecondsAfterFinished": 7 * 86400,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                }},
            },
        }  # fmt: skip

    return [
        cron("drape-ingest", "0 0 1 1 *", _job_command("drape-ingest"),
             {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}, suspend=True),
        cron("drape-train-recsys", "30 2 * * *", _job_command("drape-train-recsys"),
             {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "12Gi"}}, suspend=False,
             event_store=True),
        # Retention: events older than ten half-lives archived to Parquet, kept as aggregates.
        cron("drape-compact-events", "15 3 * * 0", _job_command("drape-compact-events"),
             {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}, suspend=False,
             event_store=True),
    ]  # fmt: skip


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
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
                  "health_port": health_port(name), "drain_delay_s": DRAIN_DELAY_S, **SETTINGS["*.server"],
                  **SETTINGS.get(f"{name}.server", {})}  # fmt: skip
        sections.append(_toml_section(f"{name}.server", server))
    sections += [
        _toml_section("previews", SETTINGS["previews"]),
        _toml_section("web", SETTINGS["web"]),
    ]
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


# The jobs' callees (the services' own are in the service table).
JOB_CALLS = {"drape-ingest": ("features",)}
JOB_EVENT_STORE = ("drape-train-recsys", "drape-compact-events")
POSTGRES_PORT = 5432
# Prometheus runs in this namespace (the monitoring overlay's PodMonitor is read from it).
MONITORING_NAMESPACE = "monitoring"


def _pods(*names: str) -> dict:
    return {"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": sorted(names)}]}}  # fmt: skip


def _policy(name: str, selected: dict, ingress: list[dict] | None = None,
            egress: list[dict] | None = None) -> dict:  # fmt: skip
    spec: dict = {"podSelector": selected, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def network_policies() -> list[dict]:
    """Default deny, then exactly the service graph: each service (and Triton) takes its gRPC
    port from its callers only, and each caller may reach exactly its callees; the gateway
    takes calls from anywhere (narrow it to your ingress controller); Prometheus in the
    monitoring namespace scrapes every metrics port; the event store's users reach
    PostgreSQL; every pod resolves names (DNS)."""
    callers: dict[str, set[str]] = {}
    calls: dict[str, tuple[str, ...]] = {
        **{n: tuple(e.calls) for n, e in SERVICES.items()},
        WEB.name: WEB.calls,
        **JOB_CALLS,
    }
    for caller, callees in calls.items():
        for callee in callees:
            callers.setdefault(callee, set()).add(caller)
    policies = [
        _policy("default-deny", {}, ingress=[], egress=[]),
        _policy("dns", {}, egress=[{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]),
    ]  # fmt: skip
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}
    }
    for name in (*SERVICE_NAMES, MODEL_SERVER.name):
        port = grpc_port(name)
        metrics = (
            MODEL_SERVER.metrics_port if name == MODEL_SERVER.name else SERVICES[name].metrics_port
        )
        sources = [] if name == "gateway" else [_pods(*callers[name])]
        ingress = [{"ports": [{"protocol": "TCP", "port": port}], **({"from": sources} if sources else {})},
                   {"from": [monitoring], "ports": [{"protocol": "TCP", "port": metrics}]}]  # fmt: skip
        policies.append(_policy(f"{name}-ingress", _pods(name)["podSelector"], ingress=ingress))
    # The web front: from anywhere (narrow it to your ingress controller), Prometheus included.
    policies.append(_policy(f"{WEB.name}-ingress", _pods(WEB.name)["podSelector"],
                            ingress=[{"ports": [{"protocol": "TCP", "port": WEB.http_port}]}]))  # fmt: skip
    for caller, callees in calls.items():
        egress = [{"to": [_pods(callee)], "ports": [{"protocol": "TCP", "port": grpc_port(callee)}]}
                  for callee in callees]  # fmt: skip
        if egress:
            policies.append(
                _policy(f"{caller}-egress", _pods(caller)["podSelector"], egress=egress)
            )
    store_users = [n for n, e in SERVICES.items() if e.event_store] + [WEB.name, *JOB_EVENT_STORE]
    policies.append(_policy("event-store-egress", _pods(*store_users)["podSelector"],
                            egress=[{"ports": [{"protocol": "TCP", "port": POSTGRES_PORT}]}]))  # fmt: skip
    return policies


BASE_KUSTOMIZATION = """\
# Drape on Kubernetes: every service as a Deployment behind a ClusterIP Service, gRPC health
# probes, Prometheus scrape annotations, autoscaling for the request path, the CPU model
# server (Triton through pytriton), and the ingest and training jobs. The `gpu` overlay swaps
# the model server for NVIDIA's Triton container on a GPU node.
#   kubectl -n drape create secret generic drape-events --from-literal=store-url=postgresql://...
#   kubectl -n drape create secret generic drape-preview-keys \
#     --from-literal=signing.keys="$(openssl rand -base64 48)"
#   kubectl apply -k k8s/base            # CPU
#   kubectl apply -k k8s/overlays/gpu    # GPU Triton
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: drape
labels:
  - pairs:
      app.kubernetes.io/part-of: drape
    includeSelectors: false
"""


def _kustomization(header: str, resources: list[str], **extra: object) -> str:
    body = {"resources": resources, **extra, "images": [IMAGE]}
    return header + yaml.safe_dump(body, sort_keys=False)


def gpu_triton_patch() -> dict:
    """NVIDIA's Triton on a GPU node, serving exactly the models the services call (explicit
    model control: a model missing from the repository fails the pod's start, not a call)."""
    from drape.models.encoder import ENCODER_MODEL
    from drape.models.tryon.export import TRYON_MODEL

    grpc, http, metrics = MODEL_SERVER.grpc_port, MODEL_SERVER.http_port, MODEL_SERVER.metrics_port
    export = _container("export-models", ["drape", "export", "models", "--repository", "/models"], [], {
        "requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "6Gi"}})  # fmt: skip
    del export["ports"]
    export["volumeMounts"].append({"name": "models", "mountPath": "/models"})
    triton = {
        "name": "triton",
        "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
        "imagePullPolicy": "Always",
        "command": ["tritonserver"],
        "args": ["--model-repository=/models", "--model-control-mode=explicit",
                 *(f"--load-model={m}" for m in (ENCODER_MODEL, TRYON_MODEL)),
                 f"--grpc-port={grpc}", f"--http-port={http}", f"--metrics-port={metrics}",
                 "--exit-timeout-secs=10"],
        # Triton writes only caches (under $HOME) and temporary files: both on /tmp.
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": 1},
                      "limits": {"memory": "16Gi", "nvidia.com/gpu": 1}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "triton"},
        "spec": {"template": {"spec": {
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            # Exports the encoder and the try-on generator (checked against torch) into the
            # model repository the server loads.
            "initContainers": [export],
            "containers": [triton],
            "volumes": [{"name": "models", "emptyDir": {}}],
        }}},
    }  # fmt: skip


TLS = BASE.parent / "components" / "tls"
TLS_OVERLAY = BASE.parent / "overlays" / "tls"
GPU_TLS = BASE.parent / "overlays" / "gpu-tls"
TLS_DIR = f"{SECRETS_DIR}/tls"
TLS_COMPONENT = """\
# TLS everywhere and mTLS inside, with cert-manager (its CRDs installed): a CA of the
# cluster's own (a self-signed root issues it; point `drape-ca` at your organisation's issuer
# instead), a certificate per service and one for the jobs, each renewed by cert-manager and
# re-read by the service without a restart. Every service serves TLS on its port and requires
# client certificates, except the gateway, whose callers are storefronts (API keys); callers
# verify every server against the CA. The probes use the plaintext health-only ports.
# Generated by tools/k8s_manifests.py. Use it from an overlay:
#   components: [../../components/tls]
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
"""


def _certificate(name: str, secret: str, dns: list[str], issuer: str, is_ca: bool = False) -> dict:
    spec: dict = {"secretName": secret, "issuerRef": {"name": issuer, "kind": "Issuer"},
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}}  # fmt: skip
    if is_ca:
        spec |= {"isCA": True, "commonName": "drape-ca", "duration": "87600h"}
    else:
        spec |= {"dnsNames": dns, "duration": "2160h", "renewBefore": "360h",
                 "usages": ["server auth", "client auth", "digital signature", "key encipherment"]}  # fmt: skip
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": spec,
    }


def tls_resources() -> list[dict]:
    issuers = [
        {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "drape-selfsigned"},
         "spec": {"selfSigned": {}}},
        _certificate("drape-ca", "drape-ca", [], "drape-selfsigned", is_ca=True),
        {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "drape-ca"},
         "spec": {"ca": {"secretName": "drape-ca"}}},
    ]  # fmt: skip
    names = [*SERVICE_NAMES, MODEL_SERVER.name, "client"]
    certificates = [_certificate(f"drape-{n}", f"drape-{n}-tls", [n, f"{n}.drape.svc",
                                 f"{n}.drape.svc.cluster.local"], "drape-ca") for n in names]  # fmt: skip
    return issuers + certificates


def _tls_mount(identity: str) -> tuple[dict, dict]:
    volume = {"name": "tls", "secret": {"secretName": f"drape-{identity}-tls", "defaultMode": 0o440, "items": [
        {"key": k, "path": k} for k in ("tls.crt", "tls.key", "ca.crt")]}}  # fmt: skip
    return volume, {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}


def _tls_env(prefix: str, server: bool, mutual: bool) -> list[dict]:
    files = {"CERTIFICATE": "tls.crt", "PRIVATE_KEY": "tls.key", "CA": "ca.crt"}
    if server and mutual:
        files["CLIENT_CA"] = "ca.crt"
    return [{"name": f"{prefix}__{k}", "value": f"{TLS_DIR}/{f}"} for k, f in files.items()]


def tls_patches() -> list[dict]:
    """Per workload: its certificate's Secret mounted, and the settings that point at it."""
    patches = []
    for name in SERVICE_NAMES:
        volume, mount = _tls_mount(name)
        env = _tls_env(f"DRAPE_{name.upper()}__SERVER__TLS", server=True, mutual=name != "gateway")
        patches.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                        "spec": {"template": {"spec": {"volumes": [volume], "containers": [
                            {"name": name, "env": env, "volumeMounts": [mount]}]}}}})  # fmt: skip
    # Triton: `drape serve triton` reads these settings; NVIDIA's server takes the same files
    # as flags (k8s/overlays/gpu-tls).
    volume, mount = _tls_mount(MODEL_SERVER.name)
    patches.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": MODEL_SERVER.name},
                    "spec": {"template": {"spec": {"volumes": [volume], "containers": [
                        {"name": MODEL_SERVER.name, "env": _tls_env("DRAPE_TRITON__TLS", server=True, mutual=True),
                         "volumeMounts": [mount]}]}}}})  # fmt: skip
    # The web front calls the gateway as a client: it verifies the gateway against the CA.
    volume, mount = _tls_mount("client")
    patches.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": WEB.name},
                    "spec": {"template": {"spec": {"volumes": [volume], "containers": [
                        {"name": WEB.name, "env": _tls_env("DRAPE_CLIENT_TLS", server=False, mutual=False),
                         "volumeMounts": [mount]}]}}}})  # fmt: skip
    for job in JOB_CALLS:
        volume, mount = _tls_mount("client")
        env = _tls_env("DRAPE_CLIENT_TLS", server=False, mutual=False)
        patches.append({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": job},
                        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": [volume], "containers": [
                            {"name": job, "env": env, "volumeMounts": [mount]}]}}}}}})  # fmt: skip
    return patches


OBJECT_STORAGE = BASE.parent / "overlays" / "object-storage"
OBJECT_STORAGE_HEADER = """\
# Object storage instead of the ReadWriteMany volume (which most managed clusters lack): the
# catalog, its embeddings, the garment images and the trained versions live in a bucket, and
# every pod's data folder is an emptyDir cache of it (see docs/deployment.md).
#   1. Set the bucket: DRAPE_STORAGE__URL in patches.yaml (s3://BUCKET/PREFIX, gs://...).
#   2. Credentials: the pods' workload identity (IRSA, GKE Workload Identity), or an AWS
#      credentials file in the Secret drape-object-storage (optional):
#        kubectl -n drape create secret generic drape-object-storage --from-file=credentials
#   3. Put catalog feeds under <bucket>/feeds/ for the ingest job; move an existing data folder
#      once with `drape storage push`.
# The services that start from the catalog or a trained version pull them in an init
# container (`drape storage pull`) and then at every refresh; HTTPS egress is opened for the
# pods that reach the bucket (narrow it to your storage endpoint's addresses).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
"""
# Where the bucket URL goes (the platform sets its own), and the Secret with credentials.
STORAGE_URL = "s3://drape-data/drape"
STORAGE_SECRET = {"name": "drape-object-storage", "key": "credentials"}
# Workloads that read or write the shared data, and so reach the bucket; the services among
# them pull before they start.
STORAGE_SERVICES = ("recommend", "features", "tryon")
# The gateway writes the previews it serves by URL there, and the web front reads them.
STORAGE_PREVIEWS = ("gateway", WEB.name)
STORAGE_JOBS = ("drape-ingest", "drape-train-recsys", "drape-compact-events")


def object_storage_patches() -> list[dict]:
    """The data volume an emptyDir everywhere (the claim deleted); the storage settings,
    credentials and a pull before start where the shared data is read."""
    folder = f"{SECRETS_DIR}/object-storage"
    env = [{"name": "DRAPE_STORAGE__URL", "value": STORAGE_URL},
           {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": f"{folder}/{STORAGE_SECRET['key']}"}]  # fmt: skip
    mount = {"name": "object-storage", "mountPath": folder, "readOnly": True}
    secret = {"name": "object-storage", "secret": {
        "secretName": STORAGE_SECRET["name"], "optional": True, "defaultMode": 0o440,
        "items": [{"key": STORAGE_SECRET["key"], "path": STORAGE_SECRET["key"]}]}}  # fmt: skip
    cache = {"name": "data", "emptyDir": {}, "persistentVolumeClaim": None}
    patches: list[dict] = []

    def pull(*flags: str) -> dict:
        resources = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
        container = _container("storage-pull", ["drape", "storage", "pull", *flags], [], resources)
        del container["ports"]
        container["env"] += env
        container["volumeMounts"].append(mount)
        return container

    for name in (*SERVICE_NAMES, MODEL_SERVER.name, WEB.name):
        pod: dict = {"volumes": [cache]}
        if name in STORAGE_SERVICES or name in STORAGE_PREVIEWS:
            pod = {"volumes": [cache, secret],
                   "containers": [{"name": name, "env": env, "volumeMounts": [mount]}]}  # fmt: skip
        if name in STORAGE_SERVICES:
            pod["initContainers"] = [pull()]
        patches.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                        "spec": {"template": {"spec": pod}}})  # fmt: skip
    for job in STORAGE_JOBS:
        pod = {
            "volumes": [cache, secret],
            "containers": [{"name": job, "env": env, "volumeMounts": [mount]}],
        }
        if job == "drape-ingest":  # its feed comes from the bucket's feeds/
            pod["initContainers"] = [pull("--feeds")]
        patches.append({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": job},
                        "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}})  # fmt: skip
    return patches


def object_storage_egress() -> dict:
    pods = _pods(*STORAGE_SERVICES, *STORAGE_PREVIEWS, *STORAGE_JOBS)["podSelector"]
    return _policy("object-storage-egress", pods,
                   egress=[{"ports": [{"protocol": "TCP", "port": 443}]}])  # fmt: skip


GPU = BASE.parent / "overlays" / "gpu"
GPU_HEADER = """\
# GPU Triton: NVIDIA's Triton container serves the repository that `drape export models`
# writes (ONNX; onnxruntime backend with TensorRT fp16, dynamic batching, KIND_GPU) on a
# GPU node. The Drape services are unchanged: they reach it at triton:8001.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
"""


def rendered() -> dict[Path, str]:
    files = {BASE / f"{name}.yaml": service_manifests(name) for name in SERVICE_NAMES}
    files[BASE / "web.yaml"] = web_manifests()
    files[BASE / "triton.yaml"] = triton_manifests()
    files[BASE / "jobs.yaml"] = job_manifests()
    files[BASE / "network-policies.yaml"] = network_policies()
    files[GPU / "triton-gpu.yaml"] = [gpu_triton_patch()]
    files[TLS / "certificates.yaml"] = tls_resources()
    files[TLS / "patches.yaml"] = tls_patches()
    files[OBJECT_STORAGE / "patches.yaml"] = object_storage_patches()
    files[OBJECT_STORAGE / "egress.yaml"] = [object_storage_egress()]
    # In a file of its own: kustomize cannot take a deletion among other patches.
    files[OBJECT_STORAGE / "no-volume-claim.yaml"] = [{
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "drape-data"},
        "$patch": "delete"}]  # fmt: skip
    header = "# Generated by tools/k8s_manifests.py: edit the table there, not this file.\n"
    texts = {
        path: header + yaml.safe_dump_all(docs, sort_keys=False) for path, docs in files.items()
    }
    texts[BASE / "config.yaml"] = header + config_map()
    resources = ["namespace.yaml", "config.yaml", "data.yaml", "triton.yaml",
                 *(f"{n}.yaml" for n in SERVICE_NAMES), "web.yaml", "jobs.yaml", "network-policies.yaml"]  # fmt: skip
    texts[BASE / "kustomization.yaml"] = _kustomization(BASE_KUSTOMIZATION, resources)
    texts[GPU / "kustomization.yaml"] = _kustomization(GPU_HEADER, ["../../base"],
                                                       patches=[{"path": "triton-gpu.yaml"}])  # fmt: skip
    texts[OBJECT_STORAGE / "kustomization.yaml"] = _kustomization(
        OBJECT_STORAGE_HEADER,
        ["../../base", "egress.yaml"],
        patches=[{"path": "no-volume-claim.yaml"}, {"path": "patches.yaml"}],
    )
    texts[TLS / "kustomization.yaml"] = TLS_COMPONENT + yaml.safe_dump(
        {"resources": ["certificates.yaml"], "patches": [{"path": "patches.yaml"}]}, sort_keys=False
    )
    gpu_tls = [{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": arg} for arg in (
        "--grpc-use-ssl=true", "--grpc-use-ssl-mutual=true", f"--grpc-server-cert={TLS_DIR}/tls.crt",
        f"--grpc-server-key={TLS_DIR}/tls.key", f"--grpc-root-cert={TLS_DIR}/ca.crt")]  # fmt: skip
    texts[GPU_TLS / "triton-tls.yaml"] = header + yaml.safe_dump(gpu_tls, sort_keys=False)
    texts[GPU_TLS / "kustomization.yaml"] = (
        "# GPU Triton with TLS and mTLS (k8s/components/tls): NVIDIA's server takes its certificate as\n"
        "# flags. Generated by tools/k8s_manifests.py.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        + yaml.safe_dump({"resources": ["../gpu"], "components": ["../../components/tls"], "patches": [
            {"path": "triton-tls.yaml", "target": {"kind": "Deployment", "name": MODEL_SERVER.name}}]},
            sort_keys=False))  # fmt: skip
    texts[TLS_OVERLAY / "kustomization.yaml"] = (
        "# The base with TLS and mTLS (k8s/components/tls). Generated by tools/k8s_manifests.py.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        + yaml.safe_dump(
            {"resources": ["../../base"], "components": ["../../components/tls"]}, sort_keys=False
        )
    )
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(BASE.parent)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale manifests: {stale}; run python tools/k8s_manifests.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
