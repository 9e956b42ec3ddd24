"""The web front served by uvicorn on a thread of its own: `drape web`, `drape demo --web` and
the tests start and stop it the same way."""

from __future__ import annotations

import threading
import time

import uvicorn
from prometheus_client import CollectorRegistry

from drape.services.runtime.config import DrapeConfig
from drape.services.web.app import create_app


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


class WebServer:
    def __init__(self, config: DrapeConfig, registry: CollectorRegistry | None = None) -> None:
        host, port = split_address(config.web.address)
        self.app = create_app(config, registry)
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False,
            lifespan="on", timeout_graceful_shutdown=5,
        ))  # fmt: skip
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 20.0) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the web front did not start (is its address in use?)")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.server.config.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def wait(self) -> None:
        """Until the server stops (Ctrl-C reaches the main thread, which stops it)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
