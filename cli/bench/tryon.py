"""`drape bench tryon`: try-on images/s of the generator in-process (eager torch, the
reference) and through Triton (the ONNX export; batches of 8, and single images from
concurrent callers merged by dynamic batching), at the checkpoint's resolution."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from drape.cli.bench import format_table, timed_phase, write_report
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime.config import load_config

COLUMNS = ("phase", "batch", "clients", "images/s", "p50_ms", "p99_ms", "calls")


def run(args: argparse.Namespace) -> int:
    from drape.models.tryon.runners import TorchTryOn, TritonTryOn
    from drape.models.tryon.synthetic import synthetic_pair
    from drape.models.tryon.training import to_tensors

    root = Path(tempfile.mkdtemp(prefix="drape-bench-tryon-"))
    config = ephemeral(load_config(None))
    config.data_dir = root / "data"
    checkpoint = config.tryon_checkpoint()
    if not checkpoint.exists():
        print(f"drape bench tryon: no generator at {checkpoint}; set tryon.checkpoint")
        return 2
    torch_runner = TorchTryOn(checkpoint)
    spec = torch_runner.spec
    samples = [
        synthetic_pair(np.random.default_rng([7, i]), spec.height, spec.width) for i in range(8)
    ]
    tensors = to_tensors(samples)
    batch = {name: tensors[name].numpy() for name in tensors}
    single = {name: value[:1] for name, value in batch.items()}
    rows: list[dict[str, Any]] = []
    seconds = args.seconds

    def timed(name: str, runner, inputs: dict[str, np.ndarray], clients: int) -> dict[str, Any]:
        call = lambda: len(runner.run(inputs)["tryon"])  # noqa: E731
        return timed_phase(name, call, len(inputs["agnostic"]), clients, seconds, rate="images/s")

    rows.append(timed("in-process torch", torch_runner, batch, 1))
    stack = Stack(config, ["tryon"], run_dir=root / "run")
    stack.start(timeout=180)
    try:
        triton = TritonTryOn(stack.address("triton"))
        rows.append(timed("triton grpc", triton, batch, 1))
        rows.append(timed("triton grpc", triton, batch, 2))
        rows.append(timed("triton grpc (dynamic batching)", triton, single, 8))
        triton.close()
    finally:
        stack.stop()
    ratio = rows[1]["images/s"] / rows[0]["images/s"]
    print(format_table(rows, COLUMNS))
    print(
        f"\n{spec.height}x{spec.width}; Triton / in-process torch (batch 8, 1 client): {ratio:.2f}x"
    )
    out = write_report("tryon", rows, args.out, {"seconds_per_phase": seconds, "triton_over_torch": ratio,
                                                 "height": spec.height, "width": spec.width,
                                                 "checkpoint": str(checkpoint)})  # fmt: skip
    print(f"wrote {out}")
    return 0
