"""Typed configuration: validated defaults, overridden by a file, then by the environment.

    DRAPE_CONFIG=drape.toml            # optional file (TOML, YAML or JSON)
    DRAPE_EVENTS__SERVER__PORT=6000    # any field, path joined by "__"
    DRAPE_DATA_DIR=/var/lib/drape

Every value is checked at start-up; a bad one stops the process with a message
that names the setting, never a traceback from deep inside a service.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "DRAPE_"
SERVICE_NAMES = ("gateway", "recommend", "features", "tryon", "splice", "events")


class ConfigError(ValueError):
    """Raised when configuration is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerConfig(_Strict):
    """How one gRPC service listens and behaves; shared by every service."""

    host: str = "127.0.0.1"
    # 0 = an ephemeral port (the bound port is reported in the ready file).
    port: int = Field(0, ge=0, le=65535)
    # Prometheus /metrics port; 0 = ephemeral, -1 = disabled.
    metrics_port: int = Field(0, ge=-1, le=65535)
    max_workers: int = Field(16, ge=1, le=1024)
    # Server processes sharing the port (SO_REUSEPORT); 0 = one per CPU. Python handlers
    # hold the interpreter lock, so CPU-bound services need processes, not threads, to
    # use more than one core (see services/runtime/workers.py).
    processes: int = Field(1, ge=0, le=64)
    # Largest request or response message accepted.
    max_message_mb: int = Field(16, ge=1, le=512)
    # Seconds in-flight calls get to finish on shutdown.
    grace_s: float = Field(10.0, ge=0, le=300)
    # Seconds between reporting NOT_SERVING and refusing new calls, so load
    # balancers stop routing first (Kubernetes: keep below the pod's grace period).
    drain_delay_s: float = Field(0.0, ge=0, le=60)
    # Deadline for downstream calls when the caller set none.
    default_deadline_s: float = Field(10.0, gt=0, le=600)
    # Share of successful calls that get an access-log line (sampled at random); failed
    # calls and calls slower than slow_call_ms always get one.
    access_log_share: float = Field(1.0, ge=0, le=1)
    slow_call_ms: float = Field(250.0, ge=0)

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


def _server(port: int, metrics_port: int, **settings: Any) -> Any:
    return Field(
        default_factory=lambda: ServerConfig(port=port, metrics_port=metrics_port, **settings)
    )


class EventsConfig(_Strict):
    server: ServerConfig = _server(50056, 9106)
    # sqlite:///relative/or/absolute.db, or postgresql://user@host:port/db.
    # Empty = <data_dir>/events.db.
    store_url: str = ""
    max_batch: int = Field(1000, ge=1, le=100_000)
    # FULL survives power loss; NORMAL only process crashes (both keep every
    # acknowledged event when the process is killed).
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # How far in the future (client clock skew) an event's time may be.
    max_future_skew_s: float = Field(300.0, ge=0)


class EventWeights(_Strict):
    """Confidence an interaction of each type adds (implicit feedback)."""

    impression: float = Field(0.0, ge=0)
    view: float = Field(1.0, ge=0)
    tryon_view: float = Field(2.0, ge=0)
    add_to_cart: float = Field(4.0, ge=0)
    purchase: float = Field(8.0, ge=0)
    rating: float = Field(0.0, ge=0)


class RecommendConfig(_Strict):
    # Ranking is CPU-bound Python: one process uses about one core, so one worker process
    # per CPU (scale with CPUs). On the 2-core benchmark machine, 8 clients got 300-410
    # requests/s from 1 process; in paired runs, 2 processes beat 3 every time (about 15%
    # more requests/s, 0.2 ms less CPU per request): a third only adds switching. Few
    # threads each: CPU-bound handlers only contend for the interpreter lock.
    # A thousand calls a second and more: one access-log line in twenty successful calls.
    server: ServerConfig = _server(50052, 9102, processes=2, max_workers=4, access_log_share=0.05)
    # Catalog database; empty = <data_dir>/catalog.db.
    catalog_path: str = ""
    # Event store the popularity statistics are read from; empty = the events
    # service's store.
    events_store_url: str = ""
    # Seconds between refreshes of the statistics from the event store.
    refresh_s: float = Field(60.0, gt=0)
    half_life_days: float = Field(14.0, gt=0)
    weights: EventWeights = Field(default_factory=EventWeights)
    # Experiments YAML; empty = a single "control" variant (popularity).
    experiments_path: str = ""
    # Trained recommender versions (`drape train recsys`); empty = <data_dir>/artifacts/recsys.
    artifacts_path: str = ""
    # Garment embedding index used for training; empty = <data_dir>/embeddings.
    embeddings_path: str = ""
    max_k: int = Field(200, ge=1, le=1000)


class GatewayConfig(_Strict):
    server: ServerConfig = _server(50051, 9101)
    recommend_address: str = "127.0.0.1:50052"
    # Connections to recommend, used in turn: its worker processes share one port and
    # the kernel balances connections, not calls (keep it above its server.processes).
    recommend_connections: int = Field(6, ge=1, le=64)
    features_address: str = "127.0.0.1:50053"
    tryon_address: str = "127.0.0.1:50054"
    splice_address: str = "127.0.0.1:50055"
    events_address: str = "127.0.0.1:50056"
    max_photo_mb: int = Field(10, ge=1, le=64)
    # Previews inside Recommend: made by this many threads at once (tryon + splice calls),
    # within the caller's deadline less a margin to send the reply, or within
    # preview_timeout_s when the caller sets no deadline.
    preview_workers: int = Field(32, ge=1, le=512)
    preview_reply_margin_ms: float = Field(30.0, ge=0, le=10_000)
    preview_timeout_s: float = Field(10.0, gt=0, le=600)
    # Previews by (photo hash, garment id, try-on model version), and photo embeddings by
    # photo hash: bounded, and gone from memory ttl seconds after they were made.
    preview_cache_entries: int = Field(2048, ge=1, le=1_000_000)
    preview_cache_mb: int = Field(256, ge=1, le=65_536)
    preview_cache_ttl_s: float = Field(600.0, gt=0, le=86_400)


class EncoderConfig(_Strict):
    """The garment/user encoder (EfficientNet-Lite0 + projection)."""

    embedding_dim: int = Field(256, ge=8, le=1280)
    image_size: int = Field(224, ge=64, le=512)
    # Fine-tuned weights (`drape train encoder`, safetensors); empty = ImageNet backbone
    # with the seeded orthogonal projection.
    checkpoint: str = ""
    # "onnx": onnxruntime on the exported graph (fast; what Triton runs);
    # "torch": the eager model (the reference the exported graph is tested against).
    backend: Literal["onnx", "torch"] = "onnx"
    # Intra-op threads wherever the encoder runs; 0 = the runtime's default.
    threads: int = Field(0, ge=0, le=256)


class ModelServerConfig(_Strict):
    """The Triton Inference Server that serves Drape's models (pytriton locally; NVIDIA's
    container with the exported repository in production)."""

    host: str = "127.0.0.1"
    grpc_port: int = Field(8001, ge=0, le=65535)
    http_port: int = Field(8000, ge=0, le=65535)
    metrics_port: int = Field(8002, ge=0, le=65535)
    # Dynamic batching: the largest batch Triton forms and how long a request may wait
    # for others to join it.
    max_batch: int = Field(32, ge=1, le=1024)
    max_queue_delay_us: int = Field(2000, ge=0, le=1_000_000)
    # Model instances (parallel executions) per model.
    instances: int = Field(1, ge=1, le=16)


class TryOnConfig(_Strict):
    server: ServerConfig = _server(50054, 9104)
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = Field(10.0, gt=0)
    max_image_mb: int = Field(10, ge=1, le=64)
    max_image_pixels: int = Field(40_000_000, ge=1024)
    analyzers: int = Field(2, ge=1, le=64)
    # Decoded photos and their person analyses, by content hash: the k Generate calls of one
    # storefront request share one analysis. Gone from memory ttl seconds after they were made.
    analysis_cache_entries: int = Field(32, ge=1, le=10_000)
    analysis_cache_mb: int = Field(512, ge=1, le=65_536)
    analysis_ttl_s: float = Field(60.0, gt=0, le=86_400)
    # Trained generator (safetensors from `drape train tryon`); empty = the checkpoint that
    # ships with Drape (models/checkpoints/tryon_gan.safetensors).
    checkpoint: str = ""


class SpliceConfig(_Strict):
    server: ServerConfig = _server(50055, 9105)
    max_image_mb: int = Field(10, ge=1, le=64)
    max_image_pixels: int = Field(40_000_000, ge=1024)
    # Blend used when a request leaves it unspecified.
    default_blend: Literal["multiband", "alpha", "poisson"] = "multiband"
    jpeg_quality: int = Field(92, ge=50, le=100)


class FeaturesConfig(_Strict):
    server: ServerConfig = _server(50053, 9103)
    # "triton": call the model server over gRPC; "inprocess": run torch in this process.
    runner: Literal["triton", "inprocess"] = "triton"
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = Field(30.0, gt=0)
    # Images per model call when embedding a garment stream.
    batch_size: int = Field(32, ge=1, le=1024)
    max_image_mb: int = Field(10, ge=1, le=64)
    max_image_pixels: int = Field(40_000_000, ge=1024)
    # MediaPipe analyzers (each single-threaded) for person analysis.
    analyzers: int = Field(2, ge=1, le=64)
    # Half-life, in items, of the weights of a shopper's history (most recent first).
    history_half_life: float = Field(5.0, gt=0)


class DrapeConfig(_Strict):
    data_dir: Path = Path(".drape")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    triton: ModelServerConfig = Field(default_factory=ModelServerConfig)
    tryon: TryOnConfig = Field(default_factory=TryOnConfig)
    splice: SpliceConfig = Field(default_factory=SpliceConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    def server(self, service: str) -> ServerConfig:
        if service not in SERVICE_NAMES:
            raise ConfigError(f"unknown service {service!r}; expected one of {SERVICE_NAMES}")
        return getattr(self, service).server

    def events_store_url(self) -> str:
        return self.events.store_url or f"sqlite:///{self.data_dir / 'events.db'}"

    def recsys_artifacts(self) -> Path:
        path = self.recommend.artifacts_path
        return Path(path) if path else self.data_dir / "artifacts" / "recsys"

    def embeddings_path(self) -> Path:
        path = self.recommend.embeddings_path
        return Path(path) if path else self.data_dir / "embeddings"

    def tryon_checkpoint(self) -> Path:
        if self.tryon.checkpoint:
            return Path(self.tryon.checkpoint)
        import models

        return Path(models.__file__).parent / "checkpoints" / "tryon_gan.safetensors"

    def encoder_checkpoint(self) -> Path | None:
        return Path(self.encoder.checkpoint) if self.encoder.checkpoint else None

    def models_path(self) -> Path:
        """Exported models (ONNX graphs, Triton model repositories)."""
        return self.data_dir / "models"

    def images_path(self) -> Path:
        """Content-addressed garment image store."""
        return self.data_dir / "images"

    def catalog_path(self) -> Path:
        path = self.recommend.catalog_path
        return Path(path) if path else self.data_dir / "catalog.db"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path}: use .toml, .yaml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key} conflicts with another DRAPE_ variable")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, env: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors():
        dotted = ".".join(str(p) for p in item["loc"])
        env_key = ENV_PREFIX + "__".join(str(p) for p in item["loc"]).upper()
        origin = f" (from {env_key})" if env_key in env else ""
        lines.append(f"  {dotted}{origin}: {item['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> DrapeConfig:
    """Builds the configuration from defaults, ``path`` (or $DRAPE_CONFIG), then env."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    file_path = path or env.get(ENV_PREFIX + "CONFIG")
    if file_path:
        data = _read_file(Path(file_path))
    data = _merge(data, _env_overrides(env))
    try:
        return DrapeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env)) from None
