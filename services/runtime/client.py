"""Client channels to other Drape services (and to any gRPC server)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from drape.services.runtime.config import ServerConfig
from drape.services.runtime.interceptors import PropagatingClientInterceptor
from drape.services.runtime.tls import channel_credentials


def connect(address: str, config: ServerConfig | None = None, connections: int = 1) -> grpc.Channel:
    """A channel whose calls carry the current request id and remaining deadline; over TLS
    when ``config.tls.ca`` is set (verifying the server, presenting this service's certificate).

    ``connections > 1`` opens that many TCP connections and spreads calls over them in
    turn. A service with several worker processes on one port (SO_REUSEPORT) balances
    by connection, and one HTTP/2 connection would keep one worker busy and the rest idle.
    """
    config = config or ServerConfig()
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Reconnect quickly after a dependency restarts.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if connections > 1:
        # Channels to one address share a connection unless each has its own pool.
        options.append(("grpc.use_local_subchannel_pool", 1))
    credentials = channel_credentials(config.tls)

    def channel() -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(address, options=options)
        return grpc.secure_channel(address, credentials, options=options)

    channels = [
        grpc.intercept_channel(channel(), PropagatingClientInterceptor(config.default_deadline_s))
        for _ in range(max(connections, 1))
    ]
    return channels[0] if len(channels) == 1 else RoundRobinChannel(channels)


class _Rotating:
    """One method's callables on every channel; each call takes the next one."""

    def __init__(self, callables: list[Any], turn: Iterator[int]) -> None:
        self._callables = callables
        self._turn = turn

    def _next(self) -> Any:
        return self._callables[next(self._turn) % len(self._callables)]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._next()(*args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().with_call(*args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().future(*args, **kwargs)


class RoundRobinChannel(grpc.Channel):
    """Several channels to one service used in turn, one call each (see :func:`connect`)."""

    def __init__(self, channels: list[grpc.Channel]) -> None:
        self._channels = channels
        self._turn = itertools.count()  # next() on a count is atomic under the GIL

    def _rotating(self, kind: str, method: str, *args: Any, **kwargs: Any) -> _Rotating:
        return _Rotating(
            [getattr(c, kind)(method, *args, **kwargs) for c in self._channels], self._turn
        )

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._rotating("unary_unary", method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._rotating("unary_stream", method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._rotating("stream_unary", method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._rotating("stream_stream", method, *args, **kwargs)

    def subscribe(self, callback: Callable[..., None], try_to_connect: bool = False) -> None:
        # Connectivity of the first connection stands for the pool.
        self._channels[0].subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[..., None]) -> None:
        self._channels[0].unsubscribe(callback)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> RoundRobinChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
