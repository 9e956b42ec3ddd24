"""`drape serve SERVICE` (and `drape triton`): one service in the foreground, which is what a
Kubernetes pod runs; with ``SERVICE.server.processes`` > 1, that many worker processes
share its port under a supervisor."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from drape.cli.options import add_config_argument, add_ready_file_argument
from drape.cli.stack import MODEL_SERVER
from drape.services.runtime.config import SERVICE_NAMES, DrapeConfig, load_config


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument(
        "service",
        choices=(*SERVICE_NAMES, MODEL_SERVER),
        help="a service, or `triton`: the model server (Triton Inference Server with "
        "Drape's models)",
    )
    add_config_argument(serve)
    serve.add_argument("--port", type=int, help="override the service's port")
    add_ready_file_argument(serve)
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.set_defaults(func=run)

    triton = sub.add_parser("triton", help="the model server alone (same as `drape serve triton`)")
    add_config_argument(triton)
    triton.add_argument("--port", type=int, help="override Triton's gRPC port")
    add_ready_file_argument(triton)
    triton.set_defaults(func=run, service=MODEL_SERVER, worker=None)


def run(args: argparse.Namespace) -> int:
    from drape.services.registry import build_service
    from drape.services.runtime.logs import configure_logging
    from drape.services.runtime.server import RunningService, serve_until_signalled
    from drape.services.runtime.workers import Supervisor, die_with_parent, supervise, worker_count

    config = load_config(args.config)
    if args.service == MODEL_SERVER:
        return serve_models(config, args.port, args.ready_file)
    server = config.server(args.service)
    if args.port is not None:
        server.port = args.port
    configure_logging(args.service, config.log_level)
    workers = worker_count(server) if args.worker is None else 1
    if args.worker is not None:
        die_with_parent()
        if os.getppid() == 1:  # the supervisor died before we asked
            return 1
    if workers > 1:
        run_dir = Path(tempfile.mkdtemp(prefix=f"drape-{args.service}-workers-"))
        try:
            supervise(
                Supervisor(args.service, args.config, server, workers, run_dir), args.ready_file
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return 0
    spec = build_service(args.service, config)
    if args.worker is None:
        serve_until_signalled(RunningService(spec, server), args.ready_file)
    else:  # one of a supervisor's workers: its port is shared, its /metrics is private
        server.metrics_port = 0 if server.metrics_port >= 0 else -1
        service = RunningService(spec, server, reuse_port=True, metrics_host="127.0.0.1")
        serve_until_signalled(service, args.ready_file)
    return 0


def serve_models(config: DrapeConfig, port: int | None, ready_file: Path | None) -> int:
    """Triton (pytriton) with the encoder and, when present, the try-on generator."""
    from drape.models.export import cached_encoder_onnx
    from drape.models.serving import encoder_model, serve_models
    from drape.services.features.extractor import encoder_spec
    from drape.services.runtime.logs import configure_logging

    configure_logging(MODEL_SERVER, config.log_level)
    spec = encoder_spec(config)
    onnx_path = cached_encoder_onnx(spec, config.encoder_checkpoint(), config.models_path())
    models = [encoder_model(spec, onnx_path, config.encoder.threads)]
    tryon_checkpoint = config.tryon_checkpoint()
    if tryon_checkpoint.exists():
        from drape.models.serving import tryon_model
        from drape.models.tryon.export import cached_tryon_onnx

        tryon_onnx, generator = cached_tryon_onnx(tryon_checkpoint, config.models_path())
        models.append(
            tryon_model(
                tryon_onnx, generator.spec.height, generator.spec.width, config.encoder.threads
            )
        )
    else:
        print(
            f"no try-on generator at {tryon_checkpoint}: serving the encoder only", file=sys.stderr
        )
    triton = config.triton
    serve_models(
        models,
        host=triton.host,
        grpc_port=port or triton.grpc_port,
        http_port=triton.http_port,
        metrics_port=triton.metrics_port,
        max_batch=triton.max_batch,
        max_queue_delay_us=triton.max_queue_delay_us,
        instances=triton.instances,
        ready_file=ready_file,
        tls=triton.tls,
    )
    return 0
