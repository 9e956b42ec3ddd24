"""GatewayService: the storefront's single entry point.

Recommend asks the recommend service for the ranking and, when the request asks for
previews, the experiment variant shows them and a photo came with it, previews the top
items on the shopper's photo: one tryon Generate + splice Compose per garment, all at once
(the tryon service analyses the photo once; Triton batches the GAN calls). Previews are
cached by content (photo hash, garment id, try-on model version) in a bounded cache whose
entries expire after a TTL, and bounded by the caller's deadline: an item whose preview is
not ready in time comes back without one, with a status and the reason, never failing the
call. Every list served is logged to the events service (what the shopper saw: garments,
ranks, previews, experiment arms), in batches from a bounded queue, never slowing the call
(see exposures.py). Track forwards feedback to the events service. Deadlines and request ids
flow downstream through the runtime's client channels. Photos are never logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from drape.models.images import ImageLimits, encode_jpeg
from drape.services.gateway.auth import ApiKeys
from drape.services.gateway.exposures import ExposureLog
from drape.services.runtime import (
    DrapeConfig,
    InvalidArgument,
    ResourceExhausted,
    ServiceSpec,
    connect,
)
from drape.services.runtime import scope as scopes
from drape.services.runtime.cache import TtlCache
from drape.services.runtime.config import GatewayConfig
from drape.services.runtime.errors import DrapeError
from drape.services.runtime.images import decode_field
from drape.services.runtime.preview_store import PreviewStore, UrlSigner
from drape.services.runtime.previews import preview_status_name
from drape.services.runtime.storage import StorageError
from drape.v1 import (
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    features_pb2,
    features_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    splice_pb2,
    splice_pb2_grpc,
    tryon_pb2,
    tryon_pb2_grpc,
)

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")
MAX_PREVIEWS = 16
# Errors of a preview that are about its input (the garment, the photo), not the backend.
_INPUT_ERRORS = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
# Person statuses whose previews are UNSUPPORTED (the shopper can fix the photo), with the
# label they are counted under in drape_previews_unsupported_total.
POSE_UNSUPPORTED = {
    features_pb2.PERSON_STATUS_FACING_SIDEWAYS: "facing_sideways",
    features_pb2.PERSON_STATUS_TORSO_OCCLUDED: "torso_occluded",
}


@dataclass(frozen=True)
class _PreviewPhotos:
    """The photo a preview is generated on (the working size), the one it is composited into
    (the same, or the original for full-size previews) and the cache key of the pair."""

    working: common_pb2.Image
    composite: common_pb2.Image
    key: str


@dataclass(frozen=True)
class _PhotoEmbedding:
    use: gateway_pb2.PhotoUse
    values: tuple[float, ...]


@dataclass(frozen=True)
class _Schedule:
    """When the parts of one Recommend call must be done (time.monotonic()), set once from
    the time the caller gave it: the photo's embedding by ``photo_by`` (else the ranking goes
    without it), the previews by ``reply_by`` (the rest is kept to send the reply)."""

    photo_by: float
    reply_by: float


class _InFlight(Generic[K, V]):
    """Work being done, by key: a second request for a key in flight joins the first one's
    future instead of doing it again (single flight). ``on_done`` gets each success, also one
    that comes after every request that asked for it stopped waiting."""

    def __init__(self, pool: ThreadPoolExecutor, on_done: Callable[[K, V], None]) -> None:
        self._pool, self._on_done = pool, on_done
        self._futures: dict[K, Future[V]] = {}
        self._lock = threading.Lock()

    def start(self, key: K, work: Callable[[], V]) -> tuple[Future[V], bool]:
        """The future of ``key``'s work, and whether it was already in flight. ``work`` runs
        in the caller's context (its request id and deadline go along)."""
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future, True
            future = self._pool.submit(contextvars.copy_context().run, work)
            self._futures[key] = future
        future.add_done_callback(lambda done: self._finished(key, done))
        return future, False

    def _finished(self, key: K, future: Future[V]) -> None:
        # Handed on (cached) before the key leaves the flight: a request in between finds
        # one or the other, never neither, and so never does the work again.
        try:
            if not future.cancelled() and future.exception() is None:
                self._on_done(key, future.result())
        finally:
            with self._lock:
                if self._futures.get(key) is future:
                    del self._futures[key]


def exposure(
    user_id: str, response: gateway_pb2.GatewayServiceRecommendResponse, seconds: float
) -> events_pb2.Exposure:
    """What the shopper was shown, as the exposure log stores it."""
    served = events_pb2.Exposure(
        recommendation_id=response.recommendation_id,
        user_id=user_id,
        strategy=response.assignment.strategy,
        model_version=response.model_version,
        latency_ms=seconds * 1000,
    )
    served.served_at.GetCurrentTime()
    for arm in response.assignments:
        served.arms.add(experiment=arm.experiment, variant=arm.variant, version=arm.version)
    for item in response.items:
        served.items.add(garment_id=item.garment.garment_id, rank=item.rank,
                         preview_status=item.preview.status or common_pb2.PREVIEW_STATUS_SKIPPED)  # fmt: skip
    return served


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        recommend: recommend_pb2_grpc.RecommendServiceStub,
        events: events_pb2_grpc.EventsServiceStub,
        features: features_pb2_grpc.FeaturesServiceStub,
        tryon: tryon_pb2_grpc.TryOnServiceStub,
        splice: splice_pb2_grpc.SpliceServiceStub,
        settings: GatewayConfig,
        registry: CollectorRegistry,
        preview_store: PreviewStore | None = None,
        signer: UrlSigner | None = None,
    ) -> None:
        """``preview_store`` and ``signer``: where URL delivery puts previews and how it signs
        their URLs (without them every preview goes inline)."""
        self.recommend = recommend
        self.events = events
        self.features = features
        self.tryon = tryon
        self.splice = splice
        self.settings = settings
        self.preview_store, self.signer = preview_store, signer
        # With URL delivery by default, each preview is stored as it is made (in parallel and
        # within its own time), not one after another when the reply is sent.
        self._store_as_made = (preview_store is not None and signer is not None
                               and settings.preview_delivery == "url")  # fmt: skip
        self.max_photo_bytes = settings.max_photo_mb * 2**20
        self.photo_limits = ImageLimits(
            max_bytes=self.max_photo_bytes,
            max_pixels=settings.max_photo_pixels,
            fit_pixels=int(settings.working_megapixels * 1_000_000),
        )
        self.photo_decoders = threading.BoundedSemaphore(settings.photo_decoders)
        self.pool = ThreadPoolExecutor(settings.preview_workers, thread_name_prefix="preview")
        # One photo embedding per call at most: as many threads as calls are served at once.
        self.embedders = ThreadPoolExecutor(settings.server.max_workers,
                                            thread_name_prefix="photo-embedding")  # fmt: skip
        ttl = settings.preview_cache_ttl_s
        self.preview_cache: TtlCache[common_pb2.Preview] = TtlCache(
            "preview", settings.preview_cache_entries, settings.preview_cache_mb * 2**20, ttl,
            lambda preview: preview.ByteSize(), registry,
        ).start_sweeper()  # fmt: skip
        # Each photo reduced to the working size once (single flight by content hash).
        self.working_photos: TtlCache[common_pb2.Image] = TtlCache(
            "working_photo", settings.preview_cache_entries, 64 * 2**20, ttl,
            lambda image: image.ByteSize(), registry,
        ).start_sweeper()  # fmt: skip
        self.photo_cache: TtlCache[_PhotoEmbedding] = TtlCache(
            "photo_embedding", settings.preview_cache_entries, 64 * 2**20, ttl,
            lambda embedding: 8 * len(embedding.values) + 256, registry,
        ).start_sweeper()  # fmt: skip
        # The try-on model version of the latest preview: part of every cache key, so a new
        # model never serves the old one's previews.
        self.tryon_version = ""
        # Previews being made, keyed like the cache, and photos being embedded, by content
        # hash: identical requests in flight share one, and a late one is cached when done.
        self._making: _InFlight[tuple[str, str, str], common_pb2.Preview] = _InFlight(
            self.pool, self._made
        )
        self._embedding: _InFlight[str, _PhotoEmbedding] = _InFlight(
            self.embedders, self.photo_cache.put
        )
        self.photos = Counter(
            "drape_gateway_photos",
            "Shopper photos sent with recommendation requests, by whether they steered the ranking.",
            ["outcome"],
            registry=registry,
        )
        self.previews = Counter(
            "drape_previews",
            "Try-on previews attached to recommendations, by status and experiment variant.",
            ["status", "experiment", "variant"],
            registry=registry,
        )
        self.unsupported = Counter(
            "drape_previews_unsupported",
            "Previews not shown: because their quality was below the threshold (by the measure "
            "that fell shortest), or because of the shopper's pose (facing_sideways, "
            "torso_occluded).",
            ["measure"],
            registry=registry,
        )
        self.previews_shared = Counter(
            "drape_previews_shared",
            "Previews a request took from an identical one already being made (single flight).",
            registry=registry,
        )
        self.exposures = ExposureLog(events, settings, registry)
        # Storefront API keys, where configured (every call but health then needs one).
        self.keys = (
            ApiKeys(Path(settings.api_keys_path), settings.api_keys_reload_s, registry)
            if settings.api_keys_path
            else None
        )
        self.preview_seconds = Histogram(
            "drape_preview_seconds", "Time to make one preview (tryon + splice), by status.",
            ["status"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10), registry=registry,
        )  # fmt: skip

    def _authorize(self, context: grpc.ServicerContext, scope: str) -> None:
        if self.keys is not None:
            self.keys.check(context, scope)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.embedders.shutdown(wait=False, cancel_futures=True)
        self.exposures.close()
        self.preview_cache.close()
        self.working_photos.close()
        self.photo_cache.close()

    def _check_photo(self, photo: common_pb2.Image, field: str) -> None:
        if len(photo.data) > self.max_photo_bytes:
            raise ResourceExhausted(
                f"{field} is {len(photo.data) / 2**20:.1f} MiB; the limit is "
                f"{self.max_photo_bytes / 2**20:.0f} MiB: downscale it before sending"
            )

    def Recommend(
        self, request: gateway_pb2.GatewayServiceRecommendRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.GatewayServiceRecommendResponse:
        started = time.perf_counter()
        schedule = self._schedule()
        self._authorize(context, "recommend")
        self._check_photo(request.photo, "photo")
        if request.preview_limit < 0:
            raise InvalidArgument("preview_limit", "must not be negative")
        if not request.user_id:
            raise InvalidArgument("user_id", "is required (use a stable anonymous id for guests)")
        photo_hash = hashlib.sha256(request.photo.data).hexdigest() if request.photo.data else ""
        working = self._working_photo(request.photo, photo_hash)
        photo_use, photo_embedding = self._photo_embedding(
            request.user_id, working, photo_hash, schedule.photo_by
        )
        ranked = self.recommend.Recommend(
            recommend_pb2.RecommendRequest(
                user_id=request.user_id,
                k=request.k,
                context=request.context,
                photo_embedding=photo_embedding,
            )
        )
        response = gateway_pb2.GatewayServiceRecommendResponse(
            recommendation_id=ranked.recommendation_id,
            assignment=ranked.assignment,
            items=ranked.items,
            model_version=ranked.model_version,
            photo=photo_use,
            assignments=ranked.assignments,
        )
        self._attach_previews(request, response, working, photo_hash, schedule.reply_by)
        self.exposures.offer(exposure(request.user_id, response, time.perf_counter() - started))
        return response

    def _working_photo(self, photo: common_pb2.Image, photo_hash: str) -> common_pb2.Image:
        """The photo every downstream call gets: itself when it is within the working size,
        else reduced to it once (a JPEG at a reduced scale from the start) and re-encoded.
        Decoding here also refuses a bad photo before anything is asked of the backends."""
        if not photo.data:
            return photo

        def reduce() -> common_pb2.Image:
            with self.photo_decoders:
                decoded = decode_field("photo", photo, self.photo_limits)
                if not decoded.reduced:
                    return photo
                return common_pb2.Image(
                    data=encode_jpeg(decoded.pixels, quality=95), media_type="image/jpeg",
                    width=decoded.width, height=decoded.height,
                )  # fmt: skip

        return self.working_photos.get_or_compute(photo_hash, reduce)[0]

    def _photo_embedding(
        self, user_id: str, photo: common_pb2.Image, photo_hash: str, by: float
    ) -> tuple[gateway_pb2.PhotoUse | None, list[float]]:
        """The garment worn in the photo, embedded by the features service (cached by the
        photo's content hash; one call for identical photos in flight). A bad photo is the
        caller's error; a person the photo cannot be used for, the features service being
        down, or its answer not ready ``by`` (time.monotonic()), only means ranking without
        it. An answer that comes late is cached for the next call with the photo."""
        if not photo.data:
            return None, []
        cached = self.photo_cache.get(photo_hash)
        if cached is None:
            future, _ = self._embedding.start(photo_hash, lambda: self._embed(user_id, photo))
            waited = max(by - time.monotonic(), 0.0)
            try:
                cached = future.result(timeout=waited)
            except TimeoutError:
                self.photos.labels("late").inc()
                return gateway_pb2.PhotoUse(used=False, reason=(
                    f"the photo's analysis was not ready within {waited * 1000:.0f} ms (its share "
                    "of the request's deadline): ranked without it; it is kept for the next call"
                )), []  # fmt: skip
            except grpc.RpcError as exc:
                if exc.code() in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                ):
                    raise
                self.photos.labels("features_unavailable").inc()
                return gateway_pb2.PhotoUse(
                    used=False, reason=f"the features service is unavailable ({exc.code().name})"
                ), []
        self.photos.labels("used" if cached.use.used else "not_usable").inc()
        return cached.use, list(cached.values)

    def _embed(self, user_id: str, photo: common_pb2.Image) -> _PhotoEmbedding:
        reply = self.features.EmbedUser(features_pb2.EmbedUserRequest(user_id=user_id, photo=photo))
        embedding = reply.photo_embedding
        if embedding.values:
            use = gateway_pb2.PhotoUse(used=True, model_version=embedding.model_version)
        else:
            use = gateway_pb2.PhotoUse(used=False, reason=reply.analysis.reason)
        return _PhotoEmbedding(use, tuple(embedding.values))

    def _attach_previews(
        self,
        request: gateway_pb2.GatewayServiceRecommendRequest,
        response: gateway_pb2.GatewayServiceRecommendResponse,
        working: common_pb2.Image,
        photo_hash: str,
        reply_by: float,
    ) -> None:
        assignment = response.assignment
        items = response.items[: min(request.preview_limit or MAX_PREVIEWS, MAX_PREVIEWS)]
        skip = ""
        if not request.previews:
            skip = "previews were not requested"
        elif not assignment.previews_enabled:
            skip = f"variant {assignment.variant!r} does not show previews"
        elif not request.photo.data:
            skip = "no photo was sent"
        if skip:
            for item in items:
                item.preview.CopyFrom(
                    common_pb2.Preview(status=common_pb2.PREVIEW_STATUS_SKIPPED, reason=skip)
                )
        else:
            photos = _PreviewPhotos(working, request.photo if request.full_size_previews else working,
                                    photo_hash + ("/full" if request.full_size_previews else ""))  # fmt: skip
            self._previews(photos, items, reply_by)
            threshold = request.min_preview_quality or self.settings.min_preview_quality
            for item in items:
                self._gate(item.preview, threshold)
            self._deliver([item.preview for item in items], request.delivery)
            self._fit_in_reply(response, items)
        for arm in response.assignments or [assignment]:
            for item in items:
                self.previews.labels(preview_status_name(item.preview.status), arm.experiment,
                                     arm.variant).inc()  # fmt: skip

    def _previews(self, photos: _PreviewPhotos, items: list[common_pb2.RecommendedGarment],
                  deadline: float) -> None:  # fmt: skip
        """Every item's preview, from the cache or made now, all at once; whatever is not
        ready by ``deadline`` (the caller's, less a margin to send the reply) is marked
        TIMED_OUT and, if it finishes before the caller's deadline after all, cached for next
        time."""
        budget = deadline - time.monotonic()
        pending: dict[Future[common_pb2.Preview], list[common_pb2.RecommendedGarment]] = {}
        for item in items:
            garment_id = item.garment.garment_id
            key = (photos.key, garment_id, self.tryon_version)
            cached = self.preview_cache.get(key)
            if cached is not None:
                item.preview.CopyFrom(cached)
                item.preview.status = common_pb2.PREVIEW_STATUS_CACHED
                item.preview.latency_ms = 0
                continue
            if budget <= 0:
                item.preview.CopyFrom(common_pb2.Preview(status=common_pb2.PREVIEW_STATUS_TIMED_OUT,
                                      reason="the request's deadline left no time for previews"))  # fmt: skip
                continue
            pending.setdefault(self._making_of(key, photos, deadline), []).append(item)
        if not pending:
            return
        done, _ = wait(pending, timeout=max(deadline - time.monotonic(), 0))
        for future, item in ((f, i) for f, same in pending.items() for i in same):
            if future in done and future.exception() is not None:
                log.error(
                    "preview of %s failed", item.garment.garment_id, exc_info=future.exception()
                )
                item.preview.CopyFrom(common_pb2.Preview(status=common_pb2.PREVIEW_STATUS_FAILED,
                                                         reason="internal error in the gateway"))  # fmt: skip
            elif future in done:
                item.preview.CopyFrom(future.result())
            else:
                item.preview.CopyFrom(common_pb2.Preview(
                    status=common_pb2.PREVIEW_STATUS_TIMED_OUT,
                    reason=f"not ready within the request's deadline ({budget * 1000:.0f} ms for previews)",
                ))  # fmt: skip

    def _gate(self, preview: common_pb2.Preview, threshold: float) -> None:
        """A preview whose quality is below ``threshold`` is not shown: UNSUPPORTED, with what
        fell short and what the shopper can do about it. Cached previews keep their image, so
        a storefront with a lower threshold can still show them."""
        quality = preview.quality
        if not preview.image.data or not preview.HasField("quality") or quality.score >= threshold:
            return
        weakest = quality.short[0] if quality.short else "score"
        self.unsupported.labels(weakest).inc()
        preview.status = common_pb2.PREVIEW_STATUS_UNSUPPORTED
        preview.ClearField("image")
        preview.reason = (
            f"the garment would not look right on this photo (quality {quality.score:.2f}, "
            f"below {threshold:.2f}; weakest: {weakest.replace('_', ' ')})"
            + (f": {quality.advice}" if quality.advice else "")
        )

    def _deliver(self, previews: list[common_pb2.Preview], delivery: int) -> None:
        """URL delivery: each image goes to the preview store and the reply carries a signed
        URL to it (its size and type stay; its bytes go). A store that cannot be written makes
        that preview UNAVAILABLE, never the call fail."""
        if delivery == common_pb2.PREVIEW_DELIVERY_UNSPECIFIED:
            by_url = self.settings.preview_delivery == "url" and self.preview_store is not None
            delivery = (common_pb2.PREVIEW_DELIVERY_URL if by_url
                        else common_pb2.PREVIEW_DELIVERY_INLINE)  # fmt: skip
        if delivery != common_pb2.PREVIEW_DELIVERY_URL:
            return
        for preview in previews:
            if not preview.image.data:
                continue
            if self.preview_store is None or self.signer is None:
                raise InvalidArgument("delivery", "this gateway has no preview store: ask INLINE")
            try:
                digest = self.preview_store.put(preview.image.data)
            except (OSError, StorageError) as exc:
                log.error("preview store: %s", exc)
                preview.CopyFrom(common_pb2.Preview(
                    status=common_pb2.PREVIEW_STATUS_UNAVAILABLE, model_version=preview.model_version,
                    reason="the preview store is unavailable; retry later, or ask for INLINE delivery",
                ))  # fmt: skip
                continue
            signed = self.signer.sign(digest)
            preview.url = signed.url
            preview.url_expires_at.FromSeconds(signed.expires)
            preview.image.ClearField("data")

    def _fit_in_reply(self, response: gateway_pb2.GatewayServiceRecommendResponse,
                      items: list[common_pb2.RecommendedGarment]) -> None:  # fmt: skip
        """Previews are full-size photos: the best-ranked keep their image while the reply
        stays within the message size limit; the rest say why they have none."""
        limit = self.settings.server.max_message_bytes - 64 * 1024
        size = response.ByteSize() - sum(item.preview.image.ByteSize() for item in items)
        for item in items:
            size += item.preview.image.ByteSize()
            if size > limit and item.preview.image.data:
                size -= item.preview.image.ByteSize()
                item.preview.CopyFrom(common_pb2.Preview(
                    status=common_pb2.PREVIEW_STATUS_FAILED, model_version=item.preview.model_version,
                    reason=f"the reply would exceed {self.settings.server.max_message_mb} MiB with this "
                           "preview: ask for fewer (preview_limit) or send a smaller photo",
                ))  # fmt: skip

    def _time_left(self) -> float:
        """Seconds to the caller's deadline, or preview_timeout_s when it set none."""
        remaining = scopes.remaining()
        return self.settings.preview_timeout_s if remaining is None else remaining

    def _schedule(self) -> _Schedule:
        """The call's schedule, from the time its caller gave it (the reply margin is a share
        of all of it, so a call whose ranking took long still keeps time to reply)."""
        now, time_left = time.monotonic(), self._time_left()
        return _Schedule(
            photo_by=now + self.settings.photo_embedding_share * time_left,
            reply_by=now + time_left - self._reply_margin(time_left),
        )

    def _reply_margin(self, time_left: float) -> float:
        """Seconds kept back from the caller's deadline to build and send the reply: a floor,
        or a share of the time left when that is more (several full-size previews take a
        while to copy and serialise on a busy machine)."""
        floor = self.settings.preview_reply_margin_ms / 1000
        return max(floor, self.settings.preview_reply_margin_share * time_left)

    def _making_of(self, key: tuple[str, str, str], photos: _PreviewPhotos,
                   deadline: float) -> Future[common_pb2.Preview]:  # fmt: skip
        """The preview for ``key`` being made: the one already in flight for an identical
        request (single flight, keyed like the cache), or a new one."""
        future, shared = self._making.start(
            key, lambda: self._preview(photos, {"garment_id": key[1]}, deadline, strict=False)
        )
        if shared:
            self.previews_shared.inc()
        return future

    def _made(self, key: tuple[str, str, str], preview: common_pb2.Preview) -> None:
        if preview.status == common_pb2.PREVIEW_STATUS_OK:
            self.tryon_version = preview.model_version
            self.preview_cache.put((*key[:2], preview.model_version), preview)

    def TryOn(
        self, request: gateway_pb2.TryOnRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.TryOnResponse:
        self._authorize(context, "tryon")
        self._check_photo(request.photo, "photo")
        if not request.photo.data:
            raise InvalidArgument("photo", "is required")
        which = request.WhichOneof("garment")
        if which is None:
            raise InvalidArgument("garment", "send a garment_id or a garment_image")
        garment = {which: getattr(request, which)}
        deadline = time.monotonic() + self._time_left()
        photo_hash = hashlib.sha256(request.photo.data).hexdigest()
        working = self._working_photo(request.photo, photo_hash)
        photos = _PreviewPhotos(working, request.photo if request.full_size else working,
                                photo_hash)  # fmt: skip
        preview = self._preview(photos, garment, deadline, strict=True)
        if preview.status == common_pb2.PREVIEW_STATUS_OK:
            self.tryon_version = preview.model_version
        self._gate(preview, request.min_preview_quality or self.settings.min_preview_quality)
        self._deliver([preview], request.delivery)
        return gateway_pb2.TryOnResponse(request_id=request.request_id, preview=preview)

    def _preview(self, photos: _PreviewPhotos, garment: dict[str, object], deadline: float,
                 strict: bool) -> common_pb2.Preview:  # fmt: skip
        """One preview: the GAN on Triton (tryon), then back into the photo (splice), done
        by ``deadline`` (time.monotonic()). The try-on backend being down or too slow is a
        preview status, not a failed call; so is bad input, unless ``strict`` (TryOn, where
        the garment is the caller's own choice)."""
        started = time.perf_counter()

        def left() -> float:
            return max(deadline - time.monotonic(), 0.001)

        try:
            generated = self.tryon.Generate(
                tryon_pb2.GenerateRequest(photo=photos.working, **garment), timeout=left()
            )
            if not generated.rendered.data:
                # A person the try-on cannot dress (turned away, torso behind the arms) is
                # told what to change; a photo with no usable person fails.
                pose = POSE_UNSUPPORTED.get(generated.analysis.status)
                if pose is not None:
                    self.unsupported.labels(pose).inc()
                status = (common_pb2.PREVIEW_STATUS_UNSUPPORTED if pose is not None
                          else common_pb2.PREVIEW_STATUS_FAILED)  # fmt: skip
                preview = common_pb2.Preview(status=status, reason=generated.analysis.reason,
                                             model_version=generated.model_version)  # fmt: skip
            else:
                composite = self.splice.Compose(
                    splice_pb2.ComposeRequest(
                        photo=photos.composite,
                        rendered=generated.rendered,
                        garment_mask=generated.garment_mask,
                        crop=generated.crop,
                        face=generated.analysis.face_box,
                    ),
                    timeout=left(),
                )
                preview = common_pb2.Preview(
                    status=common_pb2.PREVIEW_STATUS_OK,
                    image=composite.composite,
                    model_version=generated.model_version,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    quality=generated.quality if generated.HasField("quality") else None,
                )
                if generated.HasField("quality"):
                    preview.quality.face_ssim = composite.face_ssim
                    preview.quality.background_difference = composite.background_difference
        except grpc.RpcError as exc:
            code = exc.code()
            if strict and code in _INPUT_ERRORS:
                raise
            reason = f"try-on backend: {code.name}: {exc.details()}"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                status = common_pb2.PREVIEW_STATUS_TIMED_OUT
                reason = f"not ready within the request's deadline ({reason})"
            elif code in _INPUT_ERRORS:
                status = common_pb2.PREVIEW_STATUS_FAILED
            else:
                status = common_pb2.PREVIEW_STATUS_UNAVAILABLE
            preview = common_pb2.Preview(status=status, reason=reason)
        except DrapeError as exc:  # no time left to make the call at all
            preview = common_pb2.Preview(
                status=common_pb2.PREVIEW_STATUS_TIMED_OUT,
                reason=f"not ready within the request's deadline ({exc})",
            )
        if self._store_as_made and preview.status == common_pb2.PREVIEW_STATUS_OK:
            self._store(preview)
        self.preview_seconds.labels(preview_status_name(preview.status)).observe(
            time.perf_counter() - started
        )
        return preview

    def _store(self, preview: common_pb2.Preview) -> None:
        """The preview in the preview store ahead of its reply, which then only signs its URL
        (content-addressed: storing it again is a hash and a lookup). A store that cannot be
        written now is tried again when the reply is sent."""
        try:
            self.preview_store.put(preview.image.data)  # type: ignore[union-attr]
        except (OSError, StorageError) as exc:
            log.warning("preview store, ahead of the reply: %s", exc)

    def Track(
        self, request: gateway_pb2.TrackRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.TrackResponse:
        self._authorize(context, "track")
        recorded = self.events.Record(
            events_pb2.RecordRequest(events=request.events, allow_partial=request.allow_partial)
        )
        return gateway_pb2.TrackResponse(
            stored=recorded.stored,
            duplicates=recorded.duplicates,
            rejected=recorded.rejected,
            results=recorded.results,
        )


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.gateway
    recommend_channel = connect(cfg.recommend_address, cfg.server, cfg.recommend_connections)
    events_channel = connect(cfg.events_address, cfg.server)
    features_channel = connect(cfg.features_address, cfg.server)
    tryon_channel = connect(cfg.tryon_address, cfg.server)
    splice_channel = connect(cfg.splice_address, cfg.server)
    registry = CollectorRegistry()
    servicer = GatewayServicer(
        recommend_pb2_grpc.RecommendServiceStub(recommend_channel),
        events_pb2_grpc.EventsServiceStub(events_channel),
        features_pb2_grpc.FeaturesServiceStub(features_channel),
        tryon_pb2_grpc.TryOnServiceStub(tryon_channel),
        splice_pb2_grpc.SpliceServiceStub(splice_channel),
        cfg,
        registry,
        PreviewStore.from_config(config),
        UrlSigner.from_config(config),
    )

    def stop() -> None:
        servicer.close()
        recommend_channel.close()
        events_channel.close()
        features_channel.close()
        tryon_channel.close()
        splice_channel.close()

    return ServiceSpec(
        name="gateway",
        grpc_services=[gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name],
        register=lambda server: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=stop,
    )
