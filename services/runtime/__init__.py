"""The service runtime every Drape service is built on (bootstrap, interceptors, config)."""

from drape.services.runtime.client import connect
from drape.services.runtime.config import ConfigError, DrapeConfig, ServerConfig, load_config
from drape.services.runtime.errors import (
    DeadlineExceeded,
    DrapeError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from drape.services.runtime.server import RunningService, ServiceSpec, serve_until_signalled

__all__ = [
    "ConfigError",
    "DeadlineExceeded",
    "DrapeConfig",
    "DrapeError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "RunningService",
    "ServerConfig",
    "ServiceSpec",
    "Unavailable",
    "Unimplemented",
    "connect",
    "load_config",
    "serve_until_signalled",
]
