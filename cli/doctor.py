"""`drape doctor`: checks that the installation can run Drape."""

from __future__ import annotations

import argparse
import importlib
from importlib import metadata

REQUIRED = (
    "grpc",
    "grpc_tools",
    "torch",
    "tritonclient.grpc",
    "faiss",
    "implicit",
    "pandas",
    "prometheus_client",
    "pydantic",
    "psycopg",
    "onnxruntime",
    "mediapipe",
    "pytriton.triton",
    "efficientnet_lite_pytorch",
    "drape.v1.gateway_pb2_grpc",
)
FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11")


def installed_faiss_distributions() -> list[str]:
    found = []
    for name in FAISS_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check the installation")
    doctor.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problems = []
    for module in REQUIRED:
        try:
            importlib.import_module(module)
        except Exception as exc:
            problems.append(f"cannot import {module}: {exc}")
    faiss = installed_faiss_distributions()
    if len(faiss) != 1:
        # Both install the same `faiss` module; whichever came last silently won.
        problems.append(
            f"exactly one faiss distribution must be installed, found {faiss or 'none'}: "
            "pip uninstall all of them, then install drape[cpu] or drape[gpu]"
        )
    try:
        from drape.models.encoder import PRETRAINED_SHA256, pretrained_weights_path, sha256_of

        if sha256_of(pretrained_weights_path()) != PRETRAINED_SHA256:
            problems.append(
                "the EfficientNet-Lite0 weight file does not match its checksum; reinstall it"
            )
    except Exception as exc:  # the package itself missing is reported the same way
        problems.append(f"cannot check the encoder weights: {exc}")
    if problems:
        print("drape doctor found problems:", *problems, sep="\n  ")
        return 1
    import torch

    gpu = "yes" if torch.cuda.is_available() else "no"
    print(f"drape doctor: ok (torch {torch.__version__}, CUDA {gpu}, {faiss[0]})")
    return 0
