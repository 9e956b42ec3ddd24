"""TryOnService: API defined in protos/drape/v1/tryon.proto; implementation not landed yet."""

from __future__ import annotations

from drape.v1 import tryon_pb2, tryon_pb2_grpc

from services.runtime import DrapeConfig, ServiceSpec
from services.runtime.placeholder import placeholder_spec


def build(config: DrapeConfig) -> ServiceSpec:
    return placeholder_spec("tryon", tryon_pb2.DESCRIPTOR, "TryOnService", tryon_pb2_grpc, config)
