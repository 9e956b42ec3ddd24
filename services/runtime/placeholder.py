"""Services whose implementation has not landed yet: they start, report healthy,
and answer UNIMPLEMENTED with a message that says so (never a silent empty reply)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FileDescriptor

from services.runtime.config import DrapeConfig
from services.runtime.errors import Unimplemented
from services.runtime.server import ServiceSpec


def placeholder_spec(
    name: str, file: FileDescriptor, service_name: str, module_grpc: Any, config: DrapeConfig
) -> ServiceSpec:
    descriptor = file.services_by_name[service_name]
    base = getattr(module_grpc, f"{service_name}Servicer")
    add = getattr(module_grpc, f"add_{service_name}Servicer_to_server")

    def method(rpc: str) -> Any:
        def handler(self: Any, request: Any, context: Any) -> Any:
            raise Unimplemented(f"{service_name}.{rpc} is not available in this release of Drape")

        return handler

    servicer_cls = type(
        f"Placeholder{service_name}", (base,), {m.name: method(m.name) for m in descriptor.methods}
    )
    return ServiceSpec(
        name=name,
        grpc_services=[descriptor.full_name],
        register=lambda server: add(servicer_cls(), server),
    )
