"""Every Drape container of every rendered overlay, configured exactly as its pod would be:
the ConfigMap files at their mount paths, the env (values, ConfigMap and Secret references),
then Drape's own loader. A schema check passes a pod that calls 127.0.0.1 or reads an empty
SQLite file; this does not. Checked per container:

- every address it calls resolves to a rendered Service on that port;
- it reads the event store, if it opens it at all, from the PostgreSQL Secret, never a file;
- every path it is configured with lies on a volume mounted in its pod (files on ConfigMap
  mounts exist), and its data directory is writable;
- every image is a full registry reference;
- no server offers reflection, and the gateway requires API keys;
- TLS agrees across every edge (a caller of a TLS server verifies it, and presents a
  certificate where mTLS requires one), and the probes ask the plaintext health port;
- on GPU, Triton loads exactly the models the services call, from the repository the export
  step writes.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from drape.models.runners import ENCODER_MODEL
from drape.models.tryon.runners import TRYON_MODEL
from drape.services.runtime.config import DrapeConfig, TlsConfig, load_config
from drape.services.table import SERVICES
from tests.k8s.test_manifests import _render
from tools.k8s_manifests import EVENT_STORE_SECRET

OVERLAYS = [
    "k8s/base",
    "k8s/overlays/gpu",
    "k8s/overlays/monitoring",
    "k8s/overlays/tls",
    "k8s/overlays/gpu-tls",
    "k8s/overlays/object-storage",
]
# The CLI commands that open the event store (the services say so in their table).
STORE_COMMANDS = {
    ("train", "recsys"),
    ("report", "experiment"),
    ("events", "compact"),
    ("web", "--no-stack"),
}
# registry host (with a dot or a port) / path : tag, or @digest
FULL_IMAGE = re.compile(
    r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$"
)


def _secret_placeholder(ref: dict) -> str:
    return f"<secret {ref['name']}/{ref['key']}>"


@dataclass
class Container:
    workload: str
    spec: dict
    pod: dict

    @property
    def where(self) -> str:
        return f"{self.workload}/{self.spec['name']}"

    @property
    def drape_command(self) -> list[str] | None:
        command = [*self.spec.get("command", []), *self.spec.get("args", [])]
        return command[1:] if command[:1] == ["drape"] else None


def _containers(docs: list[dict]) -> list[Container]:
    found = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" not in spec:
            continue
        pod = spec["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            found.append(Container(f"{doc['kind']}/{doc['metadata']['name']}", container, pod))
    return found


def _load(
    container: Container, docs: list[dict], root: Path
) -> tuple[DrapeConfig, dict[str, dict]]:
    """The container's effective configuration, with its ConfigMap mounts written under
    ``root`` (so the loader reads the files the pod would); also its mounts by path."""
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in container.pod.get("volumes", [])}
    mounts = {}
    for mount in container.spec.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        assert volume is not None, (
            f"{container.where} mounts {mount['name']}, which the pod does not have"
        )
        mounts[mount["mountPath"]] = {**mount, "volume": volume}
        files = {}
        if "configMap" in volume:
            files = config_maps[volume["configMap"]["name"]]
        elif "secret" in volume:  # the Secret is the platform's: a placeholder naming it
            secret = volume["secret"]
            files = {item["path"]: _secret_placeholder({"name": secret["secretName"], "key": item["key"]})
                     for item in secret["items"]}  # fmt: skip
        for key, text in files.items():
            path = root / mount["mountPath"].lstrip("/") / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    env = {}
    for var in container.spec.get("env", []):
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[var["name"]] = _secret_placeholder(source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[var["name"]] = config_maps[ref["name"]][ref["key"]]
        else:
            env[var["name"]] = var["value"]
    config_file = env.get("DRAPE_CONFIG")
    assert config_file, f"{container.where} has no DRAPE_CONFIG"
    # Files the env names (the config, DRAPE_..._FILE secrets) must be on the mounts above.
    for name, value in env.items():
        if name == "DRAPE_CONFIG" or name.endswith("_FILE"):
            local = root / value.lstrip("/")
            assert local.exists(), (
                f"{container.where}: {name} = {value} is on no mounted ConfigMap or Secret"
            )
            env[name] = str(local)
    return load_config(env=env), mounts


def _mount_of(path: str, mounts: dict[str, dict]) -> dict | None:
    candidates = [m for m in mounts if PurePosixPath(path).is_relative_to(m)]
    return mounts[max(candidates, key=len)] if candidates else None


def _services(docs: list[dict]) -> dict[str, set[int]]:
    return {d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
            for d in docs if d["kind"] == "Service"}  # fmt: skip


def _resolves(address: str, services: dict[str, set[int]]) -> bool:
    host, _, port = address.rpartition(":")
    host = (
        host.removesuffix(".drape.svc.cluster.local")
        .removesuffix(".drape.svc")
        .removesuffix(".drape")
    )
    return port.isdigit() and int(port) in services.get(host, set())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_configured_as_its_pod_would_load_it(overlay: str, tmp_path: Path):
    docs = _render(overlay)
    services = _services(docs)
    checked = 0
    servers: dict[str, TlsConfig] = {}  # each service's own TLS, as its pod loads it
    calls: list[tuple[str, str, TlsConfig]] = []  # (who, callee, the caller's TLS for it)
    for n, container in enumerate(_containers(docs)):
        image = container.spec["image"]
        assert FULL_IMAGE.match(image), (
            f"{container.where}: image {image!r} is not a full registry reference"
        )
        command = container.drape_command
        if command is None:
            if container.spec.get("command") == ["tritonserver"]:
                tls = servers["triton"] = _tritonserver_tls(container.spec.get("args", []))
                mounted = [m["mountPath"] for m in container.spec.get("volumeMounts", [])]
                for path in filter(None, (tls.certificate, tls.private_key, tls.client_ca)):
                    assert any(PurePosixPath(path).is_relative_to(m) for m in mounted), (
                        f"{container.where}: {path}"
                    )
            continue
        checked += 1
        config, mounts = _load(container, docs, tmp_path / str(n))
        own = command[1] if command[0] == "serve" and command[1] in SERVICES else None
        # Outbound: the service table's callees, and any address given on the command line.
        addresses = {}
        if own is not None:
            section = getattr(config, own)
            addresses = {
                setting: getattr(section, setting) for setting in SERVICES[own].calls.values()
            }
        addresses |= {arg: value for arg, value in itertools.pairwise(command)
                      if arg in ("--features", "--address")}  # fmt: skip
        if command[0] == "web":  # the web front calls the gateway as a client
            addresses["web.gateway_address"] = config.web.gateway_address
        for setting, address in addresses.items():
            assert _resolves(address, services), (
                f"{container.where}: {setting} = {address} is no rendered Service"
            )
            callee = address.rpartition(":")[0].split(".")[0]
            tls = config.server(own).tls if own is not None else config.client_tls
            calls.append((container.where, callee, tls))
        if command[:2] == ["serve", "triton"]:
            servers["triton"] = config.triton.tls
        if own is not None:
            servers[own] = config.server(own).tls
            # The kubelet's gRPC probes speak plaintext: they ask the health-only port.
            health = config.server(own).health_port
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = container.spec[probe]["grpc"]["port"]
                assert port == health > 0 and port != config.server(own).port, (
                    f"{container.where}: {probe}"
                )
        if own is not None:  # production: no reflection; storefronts need a key
            assert not config.server(own).reflection, f"{container.where} serves reflection"
            if own == "gateway":
                assert config.gateway.api_keys_path, "the gateway takes calls without API keys"
        # The event store: only from the Secret, for every container that opens it.
        opens_store = (own is not None and SERVICES[own].event_store) or tuple(
            command[:2]
        ) in STORE_COMMANDS
        store = config.recommend.events_store_url or config.events_store_url()
        secret = _secret_placeholder(EVENT_STORE_SECRET)
        if opens_store:
            assert store == secret, f"{container.where} reads the event store from {store}"
        else:  # least privilege: the database URL only where it is used
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in container.spec.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]  # fmt: skip
            refs += [
                m["volume"]["secret"]["secretName"]
                for m in mounts.values()
                if "secret" in m["volume"]
            ]
            assert EVENT_STORE_SECRET["name"] not in refs, (
                f"{container.where} gets the event store's URL"
            )
        # Paths: on a mounted volume; the data directory writable; files on ConfigMaps present.
        data_mount = _mount_of(str(config.data_dir), mounts)
        assert data_mount and not data_mount.get("readOnly"), (
            f"{container.where}: data_dir not on a writable mount"
        )
        for path in _configured_paths(config, _sections(command)):
            mount = _mount_of(path, mounts)
            assert mount is not None, f"{container.where}: {path} is on no mounted volume"
            if "configMap" in mount["volume"]:
                assert (tmp_path / str(n) / path.lstrip("/")).exists(), (
                    f"{container.where}: {path} missing"
                )
    assert checked >= len(SERVICES) + 2  # the services and the jobs
    # TLS agrees across every edge: a caller of a TLS server verifies it against a CA, and
    # presents a certificate where the server requires one.
    for who, callee, tls in calls:
        server = servers[callee]
        if server.serves_tls:
            assert tls.ca, f"{who} calls {callee} in plaintext, which serves TLS"
            if server.client_ca:
                assert tls.certificate, (
                    f"{who} has no client certificate for {callee}, which requires one"
                )
        else:
            assert not tls.ca, f"{who} expects TLS from {callee}, which serves plaintext"


# The config sections each job's command reads (a service reads its own).
JOB_SECTIONS = {("ingest",): {"features"}, ("train", "recsys"): {"recommend"},
                ("export", "models"): {"features", "tryon", "triton"}, ("storage",): set(),
                ("events", "compact"): {"recommend"}, ("web",): {"web", "previews"}}  # fmt: skip
# Sections only some containers read, besides the services' own.
READ_BY = {"previews": {"gateway", "web"}, "web": {"web"}}


def _sections(command: list[str]) -> set[str]:
    if command[0] == "serve":
        return {
            command[1],
            *(section for section, readers in READ_BY.items() if command[1] in readers),
        }
    return next(
        sections
        for prefix, sections in JOB_SECTIONS.items()
        if tuple(command[: len(prefix)]) == prefix
    )


def _tritonserver_tls(args: list[str]) -> TlsConfig:
    """The TLS of NVIDIA's Triton, from its flags."""
    flags = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
    if flags.get("grpc-use-ssl") != "true":
        return TlsConfig()
    mutual = flags.get("grpc-use-ssl-mutual") == "true"
    return TlsConfig(certificate=flags["grpc-server-cert"], private_key=flags["grpc-server-key"],
                     client_ca=flags.get("grpc-root-cert", "") if mutual else "")  # fmt: skip


def _configured_paths(config: DrapeConfig, sections: set[str]) -> list[str]:
    """Every absolute path in the settings the container reads (the top level and its
    sections), and the ones derived from data_dir."""
    found = [str(config.catalog_path()), str(config.recsys_artifacts()), str(config.embeddings_path()),
             str(config.images_path())]  # fmt: skip

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, str) and value.startswith("/"):
            found.append(value)

    every = {*SERVICES, "triton", *READ_BY}
    walk(
        {k: v for k, v in config.model_dump(mode="json").items() if k not in every or k in sections}
    )
    return found


def test_gpu_triton_loads_exactly_the_models_the_services_call():
    docs = _render("k8s/overlays/gpu")
    triton = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "triton"
    )
    pod = triton["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "triton")
    args = [*server.get("command", []), *server.get("args", [])]
    option = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a
    }
    assert option["--model-control-mode"] == "explicit"
    loaded = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
    assert loaded == {ENCODER_MODEL, TRYON_MODEL}
    # The export step writes that repository onto the volume the server reads.
    export = next(
        c for c in pod["initContainers"] if c["command"][:3] == ["drape", "export", "models"]
    )
    repository = export["command"][export["command"].index("--repository") + 1]
    assert option["--model-repository"] == repository

    def volume(container: dict) -> str:
        return next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == repository)

    assert volume(export) == volume(server)


def test_the_object_storage_overlay_needs_no_shared_volume(tmp_path: Path):
    """No claim and no claimed volume anywhere; every pod that reads or writes the shared data
    is configured with the bucket, and the services pull before they start."""
    from tools.k8s_manifests import STORAGE_JOBS, STORAGE_PREVIEWS, STORAGE_SERVICES, STORAGE_URL

    docs = _render("k8s/overlays/object-storage")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    containers = _containers(docs)
    for container in containers:
        volumes = {v["name"]: v for v in container.pod["volumes"]}
        assert "persistentVolumeClaim" not in volumes["data"], container.where
    # The preview store too: the gateway writes previews there and every web pod reads them.
    assert set(STORAGE_PREVIEWS) == {"gateway", "web"}
    users = {f"Deployment/{n}" for n in (*STORAGE_SERVICES, *STORAGE_PREVIEWS)}
    users |= {f"CronJob/{n}" for n in STORAGE_JOBS}
    pulled = set()
    for container in containers:
        if container.workload not in users or container.drape_command is None:
            continue
        config, _ = _load(container, docs, tmp_path / container.where.replace("/", "-"))
        assert config.storage.url == STORAGE_URL, container.where
        if container.drape_command[:2] == ["storage", "pull"]:
            pulled.add(container.workload)
    assert pulled == {f"Deployment/{n}" for n in STORAGE_SERVICES} | {"CronJob/drape-ingest"}
    egress = next(d for d in docs if d["metadata"]["name"] == "object-storage-egress")
    selected = egress["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(selected) == sorted([*STORAGE_SERVICES, *STORAGE_PREVIEWS, *STORAGE_JOBS])
