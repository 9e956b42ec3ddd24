"""`drape health [SERVICE]`: asks a Drape service whether it is serving (grpc.health.v1) and
exits 0 only if it is. Without SERVICE, the service this container runs (`drape serve NAME`
as its first process), so one image's HEALTHCHECK serves every service; in a container that
runs no service (a job), there is nothing to check."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from drape.cli.options import add_config_argument


def register(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser("health", help="check that a service is serving (exit 0) or not (1)")
    health.add_argument("service", nargs="?", help="service name (default: this container's)")
    health.add_argument(
        "--address", help="HOST:PORT (default: the service's configured port on 127.0.0.1)"
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    add_config_argument(health)
    health.set_defaults(func=run)


def served_here(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """The service the first process of this container serves, if it is `drape serve NAME`."""
    try:
        words = cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for first, second in itertools.pairwise(words):
        if first == "serve" and second and not second.startswith("-"):
            return second
    return None


def run(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from drape.services.runtime.client import connect
    from drape.services.runtime.config import ServerConfig, load_config
    from drape.services.table import SERVICES

    name = args.service or served_here()
    if name is None:
        print("no Drape service runs in this container: nothing to check")
        return 0
    if name not in SERVICES:
        print(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        return 2
    config = load_config(args.config)
    server = config.server(name)
    # The plaintext health port where the service has one, else its own port (over TLS when
    # the tools' client_tls says so).
    plain = server.health_port > 0
    address = args.address or f"127.0.0.1:{server.health_port if plain else server.port}"
    channel = (
        grpc.insecure_channel(address)
        if plain
        else connect(address, ServerConfig(tls=config.client_tls))
    )
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=args.timeout
        )
    except grpc.RpcError as exc:
        print(f"{name} at {address}: {exc.code().name}: {exc.details()}")
        return 1
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{name} at {address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
