"""The service table: each Drape service's name, ports and the services it calls, stated once.

Configuration defaults, the gateway's addresses, the local stack's wiring, the Kubernetes
manifests (tools/k8s_manifests.py) and the tests all read it, so a port is changed here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Service:
    name: str
    grpc_port: int
    metrics_port: int
    # Callee -> the setting in this service's config section that holds the callee's address.
    calls: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Opens the event store (PostgreSQL in production): given its URL, and let reach it.
    event_store: bool = False


@dataclass(frozen=True)
class ModelServer:
    """Triton Inference Server with Drape's models (pytriton locally, NVIDIA's container in
    production); called by the services that run models."""

    name: str
    grpc_port: int
    http_port: int
    metrics_port: int


MODEL_SERVER = ModelServer("triton", grpc_port=8001, http_port=8000, metrics_port=8002)


@dataclass(frozen=True)
class WebFront:
    """`drape web`: HTTP (the JSON API, the preview URLs, the pages and /metrics on one
    port) in front of the gateway; reads the event store for the analyst page."""

    name: str
    http_port: int
    calls: tuple[str, ...]


WEB = WebFront("web", http_port=8080, calls=("gateway",))


def _calls(**fields: str) -> MappingProxyType[str, str]:
    return MappingProxyType(fields)


SERVICES: MappingProxyType[str, Service] = MappingProxyType({
    service.name: service
    for service in (
        Service("gateway", 50051, 9101, _calls(
            recommend="recommend_address", features="features_address", tryon="tryon_address",
            splice="splice_address", events="events_address",
        )),
        Service("recommend", 50052, 9102, event_store=True),
        Service("features", 50053, 9103, _calls(triton="triton_url")),
        Service("tryon", 50054, 9104, _calls(triton="triton_url")),
        Service("splice", 50055, 9105),
        Service("events", 50056, 9106, event_store=True),
    )
})  # fmt: skip
SERVICE_NAMES = tuple(SERVICES)


def grpc_port(name: str) -> int:
    """The gRPC port of a service or of the model server."""
    return MODEL_SERVER.grpc_port if name == MODEL_SERVER.name else SERVICES[name].grpc_port


def local_address(name: str) -> str:
    """Where ``name`` listens when every service runs on this machine (the defaults)."""
    port = WEB.http_port if name == WEB.name else grpc_port(name)
    return f"127.0.0.1:{port}"
