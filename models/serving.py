"""Drape's model server: Triton Inference Server (through pytriton's python backend here;
NVIDIA's container in production) with each model bound as a pure array -> array function.

`drape serve triton` runs :func:`serve_models`. Model functions know nothing of Triton; this
module only binds them with their tensor signature and dynamic-batching settings.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drape.models.encoder import ENCODER_INPUT, ENCODER_MODEL, ENCODER_OUTPUT, EncoderSpec
from drape.models.export import onnx_session
from drape.models.runners import TlsFiles

log = logging.getLogger("drape.triton")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: type
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ServedModel:
    """A model as Triton sees it: batched arrays in, batched arrays out."""

    name: str
    infer: Callable[..., dict[str, np.ndarray]]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def encoder_model(spec: EncoderSpec, onnx_path: Path, threads: int = 0) -> ServedModel:
    """The garment encoder as a Triton model (its exported ONNX graph on onnxruntime):
    uint8 images in, float32 embeddings out."""
    session = onnx_session(onnx_path, threads)

    def infer(images: np.ndarray) -> dict[str, np.ndarray]:
        embeddings = session.run(None, {ENCODER_INPUT: np.ascontiguousarray(images)})[0]
        return {ENCODER_OUTPUT: embeddings}

    size = spec.image_size
    return ServedModel(
        ENCODER_MODEL,
        infer,
        (TensorSpec(ENCODER_INPUT, np.uint8, (size, size, 3)),),
        (TensorSpec(ENCODER_OUTPUT, np.float32, (spec.embedding_dim,)),),
    )


def tryon_model(onnx_path: Path, height: int, width: int, threads: int = 0) -> ServedModel:
    """The try-on generator as a Triton model (its ONNX export on onnxruntime)."""
    from drape.models.tryon.export import INPUTS, OUTPUTS, TRYON_MODEL

    session = onnx_session(onnx_path, threads)

    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {name: np.ascontiguousarray(inputs[name], dtype=np.float32) for name in INPUTS}
        return dict(zip(OUTPUTS, session.run(list(OUTPUTS), feeds), strict=True))

    image = (3, height, width)
    shapes = {"agnostic": image, "garment": image, "garment_mask": (1, height, width),
              "pose": (10, 2), "tps_control": (5, 2), "tps_params": (8, 2)}  # fmt: skip
    out_shapes = {"tryon": image, "rendered": image, "mask": (1, height, width), "warped": image,
                  "warped_mask": (1, height, width)}  # fmt: skip
    return ServedModel(
        TRYON_MODEL,
        infer,
        tuple(TensorSpec(name, np.float32, shapes[name]) for name in INPUTS),
        tuple(TensorSpec(name, np.float32, out_shapes[name]) for name in OUTPUTS),
    )


def _python_backend_env() -> None:
    # Triton's python-backend stub links libpython3.x.so; put this interpreter's copy first
    # or the stub loads the system one and fails on a mismatched ABI.
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and not current.startswith(libdir):
        os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir


def serve_models(
    models: list[ServedModel],
    host: str,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    max_batch: int,
    max_queue_delay_us: int,
    instances: int = 1,
    ready_file: Path | None = None,
    tls: TlsFiles | None = None,
) -> None:
    """Runs Triton with ``models`` bound until SIGTERM/SIGINT; writes ``ready_file`` (JSON
    with the gRPC address) once every model is loaded."""
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    _python_backend_env()
    # TLS on the gRPC port (and client certificates required, with a client CA).
    secure: dict[str, object] = {}
    if tls is not None and tls.certificate:
        secure = {"grpc_use_ssl": True, "grpc_server_cert": tls.certificate,
                  "grpc_server_key": tls.private_key, "grpc_use_ssl_mutual": bool(tls.client_ca)}  # fmt: skip
        if tls.client_ca:
            secure["grpc_root_cert"] = tls.client_ca
    config = TritonConfig(
        grpc_address=host,
        grpc_port=grpc_port,
        http_address=host,
        http_port=http_port,
        metrics_address=host,
        metrics_port=metrics_port,
        exit_timeout_secs=10,
        log_verbose=0,
        **secure,
    )
    # pytriton creates the workspace itself and refuses an existing directory.
    workspace = Path(tempfile.mkdtemp(prefix="drape-triton-")) / "workspace"
    triton = Triton(config=config, workspace=workspace)

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping Triton", signum)
        triton.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for model in models:
        triton.bind(
            model_name=model.name,
            # One callable per instance: Triton runs them in parallel.
            infer_func=[batch(model.infer) for _ in range(instances)],
            inputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in model.inputs],
            outputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in model.outputs],
            config=ModelConfig(
                max_batch_size=max_batch,
                batcher=DynamicBatcher(max_queue_delay_microseconds=max_queue_delay_us),
            ),
            strict=True,
        )
    triton.run()
    if ready_file is not None:
        info = {"address": f"{host}:{grpc_port}", "metrics_port": metrics_port, "pid": os.getpid()}
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(ready_file)
    print(f"triton grpc {host}:{grpc_port} models {[m.name for m in models]}", file=sys.stderr)
    triton.serve()
