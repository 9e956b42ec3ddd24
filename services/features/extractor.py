"""What the features service does, without gRPC: decode untrusted images, cut the garment
out, run the encoder (in-process or through Triton) and MediaPipe person analysis.

`drape ingest` uses the same :class:`FeatureExtractor` in-process, so a catalog embedded
offline and a garment embedded by the service land in the same space.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from drape.models.encoder import EncoderSpec
from drape.models.garments import product_mask, worn_garment
from drape.models.images import ImageLimits, letterbox
from drape.models.person import AnalyzerPool, PersonAnalysis
from drape.models.runners import EncoderRunner, OnnxEncoder, TorchEncoder, TritonEncoder
from drape.recsys.index import EmbeddingIndex
from drape.services.runtime.config import DrapeConfig

log = logging.getLogger("drape.features")

# Margin kept around a garment's box before letterboxing, as a share of its size.
CROP_MARGIN = 0.04


def encoder_spec(config: DrapeConfig) -> EncoderSpec:
    return EncoderSpec(config.encoder.embedding_dim, config.encoder.image_size)


def open_encoder(config: DrapeConfig, runner: str | None = None) -> EncoderRunner:
    """The encoder runner the config asks for (``runner`` overrides ``features.runner``)."""
    spec = encoder_spec(config)
    checkpoint = config.encoder_checkpoint()
    kind = runner or config.features.runner
    batch = config.features.batch_size
    if kind == "triton":
        return TritonEncoder(config.features.triton_url, spec, checkpoint, batch,
                             config.features.triton_timeout_s, tls=config.features.server.tls)  # fmt: skip
    if config.encoder.backend == "torch":
        return TorchEncoder(spec, checkpoint, batch, config.encoder.threads)
    return OnnxEncoder(spec, checkpoint, config.models_path(), batch, config.encoder.threads)


def crop_to_mask(rgb: np.ndarray, mask: np.ndarray, margin: float = CROP_MARGIN) -> np.ndarray:
    """The image cropped to the mask's box (plus a margin); the whole image if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return rgb
    height, width = mask.shape
    pad = int(margin * max(xs.max() - xs.min(), ys.max() - ys.min()))
    top, bottom = max(0, ys.min() - pad), min(height, ys.max() + pad + 1)
    left, right = max(0, xs.min() - pad), min(width, xs.max() + pad + 1)
    return rgb[top:bottom, left:right]


class FeatureExtractor:
    """Images in, embeddings and person analyses out. Thread-safe."""

    def __init__(
        self,
        encoder: EncoderRunner,
        limits: ImageLimits = ImageLimits(),  # noqa: B008 (frozen dataclass)
        analyzers: int = 2,
        embeddings_dir: Path | None = None,
        history_half_life: float = 5.0,
        sync: Callable[[], object] | None = None,
    ) -> None:
        self.encoder = encoder
        self.limits = limits
        self.history_half_life = history_half_life
        self.embeddings_dir = embeddings_dir
        self._sync = sync  # brings embeddings published elsewhere (object storage) here
        self._analyzers = AnalyzerPool(analyzers)
        self._index: EmbeddingIndex | None = None
        self._index_stamp: float | None = None
        self._index_lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self.encoder.model_version

    def garment_input(self, rgb: np.ndarray) -> np.ndarray:
        """A product shot -> the encoder's input: cropped to the garment, letterboxed."""
        return letterbox(crop_to_mask(rgb, product_mask(rgb)), self.encoder.spec.image_size)

    def embed_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Encoder inputs (S, S, 3) -> embeddings (N, D)."""
        if not inputs:
            return np.zeros((0, self.encoder.spec.embedding_dim), np.float32)
        return self.encoder.embed(np.stack(inputs))

    def warm(self) -> None:
        """Readies the person analysis before the first call (see :meth:`AnalyzerPool.warm`)."""
        self._analyzers.warm()

    def analyze(self, rgb: np.ndarray) -> PersonAnalysis:
        return self._analyzers.analyze(rgb)

    def worn_input(self, rgb: np.ndarray, analysis: PersonAnalysis) -> np.ndarray:
        """The garment worn in a shopper's photo as an encoder input (the catalog's space:
        cut out onto white like a product shot, letterboxed)."""
        return letterbox(worn_garment(rgb, analysis), self.encoder.spec.image_size)

    def history_embedding(self, garment_ids: list[str]) -> tuple[np.ndarray | None, int]:
        """Recency-weighted mean of the catalog embeddings of ``garment_ids`` (most recent
        first; weight halves every ``history_half_life`` items), and how many were found."""
        index = self._current_index()
        if index is None or not garment_ids:
            return None, 0
        vectors, found = index.vectors(garment_ids)
        if not found.any():
            return None, 0
        weights = 0.5 ** (np.arange(len(garment_ids)) / self.history_half_life)
        weights = weights * found
        mean = (vectors * weights[:, None]).sum(axis=0) / weights.sum()
        norm = float(np.linalg.norm(mean))
        return (mean / norm if norm > 0 else mean).astype(np.float32), int(found.sum())

    def _current_index(self) -> EmbeddingIndex | None:
        """The garment embeddings written by `drape ingest`, reloaded when they change."""
        if self.embeddings_dir is None:
            return None
        if self._sync is not None:
            try:
                self._sync()
            except Exception as exc:  # the index in hand stays in use
                log.warning("embeddings not refreshed: %s", exc)
        meta = self.embeddings_dir / "index.json"
        try:
            stamp = meta.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._index_lock:
            if stamp != self._index_stamp:
                self._index = EmbeddingIndex.load(self.embeddings_dir)
                self._index_stamp = stamp
                log.info("loaded %d garment embeddings", len(self._index))
            return self._index

    def close(self) -> None:
        self.encoder.close()
        self._analyzers.close()
