"""`drape up`: every service on localhost, the gateway last and pointed at the others;
Ctrl-C or SIGTERM drains and stops them all."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from drape.cli.foreground import run_until_stopped
from drape.cli.options import add_config_argument
from drape.services.runtime.config import SERVICE_NAMES, load_config


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start every service on localhost")
    add_config_argument(up)
    up.add_argument("--services", help="comma-separated subset (default: all)")
    up.add_argument("--run-dir", type=Path, help="where ready files go (default: a temp dir)")
    up.add_argument("--prometheus", nargs="?", type=int, const=9090, metavar="PORT",
                    help="also start Prometheus on 127.0.0.1:PORT (default 9090) scraping every "
                    "service, with Drape's recording and alerting rules")  # fmt: skip
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.cli.stack import Stack, StackError

    config = load_config(args.config)
    services = args.services.split(",") if args.services else SERVICE_NAMES

    def serve(stops: ExitStack) -> int:
        stack = Stack(config, services, run_dir=args.run_dir, log_to_files=False)
        stops.callback(stack.stop)  # also what a start that failed half-way did start
        stack.start()
        for name, endpoint in stack.endpoints.items():
            metrics = f"http://{endpoint.address.rsplit(':', 1)[0]}:{endpoint.metrics_port}/metrics"
            print(f"{name:<10} grpc {endpoint.address:<22} {metrics}", flush=True)
        if args.prometheus is not None:
            from drape.monitoring.prometheus import LocalPrometheus

            ports = {name: e.metrics_port for name, e in stack.endpoints.items()}
            prometheus = LocalPrometheus(ports, port=args.prometheus)
            stops.callback(prometheus.stop)
            prometheus.start()
            print(f"prometheus {prometheus.url} (rules: {prometheus.page('rules')}, alerts: "
                  f"{prometheus.page('alerts')})", flush=True)  # fmt: skip
        print("all services up; Ctrl-C to stop", flush=True)
        exited = stack.wait()
        print(f"drape up: {exited} exited; stopping the others", file=sys.stderr)
        return 1

    return run_until_stopped("up", serve, (StackError,))
