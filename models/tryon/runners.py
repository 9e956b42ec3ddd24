"""Try-on generator runners behind one interface, :class:`TryOnRunner`: in-process torch (the
reference) and Triton (``tritonclient`` gRPC; Triton's dynamic batcher merges concurrent
callers). Tests hold Triton's outputs to torch's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from drape.models.runners import TlsFiles, triton_client, triton_failure
from drape.models.tryon.export import INPUTS, OUTPUTS, TRYON_MODEL
from drape.models.tryon.training import load_generator


class TryOnRunner(Protocol):
    def run(
        self, inputs: dict[str, np.ndarray], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """float32 inputs (B, ...) by name (``export.INPUTS``) -> float32 outputs (B, ...) by
        name (``export.OUTPUTS``), within ``timeout_s`` where the runner can bound it."""
        ...

    def close(self) -> None: ...


class TorchTryOn:
    def __init__(self, checkpoint: Path) -> None:
        self.generator = load_generator(checkpoint)
        self.spec = self.generator.spec

    def run(
        self, inputs: dict[str, np.ndarray], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """See :class:`TryOnRunner`; in-process, so ``timeout_s`` does not apply."""
        with torch.inference_mode():
            out = self.generator(
                *(torch.from_numpy(np.ascontiguousarray(inputs[n], np.float32)) for n in INPUTS)
            )
        return {name: out[name].numpy() for name in OUTPUTS}

    def close(self) -> None:
        pass


class TritonTryOn:
    def __init__(self, url: str, max_batch: int = 32, timeout_s: float = 30.0,
                 tls: TlsFiles | None = None) -> None:  # fmt: skip
        import tritonclient.grpc as triton_grpc

        self._grpc = triton_grpc
        self.url, self.max_batch, self.timeout_s = url, max_batch, timeout_s
        self._client = triton_client(url, tls)

    def run(
        self, inputs: dict[str, np.ndarray], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """See :class:`TryOnRunner`; each Triton call waits at most ``timeout_s`` (the
        caller's remaining deadline) or the runner's own timeout, whichever is shorter."""
        from tritonclient.utils import InferenceServerException

        timeout = self.timeout_s if timeout_s is None else max(min(self.timeout_s, timeout_s), 1e-3)

        batch = len(inputs[INPUTS[0]])
        parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
        for start in range(0, batch, self.max_batch):
            requests = []
            for name in INPUTS:
                chunk = np.ascontiguousarray(
                    inputs[name][start : start + self.max_batch], np.float32
                )
                request = self._grpc.InferInput(name, list(chunk.shape), "FP32")
                request.set_data_from_numpy(chunk)
                requests.append(request)
            started = time.monotonic()
            try:
                result = self._client.infer(
                    TRYON_MODEL, requests, outputs=[self._grpc.InferRequestedOutput(n) for n in OUTPUTS],
                    client_timeout=timeout,
                )  # fmt: skip
            except InferenceServerException as exc:
                waited = time.monotonic() - started
                raise triton_failure(exc, self.url, TRYON_MODEL, waited, timeout) from exc
            for name in OUTPUTS:
                parts[name].append(result.as_numpy(name))
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def close(self) -> None:
        self._client.close()
