"""Client channels to other Drape services (and to any gRPC server)."""

from __future__ import annotations

import grpc

from services.runtime.config import ServerConfig
from services.runtime.interceptors import PropagatingClientInterceptor


def connect(address: str, config: ServerConfig | None = None) -> grpc.Channel:
    """A channel whose calls carry the current request id and remaining deadline."""
    config = config or ServerConfig()
    channel = grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            # Reconnect quickly after a dependency restarts.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ],
    )
    return grpc.intercept_channel(channel, PropagatingClientInterceptor(config.default_deadline_s))
