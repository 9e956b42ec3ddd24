"""Export of Drape's models to ONNX and to a Triton model repository.

The exported graph is what serves: onnxruntime runs it in-process and inside the local
Triton (pytriton's python backend), and NVIDIA's Triton container runs the same file with
its onnxruntime backend (or TensorRT) in production. Exports are cached by model version,
written atomically, and checked against the eager torch model before they are used.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from drape.models.encoder import (
    ENCODER_INPUT,
    ENCODER_MODEL,
    ENCODER_OUTPUT,
    EncoderSpec,
    encoder_version,
    load_encoder,
)

# Largest difference between the eager model and its export that is accepted (fp32).
EXPORT_TOLERANCE = 1e-5
ONNX_OPSET = 17


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the eager model."""


def export_encoder_onnx(spec: EncoderSpec, checkpoint: Path | None, path: Path) -> Path:
    """Writes the encoder as ONNX (dynamic batch, uint8 NHWC in, embeddings out) to ``path``
    after checking it against the eager model on a random batch."""
    encoder = load_encoder(spec, checkpoint)
    size = spec.image_size
    generator = torch.Generator().manual_seed(0)
    sample = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=generator)
    # Checked on other batch sizes than the traced one, so a baked-in batch size fails here.
    checks = [
        torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator)
        for n in (1, 5)
    ]
    return export_checked(
        encoder, (sample,), [(batch,) for batch in checks], path, [ENCODER_INPUT], [ENCODER_OUTPUT],
        EXPORT_TOLERANCE, "the torch encoder",
    )  # fmt: skip


def export_checked(
    module: torch.nn.Module,
    trace_inputs: tuple[torch.Tensor, ...],
    checks: list[tuple[torch.Tensor, ...]],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    tolerance: float,
    what: str,
) -> Path:
    """Exports ``module`` to ONNX with a dynamic batch axis, then runs onnxruntime on every
    input tuple of ``checks`` (other batch sizes than the traced one, so a baked-in batch size
    fails) against torch; the file appears at ``path`` (atomically) only if all agree within
    ``tolerance``, else :class:`ExportMismatch` names ``what`` it was compared to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                trace_inputs,
                str(tmp),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes={name: {0: "batch"} for name in (*input_names, *output_names)},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        session = onnx_session(tmp, threads=1)
        for inputs in checks:
            with torch.inference_mode():
                expected = module(*inputs)
            expected = expected if isinstance(expected, tuple) else (expected,)
            feeds = {name: t.numpy() for name, t in zip(input_names, inputs, strict=True)}
            try:
                actual = session.run(output_names, feeds)
            except Exception as exc:  # onnxruntime raises its own untyped failures
                raise ExportMismatch(
                    f"the ONNX export fails on a batch of {len(inputs[0])}: {exc}"
                ) from exc
            worst = max(
                float(np.abs(a - e.numpy()).max()) for a, e in zip(actual, expected, strict=True)
            )
            if worst > tolerance:
                raise ExportMismatch(
                    f"ONNX export differs from {what} by {worst:.2e} on a batch of {len(inputs[0])} "
                    f"(tolerance {tolerance:.0e})"
                )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_session(path: Path, threads: int = 0):  # -> onnxruntime.InferenceSession
    """An onnxruntime CPU session (``threads`` = 0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep instead of spinning: in a service, decoding, masking and
    # gRPC need those cores between model calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cached_encoder_onnx(spec: EncoderSpec, checkpoint: Path | None, models_dir: Path) -> Path:
    """The encoder's ONNX file for this version, exported on first use."""
    path = models_dir / "onnx" / f"{encoder_version(spec, checkpoint)}.onnx"
    if not path.exists():
        export_encoder_onnx(spec, checkpoint, path)
    return path


def write_triton_repository(
    spec: EncoderSpec,
    checkpoint: Path | None,
    repository: Path,
    max_batch: int = 64,
    gpu: bool = True,
    instances: int = 1,
) -> Path:
    """A Triton model repository with the encoder for NVIDIA's Triton container:
    ``<repository>/drape_encoder/{config.pbtxt, 1/model.onnx}`` (onnxruntime backend,
    dynamic batching, one instance group on GPU or CPU)."""
    model_dir = repository / ENCODER_MODEL
    export_encoder_onnx(spec, checkpoint, model_dir / "1" / "model.onnx")
    size = spec.image_size
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    config = f"""name: "{ENCODER_MODEL}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [{{ name: "{ENCODER_INPUT}" data_type: TYPE_UINT8 dims: [{size}, {size}, 3] }}]
output [{{ name: "{ENCODER_OUTPUT}" data_type: TYPE_FP32 dims: [{spec.embedding_dim}] }}]
dynamic_batching {{ preferred_batch_size: [{max(1, max_batch // 2)}, {max_batch}] max_queue_delay_microseconds: 2000 }}
instance_group [{{ count: {instances} kind: {kind} }}]
parameters {{ key: "drape_model_version" value: {{ string_value: "{encoder_version(spec, checkpoint)}" }} }}
"""
    write_config(model_dir, config)
    return model_dir


def write_config(model_dir: Path, config: str) -> None:
    """A model's config.pbtxt, replaced at once (a reader sees the old file or the new one)."""
    staging = model_dir / "config.pbtxt.tmp"
    staging.write_text(config)
    staging.replace(model_dir / "config.pbtxt")
