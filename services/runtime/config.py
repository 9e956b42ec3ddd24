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
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drape.services.table import MODEL_SERVER, SERVICE_NAMES, SERVICES, local_address

__all__ = ["SERVICE_NAMES", "ConfigError", "DrapeConfig", "ServerConfig", "load_config"]

ENV_PREFIX = "DRAPE_"


class ConfigError(ValueError):
    """Raised when configuration is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True
    )


class TlsConfig(_Strict):
    """A service's TLS: what it serves with, and how it checks the services it calls. All
    empty = plaintext (the local default, on loopback). Paths to PEM files; the server
    re-reads its certificate and key when they change (rotation needs no restart)."""

    certificate: str = ""
    """Certificate chain this service serves with (and presents as a client, for mTLS)."""
    private_key: str = ""
    """Its private key."""
    client_ca: str = ""
    """Require client certificates signed by this CA bundle (mTLS); empty = any client."""
    ca: str = ""
    """CA bundle that the services this one calls must be signed by; empty = call them in
    plaintext."""

    @property
    def serves_tls(self) -> bool:
        return bool(self.certificate)

    @model_validator(mode="after")
    def _whole(self) -> TlsConfig:
        if bool(self.certificate) != bool(self.private_key):
            raise ValueError("tls.certificate and tls.private_key go together")
        if self.client_ca and not self.certificate:
            raise ValueError("tls.client_ca (mTLS) needs the server's own tls.certificate")
        return self


class ServerConfig(_Strict):
    """How one gRPC service listens and behaves; shared by every service."""

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 in a pod)."""
    port: int = Field(0, ge=0, le=65535)
    """0 = an ephemeral port (the bound port is reported in the ready file)."""
    metrics_port: int = Field(0, ge=-1, le=65535)
    """Prometheus /metrics port; 0 = ephemeral, -1 = disabled."""
    max_workers: int = Field(16, ge=1, le=1024)
    """Handler threads per process; also the cap on concurrent calls (more are refused with
    RESOURCE_EXHAUSTED)."""
    processes: int = Field(1, ge=0, le=64)
    """Server processes sharing the port (SO_REUSEPORT); 0 = one per CPU. Python handlers
    hold the interpreter lock, so CPU-bound services need processes, not threads, to
    use more than one core (see services/runtime/workers.py)."""
    shared_dir: str = ""
    """A directory on the pod's own disk where its worker processes keep what one of them
    builds for all (recommend: one read of the event log, mapped by every worker). Empty: a
    directory of the supervisor's, removed when it stops, when there are several processes;
    nothing is shared by a single one."""
    max_message_mb: int = Field(16, ge=1, le=512)
    """Largest request or response message accepted."""
    grace_s: float = Field(10.0, ge=0, le=300)
    """Seconds in-flight calls get to finish on shutdown."""
    drain_delay_s: float = Field(0.0, ge=0, le=60)
    """Seconds between reporting NOT_SERVING and refusing new calls, so load balancers stop
    routing first (Kubernetes: keep below the pod's grace period)."""
    default_deadline_s: float = Field(10.0, gt=0, le=600)
    """Deadline for downstream calls when the caller set none."""
    access_log_share: float = Field(1.0, ge=0, le=1)
    """Share of successful calls that get an access-log line (sampled at random); failed
    calls and calls slower than slow_call_ms always get one."""
    slow_call_ms: float = Field(250.0, ge=0)
    """Calls slower than this always get an access-log line."""
    reflection: bool = True
    """Serve gRPC server reflection (grpcurl without the protos); off in production."""
    tls: TlsConfig = Field(default_factory=TlsConfig)
    health_port: int = Field(-1, ge=-1, le=65535)
    """A second, plaintext port serving only grpc.health.v1 (Kubernetes' gRPC probes cannot
    speak TLS); -1 = none, 0 = ephemeral."""

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


class _ImageLimits(_Strict):
    """Limits on the images a service decodes, checked before any pixel is decoded."""

    max_image_mb: int = Field(10, ge=1, le=64)
    """Largest image accepted (RESOURCE_EXHAUSTED above)."""
    max_image_pixels: int = Field(40_000_000, ge=1024)
    """Most pixels an image may declare (checked first)."""
    working_megapixels: float = Field(2.0, ge=0.1, le=40)
    """Photos with more pixels are reduced to this size as they are decoded (a JPEG at a
    reduced scale from the start), so the memory and time a call takes are bounded whatever
    the photo: analysis, generation and compositing all work on the reduced photo."""


def _server(service: str, **settings: Any) -> Any:
    """A service's ServerConfig, on its ports from the service table."""
    entry = SERVICES[service]
    return Field(
        default_factory=lambda: ServerConfig(
            port=entry.grpc_port, metrics_port=entry.metrics_port, **settings
        )
    )


class EventsConfig(_Strict):
    server: ServerConfig = _server("events")
    store_url: str = ""
    """sqlite:///relative/or/absolute.db, or postgresql://user@host:port/db. Empty =
    <data_dir>/events.db."""
    max_batch: int = Field(1000, ge=1, le=100_000)
    """Most events one Record call may carry."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL survives power loss; NORMAL only process crashes (both keep every acknowledged
    event when the process is killed)."""
    max_future_skew_s: float = Field(300.0, ge=0)
    """How far in the future (client clock skew) an event's time may be."""


class StorageConfig(_Strict):
    url: str = ""
    """Object storage the pods share instead of a volume: s3://bucket/prefix, gs://..., or
    any fsspec URL (see docs/architecture.md). Empty = the data folder is the only copy.
    Credentials come from the environment (AWS_ACCESS_KEY_ID, ...), never from here."""
    endpoint_url: str = ""
    """An S3-compatible server other than AWS (MinIO, Ceph, ...): its http(s) URL."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Further options for the fsspec filesystem (for example {"anon": false})."""
    check_every_s: float = Field(10.0, gt=0)
    """How often, at most, a service checks the storage for a new catalog."""

    @field_validator("url")
    @classmethod
    def _a_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError(f"{value!r} is not a URL: use s3://bucket/prefix, gs://... or file://")
        return value


class EventWeights(_Strict):
    """Confidence an interaction of each type adds (implicit feedback)."""

    impression: float = Field(0.0, ge=0)
    """Confidence an impression adds (0: shown is not a signal)."""
    view: float = Field(1.0, ge=0)
    """Confidence a product view adds."""
    tryon_view: float = Field(2.0, ge=0)
    """Confidence a viewed try-on preview adds."""
    add_to_cart: float = Field(4.0, ge=0)
    """Confidence an add-to-cart adds."""
    purchase: float = Field(8.0, ge=0)
    """Confidence a purchase adds."""
    rating: float = Field(0.0, ge=0)
    """Confidence a satisfaction rating adds."""


class RecommendConfig(_Strict):
    # Ranking is CPU-bound Python: one process uses about one core, so one worker process
    # per CPU (scale with CPUs). On the 2-core benchmark machine, 8 clients got 300-410
    # requests/s from 1 process; in paired runs, 2 processes beat 3 every time (about 15%
    # more requests/s, 0.2 ms less CPU per request): a third only adds switching. Few
    # threads each: CPU-bound handlers only contend for the interpreter lock.
    # A thousand calls a second and more: one access-log line in twenty successful calls.
    server: ServerConfig = _server("recommend", processes=2, max_workers=4, access_log_share=0.05)
    catalog_path: str = ""
    """Catalog database; empty = <data_dir>/catalog.db."""
    events_store_url: str = ""
    """Event store the popularity statistics are read from; empty = the events service's
    store."""
    refresh_s: float = Field(60.0, gt=0)
    """Seconds between refreshes of the statistics from the event store."""
    half_life_days: float = Field(14.0, gt=0)
    """Age at which an interaction counts half (time decay of the matrix and popularity)."""
    weights: EventWeights = Field(default_factory=EventWeights)
    exclude_after: list[
        Literal["impression", "view", "tryon_view", "add_to_cart", "purchase", "rating"]
    ] = Field(default_factory=lambda: ["purchase"])
    """The repeat policy: a garment is not recommended again to a shopper who had an event of
    one of these types with it. Garments viewed, tried on or carted stay candidates (the
    engagement channel proposes them); garments of replenishable categories come back through
    the repurchase channel when due, whatever this says. In the environment: comma-separated
    (an empty value excludes nothing)."""
    experiments_path: str = ""
    """Experiments YAML (one experiment, or layers of them; see drape.recsys.experiments);
    empty = a single "control" variant (popularity). The events service reads it too."""
    experiments_reload_s: float = Field(5.0, gt=0)
    """How often the recommend and events services look for a changed experiments file. A
    change that reallocates users of a running experiment is refused unless forced."""
    artifacts_path: str = ""
    """Trained recommender versions (`drape train recsys`); empty =
    <data_dir>/artifacts/recsys."""
    embeddings_path: str = ""
    """Garment embedding index used for training; empty = <data_dir>/embeddings."""
    max_k: int = Field(200, ge=1, le=1000)
    """Most garments one Recommend may ask for."""

    @field_validator("exclude_after", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class GatewayConfig(_Strict):
    server: ServerConfig = _server("gateway")
    recommend_address: str = local_address("recommend")
    """Where the recommend service listens (host:port)."""
    recommend_connections: int = Field(6, ge=1, le=64)
    """Connections to recommend, used in turn: its worker processes share one port and the
    kernel balances connections, not calls (keep it above its server.processes)."""
    features_address: str = local_address("features")
    """Where the features service listens (host:port)."""
    tryon_address: str = local_address("tryon")
    """Where the tryon service listens (host:port)."""
    splice_address: str = local_address("splice")
    """Where the splice service listens (host:port)."""
    events_address: str = local_address("events")
    """Where the events service listens (host:port)."""
    max_photo_mb: int = Field(10, ge=1, le=64)
    """Largest shopper photo accepted (RESOURCE_EXHAUSTED above)."""
    max_photo_pixels: int = Field(40_000_000, ge=1024)
    """Most pixels a shopper photo may declare (checked before decoding)."""
    working_megapixels: float = Field(2.0, ge=0.1, le=40)
    """A larger photo is reduced to this size once, here, before it goes to features, tryon
    and splice: previews are made at this size unless a request asks for full size."""
    photo_decoders: int = Field(2, ge=1, le=64)
    """Photos decoded at once (each may take max_photo_pixels x 3 bytes while it is reduced):
    the bound on the gateway's memory for photos, whatever they are."""
    preview_workers: int = Field(32, ge=1, le=512)
    """Previews inside Recommend: made by this many threads at once (tryon + splice calls),
    within the caller's deadline less a margin to send the reply, or within
    preview_timeout_s when the caller sets no deadline."""
    preview_reply_margin_ms: float = Field(100.0, ge=0, le=10_000)
    """Least time kept back from the caller's deadline to build and send the reply; previews
    not ready by then come back TIMED_OUT."""
    preview_reply_margin_share: float = Field(0.1, ge=0, le=0.5)
    """Share of the call's time kept back instead, when it is more than the least margin (a
    reply of several full-size previews takes longer to send on a busy machine)."""
    photo_embedding_share: float = Field(0.5, gt=0, le=1)
    """Share of a Recommend call's time (its caller's deadline, or preview_timeout_s) that the
    photo's embedding may take: past it the call ranks without the photo, and the embedding,
    when it comes, is cached for the next call with the photo."""
    min_preview_quality: float = Field(0.3, ge=0, le=1)
    """Previews whose quality score (0..1, the weakest of coverage, connectedness, colour,
    pattern and sharpness; see drape.models.tryon.quality) is below this are UNSUPPORTED
    instead of shown; a request may set its own."""
    preview_timeout_s: float = Field(10.0, gt=0, le=600)
    """A call's time when its caller sets no deadline: a Recommend call's photo embedding and
    previews are scheduled within it as within a deadline."""
    preview_cache_entries: int = Field(2048, ge=1, le=1_000_000)
    """Previews by (photo hash, garment id, try-on model version), and photo embeddings by
    photo hash: bounded, and gone from memory ttl seconds after they were made."""
    preview_cache_mb: int = Field(256, ge=1, le=65_536)
    """Memory bound of the preview and photo-embedding caches."""
    preview_cache_ttl_s: float = Field(600.0, gt=0, le=86_400)
    """Seconds a cached preview or photo embedding is kept after it was made, read or not."""
    exposure_queue: int = Field(10_000, ge=1, le=10_000_000)
    """Recommendation lists waiting to be logged to the events service; when full, new ones
    are dropped (counted in drape_exposures_dropped_total), never waited for. Also what a
    crash of the gateway can lose at most."""
    exposure_batch: int = Field(200, ge=1, le=1000)
    """Exposures per LogExposures call (at most the events service's max_batch)."""
    exposure_flush_interval_s: float = Field(0.2, gt=0, le=60)
    """Longest an exposure waits for its batch to fill before it is sent."""
    exposure_attempts: int = Field(3, ge=1, le=20)
    """Tries per batch (with backoff) before it is dropped and counted."""
    exposure_call_timeout_s: float = Field(5.0, gt=0, le=120)
    """Deadline of one LogExposures call."""
    exposure_flush_timeout_s: float = Field(5.0, ge=0, le=120)
    """On stop, time given to send what is queued."""
    api_keys_path: str = ""
    """Storefront API keys (hashes, scopes, limits; `drape keys new`); empty = no
    authentication (the local default: loopback only). Re-read when it changes."""
    api_keys_reload_s: float = Field(5.0, gt=0, le=3600)
    """How often the keys file is checked for changes."""
    preview_delivery: Literal["url", "inline"] = "url"
    """How replies carry previews when a request does not say (its ``delivery``): ``url``
    stores each composite in the preview store and sends a signed link (see ``previews``);
    ``inline`` sends the encoded image in the reply."""


class EncoderConfig(_Strict):
    """The garment/user encoder (EfficientNet-Lite0 + projection)."""

    embedding_dim: int = Field(256, ge=8, le=1280)
    """Size of garment and shopper embeddings."""
    image_size: int = Field(224, ge=64, le=512)
    """Side of the square (letterboxed) encoder input."""
    checkpoint: str = ""
    """Fine-tuned weights (`drape train encoder`, safetensors); empty = ImageNet backbone
    with the seeded orthogonal projection."""
    backend: Literal["onnx", "torch"] = "onnx"
    """"onnx": onnxruntime on the exported graph (fast; what Triton runs); "torch": the eager
    model (the reference the exported graph is tested against)."""
    threads: int = Field(0, ge=0, le=256)
    """Intra-op threads wherever the encoder runs; 0 = the runtime's default."""


class ModelServerConfig(_Strict):
    """The Triton Inference Server that serves Drape's models (pytriton locally; NVIDIA's
    container with the exported repository in production)."""

    host: str = "127.0.0.1"
    """Address Triton listens on."""
    grpc_port: int = Field(MODEL_SERVER.grpc_port, ge=0, le=65535)
    """Triton's gRPC port (what the services call)."""
    http_port: int = Field(MODEL_SERVER.http_port, ge=0, le=65535)
    """Triton's HTTP port (health and readiness)."""
    metrics_port: int = Field(MODEL_SERVER.metrics_port, ge=0, le=65535)
    """Triton's Prometheus metrics port."""
    max_batch: int = Field(32, ge=1, le=1024)
    """Dynamic batching: the largest batch Triton forms and how long a request may wait for
    others to join it."""
    max_queue_delay_us: int = Field(2000, ge=0, le=1_000_000)
    """How long a request may wait for others to join its batch."""
    instances: int = Field(1, ge=1, le=16)
    """Model instances (parallel executions) per model."""
    tls: TlsConfig = Field(default_factory=TlsConfig)
    """TLS on Triton's gRPC port (Triton reads the files when it starts: a renewed
    certificate needs a restart); the HTTP port, for health probes, stays plaintext."""


class TryOnConfig(_ImageLimits):
    server: ServerConfig = _server("tryon")
    triton_url: str = local_address(MODEL_SERVER.name)
    """Where the model server's gRPC endpoint is (host:port)."""
    triton_timeout_s: float = Field(10.0, gt=0)
    """Longest a generator call to Triton may take."""
    analyzers: int = Field(2, ge=1, le=64)
    """MediaPipe person analyzers (each single-threaded)."""
    analysis_cache_entries: int = Field(32, ge=1, le=10_000)
    """Decoded photos and their person analyses, by content hash: the k Generate calls of one
    storefront request share one analysis. Gone from memory ttl seconds after they
    were made."""
    analysis_cache_mb: int = Field(512, ge=1, le=65_536)
    """Memory bound of the photo-analysis cache."""
    analysis_ttl_s: float = Field(60.0, gt=0, le=86_400)
    """Seconds a photo's analysis is kept after it was made."""
    checkpoint: str = ""
    """Trained generator (safetensors from `drape train tryon`); empty = the checkpoint that
    ships with Drape (models/checkpoints/tryon_gan.safetensors)."""


class SpliceConfig(_ImageLimits):
    server: ServerConfig = _server("splice")
    working_megapixels: float = Field(8.0, ge=0.1, le=40)
    """The largest composite: a larger photo is reduced to this size before compositing. The
    gateway sends photos already reduced to its own working size, unless a storefront asks
    for full-size previews; this is their budget."""
    composers: int = Field(2, ge=1, le=64)
    """Composites made at once (more calls wait their turn, within their deadline). Each
    holds about 75 bytes per pixel of its photo, so with working_megapixels this bounds the
    service's memory: about 1.2 GB at 8 megapixels, 300 MB at the gateway's 2."""
    default_blend: Literal["multiband", "alpha", "poisson"] = "multiband"
    """Blend used when a request leaves it unspecified."""
    jpeg_quality: int = Field(92, ge=50, le=100)
    """JPEG quality of the composited preview."""


class FeaturesConfig(_ImageLimits):
    server: ServerConfig = _server("features")
    runner: Literal["triton", "inprocess"] = "triton"
    """"triton": call the model server over gRPC; "inprocess": run torch in this process."""
    triton_url: str = local_address(MODEL_SERVER.name)
    """Where the model server's gRPC endpoint is (host:port)."""
    triton_timeout_s: float = Field(30.0, gt=0)
    """Longest an encoder call to Triton may take."""
    batch_size: int = Field(32, ge=1, le=1024)
    """Images per model call when embedding a garment stream."""
    analyzers: int = Field(2, ge=1, le=64)
    """MediaPipe analyzers (each single-threaded) for person analysis."""
    history_half_life: float = Field(5.0, gt=0)
    """Half-life, in items, of the weights of a shopper's history (most recent first)."""


class PreviewsConfig(_Strict):
    """The preview store and its signed URLs, shared by the gateway (which stores previews and
    signs their URLs) and the web front (which checks the signatures and serves them)."""

    public_url: str = f"http://{local_address('web')}"
    """Where shoppers' browsers reach the web front's /v1/previews (or a CDN in front of it):
    the start of every preview URL."""
    url_ttl_s: float = Field(86_400.0, ge=60, le=30 * 86_400)
    """How long a preview URL works (at least; expiries are rounded up to an eighth of it
    so that repeated asks get the same, cacheable URL)."""
    signing_keys_path: str = ""
    """HMAC keys of the preview URLs, one per line (at least 32 characters; the first signs,
    all verify); re-read when it changes. Empty = <data_dir>/preview-signing.keys, made with
    a random key on first use (one machine; in a cluster, mount a Secret)."""
    sizes: list[int] = Field(default_factory=lambda: [512])
    """Sizes (long side, pixels) the preview endpoint serves besides the full one (?size=)."""
    variant_cache_mb: int = Field(64, ge=1, le=65_536)
    """Memory for resized and re-encoded previews (each made once per size and format)."""

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(not 16 <= size <= 8192 for size in value):
            raise ValueError(f"sizes must be within 16..8192 pixels, got {value}")
        return sorted(set(value))


class WebConfig(_Strict):
    """`drape web`: the JSON/HTTP front of the gateway, the preview endpoint and the
    storefront and analyst pages, on one HTTP server."""

    address: str = local_address("web")
    """Where it listens (host:port)."""
    gateway_address: str = local_address("gateway")
    """The gateway it calls (host:port), over TLS when client_tls.ca is set."""
    call_timeout_s: float = Field(30.0, gt=0, le=600)
    """Deadline of a JSON call that sets none (a request sets its own with the
    ``X-Request-Timeout-Ms`` header)."""
    pages: bool = True
    """Serve the storefront (/) and analyst (/analyst) pages; off leaves the JSON API and the
    previews only."""


class DrapeConfig(_Strict):
    data_dir: Path = Path(".drape")
    """Where the catalog, images, embeddings, trained versions and the default SQLite event
    store live."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the JSON logs."""
    client_tls: TlsConfig = Field(default_factory=TlsConfig)
    """TLS of the command-line tools' calls to the services (`drape ingest --features`,
    `drape health`): ``ca`` to verify them, a certificate where they require one."""
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    triton: ModelServerConfig = Field(default_factory=ModelServerConfig)
    tryon: TryOnConfig = Field(default_factory=TryOnConfig)
    splice: SpliceConfig = Field(default_factory=SpliceConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    previews: PreviewsConfig = Field(default_factory=PreviewsConfig)
    web: WebConfig = Field(default_factory=WebConfig)

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
        # Package data of drape.models, found through the import system rather than a path
        # relative to this file, so it is the generator of the drape that is installed.
        shipped = resources.files("drape.models") / "checkpoints" / "tryon_gan.safetensors"
        return Path(str(shipped))

    def encoder_checkpoint(self) -> Path | None:
        return Path(self.encoder.checkpoint) if self.encoder.checkpoint else None

    def models_path(self) -> Path:
        """Exported models (ONNX graphs, Triton model repositories)."""
        return self.data_dir / "models"

    def images_path(self) -> Path:
        """Content-addressed garment image store."""
        return self.data_dir / "images"

    def previews_path(self) -> Path:
        """Content-addressed try-on previews served by URL."""
        return self.data_dir / "previews"

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


FILE_SUFFIX = "_FILE"


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """DRAPE_SECTION__KEY=value sets section.key; DRAPE_SECTION__KEY_FILE=path sets it to the
    file's content (trailing newline dropped): a Secret mounted as a file, never in the env."""
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        if key.endswith(FILE_SUFFIX):
            try:
                value = Path(value).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read {value}: {exc.strerror or exc}") from None
            key = key.removesuffix(FILE_SUFFIX)
            if key in env:
                raise ConfigError(f"{key} and {key}{FILE_SUFFIX} are both set: keep one")
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
