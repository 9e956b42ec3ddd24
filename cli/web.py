"""`drape web`: the storefront and analyst pages, the JSON API and the preview endpoint on one
HTTP server; with every service started on localhost as `drape up` does, or in front of a
gateway already running (--gateway ADDR, or --no-stack for web.gateway_address)."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from drape.cli.foreground import run_until_stopped
from drape.cli.options import add_config_argument
from drape.services.runtime.config import DrapeConfig, load_config


def register(sub: argparse._SubParsersAction) -> None:
    web = sub.add_parser("web", help="the storefront and analyst pages and the JSON API")
    add_config_argument(web)
    web.add_argument("--address", metavar="HOST:PORT",
                     help="where to listen (default web.address, 127.0.0.1:8080)")  # fmt: skip
    web.add_argument("--gateway", metavar="HOST:PORT",
                     help="call this running gateway instead of starting the services")  # fmt: skip
    web.add_argument("--no-stack", action="store_true",
                     help="start no services: call the gateway at web.gateway_address (what a "
                     "Kubernetes pod runs)")  # fmt: skip
    web.set_defaults(func=run)


def point_previews_here(config: DrapeConfig, url: str) -> None:
    """Preview URLs lead to this server unless the configuration names another (a CDN)."""
    if "public_url" not in config.previews.model_fields_set:
        config.previews.public_url = url


def run(args: argparse.Namespace) -> int:
    from drape.cli.stack import Stack, StackError
    from drape.services.web.server import WebServer, split_address

    config = load_config(args.config)
    if args.address:
        config.web.address = args.address
    host, port = split_address(config.web.address)
    point_previews_here(config, f"http://{host}:{port}")

    def serve(stops: ExitStack) -> int:
        if args.gateway:
            config.web.gateway_address = args.gateway
        elif not args.no_stack:
            stack = Stack(config, log_to_files=False)
            stops.callback(stack.stop)
            config.web.gateway_address = stack.start().address("gateway")
        server = WebServer(config)
        stops.callback(server.stop)
        server.start()
        print(f"storefront {server.url}/  analyst {server.url}/analyst  "
              f"API {server.url}/openapi.json; Ctrl-C to stop", flush=True)  # fmt: skip
        server.wait()
        return 0

    return run_until_stopped("web", serve, (StackError, RuntimeError, ValueError))
