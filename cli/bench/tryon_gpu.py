"""`drape bench tryon-gpu`: try-on images/s of the generator on a CUDA GPU, at 256x192 and
512x384, fp32 and fp16 (autocast: convolutions in half precision, the TPS grid and sampling
coordinates stay fp32), channels-last, over batch sizes. Measures the model itself, in-process;
Triton's onnxruntime/TensorRT backends on the same GPU add their own overheads and gains.

The 256x192 rows use the configured checkpoint; larger resolutions build the same network at
that size with random weights (throughput does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from drape.cli.bench import format_table, timed_phase, write_report
from drape.services.runtime.config import load_config

if TYPE_CHECKING:
    import torch

COLUMNS = ("phase", "batch", "clients", "images/s", "p50_ms", "p99_ms", "calls")
RESOLUTIONS = ((256, 192), (512, 384))
BATCHES = (1, 32, 128, 256)


def _inputs(height: int, width: int, batch: int, device: torch.device) -> list[torch.Tensor]:
    import torch

    from drape.models.tryon.export import INPUTS
    from drape.models.tryon.synthetic import synthetic_pair
    from drape.models.tryon.training import to_tensors

    samples = [synthetic_pair(np.random.default_rng([7, i]), height, width) for i in range(8)]
    tensors = to_tensors(samples)
    repeats = -(-batch // 8)
    out = []
    for name in INPUTS:
        value = tensors[name].repeat(repeats, *([1] * (tensors[name].dim() - 1)))[:batch]
        out.append(value.to(device).contiguous(memory_format=torch.channels_last)
                   if value.dim() == 4 else value.to(device))  # fmt: skip
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from drape.models.tryon.networks import TryOnGenerator
    from drape.models.tryon.training import load_generator

    if not torch.cuda.is_available():
        print("drape bench tryon-gpu: no CUDA device; `drape bench tryon` measures the CPU")
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    checkpoint = load_config(None).tryon_checkpoint()
    trained = load_generator(checkpoint)
    rows: list[dict[str, Any]] = []
    for height, width in RESOLUTIONS:
        if (height, width) == (trained.spec.height, trained.spec.width):
            generator = trained
        else:
            generator = TryOnGenerator(replace(trained.spec, height=height, width=width)).eval()
        generator = generator.to(device).to(memory_format=torch.channels_last)
        for precision in ("fp32", "fp16"):
            for batch in BATCHES:
                inputs = _inputs(height, width, batch, device)

                def call(inputs: list[torch.Tensor] = inputs, precision: str = precision,
                         generator: TryOnGenerator = generator) -> int:  # fmt: skip
                    with (
                        torch.inference_mode(),
                        torch.autocast("cuda", torch.float16, enabled=precision == "fp16"),
                    ):
                        out = generator(*inputs)["tryon"]
                    torch.cuda.synchronize()
                    return len(out)

                name = f"{height}x{width} {precision}"
                try:
                    rows.append(
                        timed_phase(name, call, batch, 1, args.seconds, rate="images/s", warmup=5)
                    )
                except torch.OutOfMemoryError:
                    print(f"{name} batch {batch}: out of GPU memory")
                    torch.cuda.empty_cache()
                print(format_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
        del generator
        torch.cuda.empty_cache()
    print(format_table(rows, COLUMNS))
    best = {
        f"{h}x{w}": max((r["images/s"] for r in rows if r["phase"].startswith(f"{h}x{w}")), default=0.0)
        for h, w in RESOLUTIONS
    }  # fmt: skip
    print(f"\n{torch.cuda.get_device_name()}: best images/s {best}")
    out = write_report("tryon-gpu", rows, args.out, {"seconds_per_phase": args.seconds,
                                                     "gpu": torch.cuda.get_device_name(),
                                                     "torch": torch.__version__,
                                                     "best_images_per_s": best,
                                                     "checkpoint": str(checkpoint)})  # fmt: skip
    print(f"wrote {out}")
    return 0
