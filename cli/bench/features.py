"""`drape bench features`: garment embeddings/s of the encoder in-process (torch reference,
onnxruntime) and through Triton (batch 32, concurrent callers, dynamic batching), the
features service end to end (decode, garment cut-out, Triton), person-analysis latency, and
kNN@5 category accuracy of the embedding space on the generated garment set.

Triton runs as its own process (as deployed); every phase runs for a fixed time.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drape.cli.bench import format_table, timed_phase, write_report
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime import connect
from drape.services.runtime.config import load_config
from drape.v1 import common_pb2, features_pb2, features_pb2_grpc

COLUMNS = ("phase", "batch", "clients", "emb/s", "p50_ms", "p99_ms", "calls")


def _timed(
    name: str, call: Callable[[], int], batch: int, clients: int, seconds: float
) -> dict[str, Any]:
    return timed_phase(name, call, batch, clients, seconds, rate="emb/s")


def _stream(stub: features_pb2_grpc.FeaturesServiceStub, payloads: list[bytes]) -> int:
    requests = (
        features_pb2.EmbedGarmentsRequest(garment_id=f"g{i}", image=common_pb2.Image(data=data))
        for i, data in enumerate(payloads)
    )
    replies = list(stub.EmbedGarments(requests, timeout=120))
    failed = [r.error for r in replies if r.error]
    if failed:
        raise RuntimeError(f"the features service failed items: {failed[:3]}")
    return len(replies)


def run(args: argparse.Namespace) -> int:
    from drape.models.images import encode_png, letterbox
    from drape.models.metrics import knn_accuracy
    from drape.models.runners import OnnxEncoder, TorchEncoder, TritonEncoder
    from drape.services.features.extractor import encoder_spec
    from drape.synthetic.garments import garment_set

    seconds = args.seconds
    root = Path(tempfile.mkdtemp(prefix="drape-bench-features-"))
    # The configured encoder (embedding size, a fine-tuned checkpoint) on a scratch data dir.
    config = ephemeral(load_config(None))
    config.data_dir = root / "data"
    spec = encoder_spec(config)
    shots = garment_set(per_combination=2, seed=100)
    inputs = np.stack([letterbox(s.image, spec.image_size) for s in shots])
    batch = inputs[:32]
    rows: list[dict[str, Any]] = []
    quality: dict[str, Any] = {}

    onnx = OnnxEncoder(spec, None, config.models_path())
    embeddings = onnx.embed(inputs)
    labels = np.array([s.category for s in shots])
    quality["knn5_category_accuracy_pretrained"] = knn_accuracy(embeddings, labels, k=5)
    quality["garments"] = len(shots)
    quality["model_version"] = onnx.model_version
    if config.encoder_checkpoint():
        tuned = OnnxEncoder(spec, config.encoder_checkpoint(), config.models_path())
        quality["knn5_category_accuracy_finetuned"] = knn_accuracy(tuned.embed(inputs), labels, k=5)

    torch_runner = TorchEncoder(spec)
    rows.append(
        _timed(
            "in-process torch (reference)", lambda: len(torch_runner.embed(batch)), 32, 1, seconds
        )
    )
    rows.append(_timed("in-process onnxruntime", lambda: len(onnx.embed(batch)), 32, 1, seconds))

    stack = Stack(config, ["features"], run_dir=root / "run")
    stack.start(timeout=180)
    try:
        triton = TritonEncoder(stack.address("triton"), spec)
        rows.append(_timed("triton grpc", lambda: len(triton.embed(batch)), 32, 1, seconds))
        rows.append(_timed("triton grpc", lambda: len(triton.embed(batch)), 32, 2, seconds))
        single = batch[:1]
        rows.append(
            _timed(
                "triton grpc (dynamic batching)", lambda: len(triton.embed(single)), 1, 8, seconds
            )
        )
        triton.close()
        channel = connect(stack.address("features"))
        stub = features_pb2_grpc.FeaturesServiceStub(channel)
        payloads = [encode_png(s.image) for s in shots[:32]]
        rows.append(
            _timed(
                "features service EmbedGarments", lambda: _stream(stub, payloads), 32, 1, seconds
            )
        )
        rows.append(
            _timed(
                "features service EmbedGarments", lambda: _stream(stub, payloads), 32, 2, seconds
            )
        )
        photo = _astronaut_jpeg()
        analyse = features_pb2.AnalyzePersonRequest(photo=common_pb2.Image(data=photo))
        row = _timed(
            "features service AnalyzePerson", lambda: _analysed(stub, analyse), 1, 1, seconds
        )
        row["emb/s"] = float("nan")
        rows.append(row)
        channel.close()
    finally:
        stack.stop()

    by = {(r["phase"], r["clients"], r["batch"]): r["emb/s"] for r in rows}
    inprocess = by[("in-process onnxruntime", 1, 32)]
    through_triton = by[("triton grpc", 1, 32)]
    quality["triton_over_inprocess"] = through_triton / inprocess
    print(format_table(rows, COLUMNS))
    print(
        f"\nTriton / in-process (batch 32, 1 client): {quality['triton_over_inprocess']:.2f}x; "
        f"kNN@5 category accuracy ({len(shots)} generated garments, "
        f"{len(set(labels))} categories): pretrained {quality['knn5_category_accuracy_pretrained']:.3f}"
        + (
            f", fine-tuned {quality['knn5_category_accuracy_finetuned']:.3f}"
            if "knn5_category_accuracy_finetuned" in quality
            else ""
        )
    )
    out = write_report("features", rows, args.out, {"seconds_per_phase": seconds, **quality})
    print(f"wrote {out}")
    return 0


def _analysed(
    stub: features_pb2_grpc.FeaturesServiceStub, request: features_pb2.AnalyzePersonRequest
) -> int:
    reply = stub.AnalyzePerson(request, timeout=30)
    if reply.analysis.status != features_pb2.PERSON_STATUS_OK:
        raise RuntimeError(f"person analysis failed: {reply.analysis.reason}")
    return 1


def _astronaut_jpeg() -> bytes:
    from drape.models.images import encode_jpeg

    try:
        from skimage import data

        return encode_jpeg(data.astronaut())
    except ImportError:  # scikit-image is a dev extra; fall back to matplotlib's sample
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return encode_jpeg(np.asarray(Image.open(handle).convert("RGB")))
