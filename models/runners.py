"""Encoder runners: one interface, two implementations chosen from config.

* :class:`OnnxEncoder` runs the exported graph with onnxruntime in this process (tests,
  edge, ingestion without a model server); :class:`TorchEncoder` runs the eager model, the
  slow reference both are held to.
* :class:`TritonEncoder` sends the same uint8 batches to a Triton Inference Server over
  gRPC (``tritonclient``), where dynamic batching merges concurrent callers.

Both take letterboxed uint8 images (N, S, S, 3) and return float32 (N, D) embeddings.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from drape.models.encoder import (
    DEFAULT_SPEC,
    ENCODER_INPUT,
    ENCODER_MODEL,
    ENCODER_OUTPUT,
    EncoderSpec,
    encoder_version,
    load_encoder,
)
from drape.models.export import cached_encoder_onnx, onnx_session


class RunnerUnavailable(RuntimeError):
    """The model server cannot be reached or refused the batch; the caller may retry."""


class RunnerTimedOut(RunnerUnavailable):
    """The model server did not answer within the time the call was given (often the
    caller's remaining deadline): the request was too late, the server need not be down."""


def triton_failure(exc: Exception, url: str, model: str, waited_s: float,
                   timeout_s: float) -> RunnerUnavailable:  # fmt: skip
    """The error for a failed Triton call: :class:`RunnerTimedOut` when the call ran out of
    its time (Triton's DEADLINE_EXCEEDED, or a broken stream once the time was up),
    :class:`RunnerUnavailable` otherwise."""
    status = str(getattr(exc, "status", lambda: "")() or "")
    message = exc.message() if hasattr(exc, "message") else str(exc)
    if "DEADLINE_EXCEEDED" in status or waited_s >= timeout_s:
        return RunnerTimedOut(
            f"Triton at {url} did not answer {model} within {timeout_s * 1000:.0f} ms"
        )
    return RunnerUnavailable(f"Triton at {url} failed {model}: {message}")


class TlsFiles(Protocol):
    """PEM file paths (Drape's TlsConfig): ``ca`` to verify Triton, ``certificate`` and
    ``private_key`` to present (and, for a server, ``client_ca`` to require)."""

    ca: str
    certificate: str
    private_key: str
    client_ca: str


def triton_client(url: str, tls: TlsFiles | None = None) -> object:
    """A gRPC client of Triton: over TLS when ``tls.ca`` is set, presenting the caller's
    certificate when it has one (Triton with mutual TLS requires it)."""
    import tritonclient.grpc as triton_grpc

    if tls is None or not tls.ca:
        return triton_grpc.InferenceServerClient(url)
    return triton_grpc.InferenceServerClient(
        url, ssl=True, root_certificates=tls.ca, private_key=tls.private_key or None,
        certificate_chain=tls.certificate or None,
    )  # fmt: skip


class EncoderRunner(Protocol):
    spec: EncoderSpec
    model_version: str

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, embedding_dim), rows L2-normalised."""
        ...

    def close(self) -> None: ...


def _check_batch(images: np.ndarray, spec: EncoderSpec) -> None:
    size = spec.image_size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(
            f"expected uint8 images of shape (N, {size}, {size}, 3), "
            f"got {images.dtype} {images.shape}"
        )


class TorchEncoder:
    """The eager torch encoder in this process: the reference implementation."""

    def __init__(
        self,
        spec: EncoderSpec = DEFAULT_SPEC,
        checkpoint: Path | None = None,
        max_batch: int = 32,
        threads: int = 0,
    ) -> None:
        self.spec = spec
        self.model = load_encoder(spec, checkpoint)
        self.model_version = encoder_version(spec, checkpoint)
        self.max_batch = max_batch
        if threads:
            torch.set_num_threads(threads)
        # torch's intra-op pool is shared; serialising forwards keeps latency predictable
        # when several gRPC threads embed at once.
        self._lock = threading.Lock()

    def embed(self, images: np.ndarray) -> np.ndarray:
        _check_batch(images, self.spec)
        outputs = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(images), self.max_batch):
                chunk = np.ascontiguousarray(images[start : start + self.max_batch])
                outputs.append(self.model(torch.from_numpy(chunk)).numpy())
        return _concat(outputs, self.spec)

    def close(self) -> None:
        pass


class OnnxEncoder:
    """The exported encoder graph on onnxruntime, in this process (the fast path)."""

    def __init__(
        self,
        spec: EncoderSpec = DEFAULT_SPEC,
        checkpoint: Path | None = None,
        models_dir: Path | None = None,
        max_batch: int = 32,
        threads: int = 0,
    ) -> None:
        self.spec = spec
        self.model_version = encoder_version(spec, checkpoint)
        self.max_batch = max_batch
        models_dir = models_dir or Path(tempfile.mkdtemp(prefix="drape-models-"))
        self.onnx_path = cached_encoder_onnx(spec, checkpoint, models_dir)
        self.session = onnx_session(self.onnx_path, threads)

    def embed(self, images: np.ndarray) -> np.ndarray:
        _check_batch(images, self.spec)
        outputs = []
        for start in range(0, len(images), self.max_batch):
            chunk = np.ascontiguousarray(images[start : start + self.max_batch])
            outputs.append(self.session.run(None, {ENCODER_INPUT: chunk})[0])
        return _concat(outputs, self.spec)

    def close(self) -> None:
        pass


def _concat(outputs: list[np.ndarray], spec: EncoderSpec) -> np.ndarray:
    if not outputs:
        return np.zeros((0, spec.embedding_dim), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)


class TritonEncoder:
    """The encoder behind Triton (``tritonclient.grpc``); batches larger than the model's
    ``max_batch`` are split, and Triton's dynamic batcher merges concurrent requests."""

    def __init__(
        self,
        url: str,
        spec: EncoderSpec = DEFAULT_SPEC,
        checkpoint: Path | None = None,
        max_batch: int = 32,
        timeout_s: float = 30.0,
        model_name: str = ENCODER_MODEL,
        tls: TlsFiles | None = None,
    ) -> None:
        import tritonclient.grpc as triton_grpc

        self._grpc = triton_grpc
        self.url = url
        self.spec = spec
        self.model_version = encoder_version(spec, checkpoint)
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.model_name = model_name
        self._client = triton_client(url, tls)

    def ready(self) -> bool:
        """Whether Triton has the encoder loaded (False when unreachable)."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._client.is_model_ready(self.model_name))
        except InferenceServerException:
            return False

    def embed(self, images: np.ndarray) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        _check_batch(images, self.spec)
        outputs = []
        for start in range(0, len(images), self.max_batch):
            chunk = np.ascontiguousarray(images[start : start + self.max_batch])
            request = self._grpc.InferInput(ENCODER_INPUT, list(chunk.shape), "UINT8")
            request.set_data_from_numpy(chunk)
            started = time.monotonic()
            try:
                result = self._client.infer(
                    self.model_name,
                    [request],
                    outputs=[self._grpc.InferRequestedOutput(ENCODER_OUTPUT)],
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as exc:
                waited = time.monotonic() - started
                raise triton_failure(
                    exc, self.url, self.model_name, waited, self.timeout_s
                ) from exc
            outputs.append(result.as_numpy(ENCODER_OUTPUT))
        return _concat(outputs, self.spec)

    def close(self) -> None:
        self._client.close()
