"""Which module builds which service; imported lazily so a service loads only what it needs."""

from __future__ import annotations

import importlib

from drape.services.runtime import DrapeConfig, ServiceSpec
from drape.services.runtime.config import SERVICE_NAMES

_BUILDERS = {name: f"drape.services.{name}.service" for name in SERVICE_NAMES}


def build_service(name: str, config: DrapeConfig) -> ServiceSpec:
    """The :class:`ServiceSpec` of service ``name`` configured by ``config``."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(_BUILDERS[name])
    return module.build(config)
