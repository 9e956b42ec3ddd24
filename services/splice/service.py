"""SpliceService: API defined in protos/drape/v1/splice.proto; implementation not landed yet."""

from __future__ import annotations

from drape.v1 import splice_pb2, splice_pb2_grpc

from services.runtime import DrapeConfig, ServiceSpec
from services.runtime.placeholder import placeholder_spec


def build(config: DrapeConfig) -> ServiceSpec:
    return placeholder_spec(
        "splice", splice_pb2.DESCRIPTOR, "SpliceService", splice_pb2_grpc, config
    )
