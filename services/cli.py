"""`drape`: the one command line for Drape.

drape up                 start every service on localhost (Ctrl-C stops them)
drape serve SERVICE      run one service (what a Kubernetes pod runs)
drape triton             the model server (Triton with Drape's models)
drape demo               the whole flow on generated data; exits when done
drape bench NAME         a benchmark: prints a table, writes JSON
drape ingest FEED        validate, store, embed and index a catalog feed
drape generate catalog   write a generated feed (CSV + product shots) to try it on
drape export models      write the Triton model repository (ONNX + config.pbtxt)
drape doctor             check the installation
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from services.runtime.config import SERVICE_NAMES, ConfigError, DrapeConfig, load_config


def _serve(args: argparse.Namespace) -> int:
    from services.registry import build_service
    from services.runtime.logs import configure_logging
    from services.runtime.server import RunningService, serve_until_signalled
    from services.runtime.workers import Supervisor, die_with_parent, supervise, worker_count

    config = load_config(args.config)
    if args.service == "triton":
        return _serve_models(config, args)
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


def _serve_models(config: DrapeConfig, args: argparse.Namespace) -> int:
    from models.export import cached_encoder_onnx
    from models.serving import encoder_model, serve_models
    from services.features.extractor import encoder_spec
    from services.runtime.logs import configure_logging

    configure_logging("triton", config.log_level)
    spec = encoder_spec(config)
    onnx_path = cached_encoder_onnx(spec, config.encoder_checkpoint(), config.models_path())
    models = [encoder_model(spec, onnx_path, config.encoder.threads)]
    tryon_checkpoint = config.tryon_checkpoint()
    if tryon_checkpoint.exists():
        from models.serving import tryon_model
        from models.tryon.export import cached_tryon_onnx

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
        grpc_port=args.port or triton.grpc_port,
        http_port=triton.http_port,
        metrics_port=triton.metrics_port,
        max_batch=triton.max_batch,
        max_queue_delay_us=triton.max_queue_delay_us,
        instances=triton.instances,
        ready_file=args.ready_file,
    )
    return 0


def _up(args: argparse.Namespace) -> int:
    import signal

    from services.stack import Stack, StackError

    config = load_config(args.config)
    services = args.services.split(",") if args.services else SERVICE_NAMES
    stack = Stack(config, services, run_dir=args.run_dir, log_to_files=False)
    try:
        stack.start()
        for name, endpoint in stack.endpoints.items():
            metrics = f"http://{endpoint.address.rsplit(':', 1)[0]}:{endpoint.metrics_port}/metrics"
            print(f"{name:<10} grpc {endpoint.address:<22} {metrics}", flush=True)
        print("all services up; Ctrl-C to stop", flush=True)
        exited = stack.wait()
        print(f"drape up: {exited} exited; stopping the others", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"drape up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping...", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not interrupt the drain and orphan children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def _demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(args)


def _bench(args: argparse.Namespace) -> int:
    from services.bench import run_benchmark

    return run_benchmark(args)


def _train(args: argparse.Namespace) -> int:
    # Each trainer imports only what it needs (a GPU box training the GAN has no FAISS).
    if args.what == "tryon":
        from services.train_tryon import run_train_tryon

        return run_train_tryon(args)
    if args.what == "encoder":
        from services.train_encoder import run_train_encoder

        return run_train_encoder(args)
    from services.train import run_train

    return run_train(args)


def _eval(args: argparse.Namespace) -> int:
    if args.what == "tryon":
        from services.eval_tryon import run_eval_tryon

        return run_eval_tryon(args)
    from services.evaluate import run_eval

    return run_eval(args)


def _ingest(args: argparse.Namespace) -> int:
    from services.ingest import run_ingest

    return run_ingest(args)


def _generate(args: argparse.Namespace) -> int:
    from services.generate import run_generate

    return run_generate(args)


def _export(args: argparse.Namespace) -> int:
    from models.export import write_triton_repository
    from services.features.extractor import encoder_spec

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
    if checkpoint.exists():
        from models.tryon.export import write_tryon_repository

        tryon_dir = write_tryon_repository(
            checkpoint, args.repository, max_batch=config.triton.max_batch, gpu=not args.cpu,
            instances=config.triton.instances,
        )  # fmt: skip
        print(
            f"wrote {tryon_dir} (config.pbtxt + 1/model.onnx, checked against the torch generator)"
        )
    else:
        print(f"no try-on generator at {checkpoint}; exported the encoder only", file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from services.doctor import run_doctor

    return run_doctor()


def _install_sigterm_as_interrupt() -> None:
    import signal

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drape", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument(
        "service",
        choices=(*SERVICE_NAMES, "triton"),
        help="a service, or "
        "`triton`: the model server (Triton Inference Server with Drape's models)",
    )
    serve.add_argument("--config", type=Path, help="TOML/YAML/JSON config file")
    serve.add_argument("--port", type=int, help="override the service's port")
    serve.add_argument("--ready-file", type=Path, help="write the bound address here once serving")
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.set_defaults(func=_serve)

    triton = sub.add_parser("triton", help="the model server alone (same as `drape serve triton`)")
    triton.add_argument("--config", type=Path, help="TOML/YAML/JSON config file")
    triton.add_argument("--port", type=int, help="override Triton's gRPC port")
    triton.add_argument("--ready-file", type=Path, help="write the bound address here once serving")
    triton.set_defaults(func=_serve, service="triton")

    up = sub.add_parser("up", help="start every service on localhost")
    up.add_argument("--config", type=Path)
    up.add_argument("--services", help="comma-separated subset (default: all)")
    up.add_argument("--run-dir", type=Path, help="where ready files go (default: a temp dir)")
    up.set_defaults(func=_up)

    demo = sub.add_parser("demo", help="run the whole flow on generated data")
    demo.add_argument("--users", type=int, default=300)
    demo.add_argument("--garments", type=int, default=2000)
    demo.add_argument("--events", type=int, default=5000)
    demo.add_argument("--data-dir", type=Path, help="keep the demo's data here (default: temp)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, default=Path("demo-output"),
                      help="where the previews page and its images go (default: demo-output)")  # fmt: skip
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="run a benchmark; prints a table and writes JSON")
    from services.bench import BENCHMARKS

    bench.add_argument("name", choices=tuple(BENCHMARKS))
    bench.add_argument("--out", type=Path, help="JSON output (default: bench-results/NAME.json)")
    bench.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    bench.add_argument(
        "--store-url", help="event store to benchmark (default: SQLite in a temp dir)"
    )
    bench.add_argument("--garments", type=int, default=100_000, help="recommend: catalog size")
    bench.add_argument("--users", type=int, default=100_000, help="recommend: shoppers")
    bench.add_argument("--interactions", type=int, default=2_000_000, help="recommend: events")
    bench.add_argument(
        "--processes", type=int, help="recommend: server worker processes (default: the config's)"
    )
    bench.add_argument(
        "--no-tune", action="store_true", help="recommend: train without blend tuning"
    )
    bench.set_defaults(func=_bench)

    train = sub.add_parser("train", help="train a model from the stored data")
    train.add_argument("what", choices=("recsys", "encoder", "tryon"))
    train.add_argument(
        "--config",
        type=Path,
        help="config file (tryon: the training config, e.g. configs/tryon-cpu.toml)",
    )
    train.add_argument(
        "--cpu", action="store_true", help="tryon: train on CPU even when CUDA is present"
    )
    train.add_argument("--factors", type=int, default=64, help="recsys: ALS factors")
    train.add_argument("--iterations", type=int, default=15, help="recsys: ALS iterations")
    train.add_argument(
        "--no-tune", action="store_true", help="recsys: keep the configured blend weights"
    )
    train.add_argument("--epochs", type=int, default=3, help="encoder: epochs")
    train.add_argument("--batch-size", type=int, default=16, help="encoder: images per step")
    train.add_argument("--lr", type=float, default=3e-4, help="encoder: learning rate")
    train.add_argument(
        "--train-blocks", type=int, default=2, help="encoder: top backbone blocks trained"
    )
    train.add_argument(
        "--generated", type=int, default=0, help="encoder: train on N generated garments"
    )
    train.add_argument(
        "--unsupervised", action="store_true", help="encoder: ignore categories (NT-Xent)"
    )
    train.add_argument("--out", type=Path, help="encoder/tryon: output folder")
    train.add_argument("--no-resume", action="store_true", help="encoder: start over")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("eval", help="offline evaluation; prints a table and writes JSON")
    evaluate.add_argument("what", choices=("recsys", "tryon"))
    evaluate.add_argument("--checkpoint", type=Path, help="tryon: generator safetensors")
    evaluate.add_argument("--pairs", type=int, default=64, help="tryon: held-out synthetic pairs")
    evaluate.add_argument("--dataset", choices=("movielens", "generated"), default="generated")
    evaluate.add_argument(
        "--out", type=Path, help="JSON output (default: bench-results/eval-recsys-DATASET.json)"
    )
    evaluate.add_argument(
        "--cache-dir", default=str(Path.home() / ".cache" / "drape"), help="title embeddings cache"
    )
    evaluate.add_argument(
        "--no-tune", action="store_true", help="skip the ALS hyper-parameter search"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=_eval)

    ingest = sub.add_parser("ingest", help="validate, store, embed and index a catalog feed")
    ingest.add_argument("catalog", type=Path, help="catalog feed (.csv, .tsv or .parquet)")
    ingest.add_argument(
        "--images", type=Path, required=True, help="folder the image paths are relative to"
    )
    ingest.add_argument("--config", type=Path)
    ingest.add_argument("--data-dir", type=Path, help="override the config's data_dir")
    ingest.add_argument(
        "--features",
        help="embed through the features service at this address (default: in-process)",
    )
    ingest.add_argument(
        "--report", type=Path, help="JSON report (default: <data_dir>/ingest-report.json)"
    )
    ingest.set_defaults(func=_ingest)

    generate = sub.add_parser("generate", help="write a generated catalog feed with product shots")
    generate.add_argument("what", choices=("catalog",))
    generate.add_argument("--garments", type=int, default=500)
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(func=_generate)

    export = sub.add_parser("export", help="export models to a Triton model repository")
    export.add_argument("what", choices=("models",))
    export.add_argument(
        "--repository", type=Path, required=True, help="Triton model repository folder"
    )
    export.add_argument("--cpu", action="store_true", help="instance groups on CPU instead of GPU")
    export.add_argument("--config", type=Path)
    export.set_defaults(func=_export)

    doctor = sub.add_parser("doctor", help="check the installation")
    doctor.set_defaults(func=_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("up", "demo", "bench", "eval"):
        _install_sigterm_as_interrupt()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"drape {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
