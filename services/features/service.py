"""FeaturesService: API defined in protos/drape/v1/features.proto; implementation not landed yet."""

from __future__ import annotations

from drape.v1 import features_pb2, features_pb2_grpc

from services.runtime import DrapeConfig, ServiceSpec
from services.runtime.placeholder import placeholder_spec


def build(config: DrapeConfig) -> ServiceSpec:
    return placeholder_spec(
        "features", features_pb2.DESCRIPTOR, "FeaturesService", features_pb2_grpc, config
    )
