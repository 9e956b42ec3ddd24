"""`drape export models --repository DIR`: the Triton model repository for NVIDIA's container
(`drape_encoder` and `tryon_gan`: `config.pbtxt` + `1/model.onnx`, each checked against its
torch model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drape.cli.options import add_config_argument
from drape.services.runtime.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="export models to a Triton model repository")
    export.add_argument("what", choices=("models",))
    export.add_argument(
        "--repository", type=Path, required=True, help="Triton model repository folder"
    )
    export.add_argument("--cpu", action="store_true", help="instance groups on CPU instead of GPU")
    add_config_argument(export)
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.models.export import write_triton_repository
    from drape.services.features.extractor import encoder_spec

    config = load_config(args.config)
    model_dir = write_triton_repository(
        encoder_spec(config),
        config.encoder_checkpoint(),
        args.repository,
        max_batch=config.triton.max_batch,
        gpu=not args.cpu,
        instances=config.triton.instances,
    )
    print(f"wrote {model_dir} (config.pbtxt + 1/model.onnx, checked against the torch encoder)")
    checkpoint = config.tryon_checkpoint()
    if not checkpoint.exists():
        print(f"no try-on generator at {checkpoint}; exported the encoder only", file=sys.stderr)
        return 0
    from drape.models.tryon.export import write_tryon_repository

    tryon_dir = write_tryon_repository(
        checkpoint,
        args.repository,
        max_batch=config.triton.max_batch,
        gpu=not args.cpu,
        instances=config.triton.instances,
    )
    print(f"wrote {tryon_dir} (config.pbtxt + 1/model.onnx, checked against the torch generator)")
    return 0
