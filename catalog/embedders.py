"""Embedders for ingestion: the encoder in this process, or a running features service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from drape.catalog.ingest import Embedder, IngestReport, ingest
from drape.services.runtime.config import DrapeConfig, TlsConfig


def inprocess_embedder(config: DrapeConfig) -> tuple[Embedder, str, Callable[[], None]]:
    """Embeds with the encoder in this process; (embedder, model version, close)."""
    from drape.services.features.extractor import FeatureExtractor, open_encoder

    extractor = FeatureExtractor(open_encoder(config, runner="inprocess"))

    def embed(items: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray | str]:
        inputs = [extractor.garment_input(pixels) for _, pixels in items]
        vectors = extractor.embed_inputs(inputs)
        return {garment_id: vectors[i] for i, (garment_id, _) in enumerate(items)}

    return embed, extractor.model_version, extractor.close


def service_embedder(
    address: str, tls: TlsConfig | None = None
) -> tuple[Embedder, str, Callable[[], None]]:
    """Embeds through a running features service (EmbedGarments stream), over TLS with ``tls``."""
    from drape.models.images import encode_png
    from drape.services.runtime.client import connect
    from drape.services.runtime.config import ServerConfig
    from drape.v1 import common_pb2, features_pb2, features_pb2_grpc

    channel = connect(address, ServerConfig(tls=tls) if tls is not None else None)
    stub = features_pb2_grpc.FeaturesServiceStub(channel)
    versions: set[str] = set()

    def embed(items: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray | str]:
        requests = (
            features_pb2.EmbedGarmentsRequest(
                garment_id=garment_id, image=common_pb2.Image(data=encode_png(pixels))
            )
            for garment_id, pixels in items
        )
        out: dict[str, np.ndarray | str] = {}
        for reply in stub.EmbedGarments(requests, timeout=300):
            if reply.error:
                out[reply.garment_id] = reply.error
            else:
                out[reply.garment_id] = np.asarray(reply.embedding.values, np.float32)
                versions.add(reply.embedding.model_version)
        return out

    # The service names its encoder on every embedding; ask once with a tiny probe.
    probe = np.full((32, 32, 3), 255, np.uint8)
    probe[8:24, 8:24] = 0
    embed([("probe", probe)])
    return embed, versions.pop() if versions else "", channel.close


def ingest_via_service(feed: Path, config: DrapeConfig, features_address: str) -> IngestReport:
    """Ingests a feed (CSV beside its ``images/``) with the garments embedded by a running
    features service."""
    embed, version, close = service_embedder(features_address, config.client_tls)
    try:
        return ingest(feed, feed.parent / "images", config, embed, version)
    finally:
        close()
