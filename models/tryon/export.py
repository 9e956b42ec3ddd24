"""Export of the try-on generator to ONNX (what Triton serves), checked against torch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from drape.models.tryon.networks import TryOnGenerator

TRYON_MODEL = "tryon_gan"
INPUTS = ("agnostic", "garment", "garment_mask", "pose", "tps_control", "tps_params")
OUTPUTS = ("tryon", "rendered", "mask", "warped", "warped_mask")
EXPORT_TOLERANCE = 1e-4


class _Exported(torch.nn.Module):
    def __init__(self, generator: TryOnGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.generator(*inputs)
        return tuple(out[name] for name in OUTPUTS)


def example_inputs(
    generator: TryOnGenerator, batch: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random inputs of the right shapes: a plausible TPS (identity plus noise) and random
    images that vary like images do, smoothly between pixels. (Per-pixel white noise would
    make the check measure float rounding, not the graph: the warp samples at positions
    computed in float32, which two correct runtimes round differently, and noise turns a
    1e-6 shift of a sampling position into a 1e-4 change of the sampled value.)"""
    g = torch.Generator().manual_seed(seed)
    h, w = generator.spec.height, generator.spec.width

    def smooth(channels: int) -> torch.Tensor:
        coarse = torch.rand(batch, channels, max(h // 8, 2), max(w // 8, 2), generator=g)
        return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")

    params = torch.zeros(batch, 8, 2)
    params[:, 6, 0], params[:, 7, 1] = 1.0, 1.0
    params += 0.01 * torch.randn(batch, 8, 2, generator=g)
    return (
        smooth(3) * 2 - 1,
        smooth(3) * 2 - 1,
        (smooth(1) > 0.3).float(),
        torch.rand(batch, 10, 2, generator=g),
        torch.rand(batch, 5, 2, generator=g),
        params,
    )


def export_tryon_onnx(generator: TryOnGenerator, path: Path) -> Path:
    """Writes the generator as ONNX with a dynamic batch, after checking it reproduces torch
    (max abs difference <= 1e-4 on batches other than the traced one)."""
    from drape.models.export import export_checked

    module = _Exported(generator.eval())
    checks = [example_inputs(generator, batch, seed=batch) for batch in (1, 3)]
    return export_checked(
        module, example_inputs(generator, 2), checks, path, list(INPUTS), list(OUTPUTS),
        EXPORT_TOLERANCE, "the torch generator",
    )  # fmt: skip


def cached_tryon_onnx(checkpoint: Path, models_dir: Path) -> tuple[Path, TryOnGenerator]:
    """The generator's ONNX export for this checkpoint (exported on first use), and the
    generator itself."""
    from drape.models.encoder import sha256_of
    from drape.models.tryon.training import load_generator

    generator = load_generator(checkpoint)
    # Named by the weights and the graph's outputs: a new output needs a new export.
    outputs = hashlib.sha256(",".join(OUTPUTS).encode()).hexdigest()[:6]
    path = models_dir / "onnx" / f"{TRYON_MODEL}-{sha256_of(checkpoint)[:12]}-{outputs}.onnx"
    if not path.exists():
        export_tryon_onnx(generator, path)
    return path, generator


def write_tryon_repository(
    checkpoint: Path, repository: Path, max_batch: int = 32, gpu: bool = True, instances: int = 1
) -> Path:
    """``<repository>/tryon_gan/{config.pbtxt, 1/model.onnx}`` for NVIDIA's Triton container:
    onnxruntime backend, dynamic batching; on GPU with TensorRT in fp16 (the generator has no
    reductions that overflow in half precision; the composition stays in [0, 1])."""
    from drape.models.export import write_config
    from drape.models.tryon.training import load_generator

    generator = load_generator(checkpoint)
    model_dir = repository / TRYON_MODEL
    export_tryon_onnx(generator, model_dir / "1" / "model.onnx")
    h, w = generator.spec.height, generator.spec.width
    dims = {"agnostic": [3, h, w], "garment": [3, h, w], "garment_mask": [1, h, w], "pose": [10, 2],
            "tps_control": [5, 2], "tps_params": [8, 2], "tryon": [3, h, w], "rendered": [3, h, w],
            "mask": [1, h, w], "warped": [3, h, w], "warped_mask": [1, h, w]}  # fmt: skip

    def tensors(names: tuple[str, ...]) -> str:
        return ",\n".join(
            f'  {{ name: "{n}" data_type: TYPE_FP32 dims: {dims[n]} }}' for n in names
        )

    accelerator = (
        """optimization { execution_accelerators { gpu_execution_accelerator: [
  { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" }
                     parameters { key: "max_workspace_size_bytes" value: "1073741824" } } ] } }
"""
        if gpu
        else ""
    )
    preferred = ", ".join(
        str(b) for b in sorted({max(1, max_batch // 4), max(1, max_batch // 2), max_batch})
    )
    config = f"""name: "{TRYON_MODEL}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
{tensors(INPUTS)}
]
output [
{tensors(OUTPUTS)}
]
dynamic_batching {{ preferred_batch_size: [{preferred}] max_queue_delay_microseconds: 5000 }}
instance_group [{{ count: {instances} kind: {"KIND_GPU" if gpu else "KIND_CPU"} }}]
{accelerator}"""
    write_config(model_dir, config)
    return model_dir
