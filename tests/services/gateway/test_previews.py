"""The gateway's preview logic on its own, against scripted backends: every per-item outcome,
the variant's choice, the cache and its model-version key, the deadline."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from drape.models.images import encode_png
from drape.services.gateway.service import GatewayServicer
from drape.services.runtime import InvalidArgument
from drape.services.runtime import scope as scopes
from drape.services.runtime.config import GatewayConfig
from drape.v1 import (
    common_pb2,
    events_pb2,
    features_pb2,
    gateway_pb2,
    recommend_pb2,
    splice_pb2,
    tryon_pb2,
)
from tests.conftest import wait_until


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Recommend:
    def __init__(self, garments: list[str], previews: bool = True) -> None:
        self.garments, self.previews = garments, previews

    def Recommend(self, request, timeout=None):
        arm = common_pb2.ExperimentAssignment(
            experiment="exp", variant="on" if self.previews else "off",
            previews_enabled=self.previews, version="v1", strategy="popularity",
        )  # fmt: skip
        return recommend_pb2.RecommendResponse(
            recommendation_id=f"r-{request.user_id}-{time.monotonic_ns()}",
            assignment=arm,
            assignments=[arm],
            model_version="pop-1",
            items=[
                common_pb2.RecommendedGarment(garment=common_pb2.Garment(garment_id=g), rank=i + 1)
                for i, g in enumerate(self.garments[: request.k])
            ],
        )


class Features:
    def EmbedUser(self, request, timeout=None):
        return features_pb2.EmbedUserResponse(
            photo_embedding=features_pb2.Embedding(values=[1.0, 0.0], model_version="enc-1")
        )


class Photos:
    """Features that records the photos it is sent."""

    def __init__(self) -> None:
        self.photos: list[common_pb2.Image] = []

    def EmbedUser(self, request, timeout=None):
        self.photos.append(request.photo)
        return Features().EmbedUser(request, timeout)


class SlowFeatures:
    """Features that takes ``seconds`` per photo and counts its calls."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    def EmbedUser(self, request, timeout=None):
        self.calls += 1
        time.sleep(self.seconds)
        return Features().EmbedUser(request, timeout)


class SlowRecommend(Recommend):
    def __init__(self, garments: list[str], seconds: float) -> None:
        super().__init__(garments)
        self.seconds = seconds

    def Recommend(self, request, timeout=None):
        time.sleep(self.seconds)
        return super().Recommend(request, timeout)


class TryOn:
    """``slow-*`` garments take 2 s, ``busy-*`` 0.3 s; ``down-*`` find Triton down; ``gone-*``
    do not exist; ``sideways-*`` and ``nobody-*`` find a person turned away and no person."""

    def __init__(self) -> None:
        self.version = "tryon_gan-a"
        self.calls: list[str] = []
        self.photos: list[common_pb2.Image] = []
        self.lock = threading.Lock()

    def Generate(self, request, timeout=None):
        garment = request.garment_id
        with self.lock:
            self.calls.append(garment)
            self.photos.append(request.photo)
        if garment.startswith("slow"):
            time.sleep(min(2.0, timeout or 2.0))
            raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if garment.startswith("busy"):
            time.sleep(0.3)
        if garment.startswith("down"):
            raise RpcError(grpc.StatusCode.UNAVAILABLE, "the try-on model is unavailable")
        if garment.startswith("gone"):
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"garment {garment!r} is not in the catalog")
        for prefix, status, reason in (
            ("sideways", features_pb2.PERSON_STATUS_FACING_SIDEWAYS,
             "you are turned 60 degrees from the camera; face the camera"),
            ("nobody", features_pb2.PERSON_STATUS_NO_PERSON, "no person found in the photo"),
        ):  # fmt: skip
            if garment.startswith(prefix):  # the photo cannot be dressed: no rendering
                analysis = features_pb2.PersonAnalysis(status=status, reason=reason)
                return tryon_pb2.GenerateResponse(analysis=analysis, model_version=self.version)
        image = common_pb2.Image(data=f"{garment}@{self.version}".encode())
        reply = tryon_pb2.GenerateResponse(
            rendered=image, garment_mask=image, model_version=self.version
        )
        if garment.startswith("poor"):  # a blob on the photo: little of the body covered
            reply.quality.CopyFrom(common_pb2.PreviewQuality(
                score=0.1, coverage=0.33, short=["coverage"],
                advice="stand facing the camera with your upper body in the photo",
            ))  # fmt: skip
        elif garment.startswith("fine"):
            reply.quality.CopyFrom(common_pb2.PreviewQuality(score=0.9, coverage=0.7))
        return reply


class Splice:
    def __init__(self) -> None:
        self.photos: list[common_pb2.Image] = []

    def Compose(self, request, timeout=None):
        self.photos.append(request.photo)
        return splice_pb2.ComposeResponse(composite=common_pb2.Image(data=request.rendered.data))


class Events:
    """The events service's exposure log: what the gateway sent, or a failure (after
    ``delay_s``)."""

    def __init__(self, fail: grpc.StatusCode | None = None, delay_s: float = 0.0) -> None:
        self.fail = fail
        self.delay_s = delay_s
        self.exposures: list[events_pb2.Exposure] = []
        self.calls = 0

    def LogExposures(self, request, timeout=None):
        self.calls += 1
        time.sleep(self.delay_s)
        if self.fail is not None:
            raise RpcError(self.fail, "the events service is down")
        self.exposures.extend(request.exposures)
        return events_pb2.LogExposuresResponse(stored=len(request.exposures))


def _gateway(recommend: Recommend, tryon: TryOn, features=None, splice=None, events=None,
             **settings) -> GatewayServicer:  # fmt: skip
    config = GatewayConfig(**{"preview_reply_margin_ms": 50, **settings})
    return GatewayServicer(
        recommend, events or Events(), features or Features(), tryon, splice or Splice(), config,
        CollectorRegistry(),
    )  # fmt: skip


def _photo(shade: int = 90) -> common_pb2.Image:
    return common_pb2.Image(data=encode_png(np.full((64, 48, 3), shade, np.uint8)))


def _ask(gateway: GatewayServicer, timeout: float = 5.0, k: int = 4, previews: bool = True,
         photo: common_pb2.Image | None = None, full_size: bool = False):  # fmt: skip
    request = gateway_pb2.GatewayServiceRecommendRequest(
        user_id="u", k=k, photo=photo or _photo(), previews=previews, full_size_previews=full_size
    )
    with scopes.request_scope("req", timeout=timeout):
        return gateway.Recommend(request, None)


def _hash(photo: common_pb2.Image) -> str:
    return hashlib.sha256(photo.data).hexdigest()


def _at_once(gateway: GatewayServicer, shoppers: int, k: int) -> list:
    """``shoppers`` identical calls released together (5 s deadline each): their replies."""
    replies, start = [], threading.Barrier(shoppers)

    def shopper() -> None:
        start.wait()
        replies.append(_ask(gateway, timeout=5.0, k=k))

    threads = [threading.Thread(target=shopper) for _ in range(shoppers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return replies


def _statuses(reply) -> list[str]:
    return [
        common_pb2.PreviewStatus.Name(i.preview.status).removeprefix("PREVIEW_STATUS_")
        for i in reply.items
    ]


def test_every_item_gets_its_own_outcome_within_the_deadline():
    tryon = TryOn()
    gateway = _gateway(Recommend(["ok-1", "slow-1", "down-1", "gone-1"]), tryon)
    try:
        started = time.monotonic()
        reply = _ask(gateway, timeout=0.8)
        assert time.monotonic() - started < 0.8, "answered before the caller's deadline"
        assert _statuses(reply) == ["OK", "TIMED_OUT", "UNAVAILABLE", "FAILED"]
        ok, slow, down, gone = (i.preview for i in reply.items)
        assert ok.image.data == b"ok-1@tryon_gan-a" and ok.model_version == "tryon_gan-a"
        assert "deadline" in slow.reason and not slow.image.data
        assert "UNAVAILABLE" in down.reason and "NOT_FOUND" in gone.reason
        assert reply.photo.used and len(reply.items) == 4
    finally:
        gateway.close()


def test_identical_previews_in_flight_are_made_once():
    tryon = TryOn()
    garments = ["busy-1", "busy-2", "busy-3"]
    gateway = _gateway(Recommend(garments), tryon)
    try:
        replies = _at_once(gateway, 8, k=3)
        assert len(replies) == 8
        assert sorted(tryon.calls) == garments, "each preview made once for the 8 requests"
        for reply in replies:
            assert set(_statuses(reply)) <= {"OK", "CACHED"}
            assert [i.preview.image.data for i in reply.items] == [
                f"{g}@tryon_gan-a".encode() for g in garments
            ]
        shared = gateway.previews_shared._value.get()
        cached = sum(_statuses(r).count("CACHED") for r in replies)
        assert shared + cached == 7 * len(garments)
    finally:
        gateway.close()


def _size(image: common_pb2.Image) -> tuple[int, int]:
    return Image.open(io.BytesIO(image.data)).size


def test_a_large_photo_is_reduced_once_for_every_backend_and_full_size_only_on_request():
    ys, xs = np.mgrid[0:1500, 0:2000]
    big = np.stack([xs % 256, ys % 256, (xs // 8) % 256], axis=-1).astype(np.uint8)
    photo = common_pb2.Image(data=encode_png(big))
    tryon, features, splice = TryOn(), Photos(), Splice()
    gateway = _gateway(Recommend(["a", "b"]), tryon, features, splice, working_megapixels=0.5)
    try:
        reply = _ask(gateway, k=2, photo=photo)
        assert _statuses(reply) == ["OK", "OK"]
        sent = [*features.photos, *tryon.photos, *splice.photos]
        assert len(sent) == 5 and len({p.data for p in sent}) == 1, "reduced once, sent to all"
        width, height = _size(sent[0])
        assert width * height <= 500_000 and abs(width / height - 4 / 3) < 0.01

        # Full size: generated on the working photo, composited into the original.
        reply = _ask(gateway, k=2, photo=photo, full_size=True)
        assert _statuses(reply) == ["OK", "OK"], "a full-size preview is not the cached small one"
        assert {_size(p) for p in tryon.photos[2:]} == {(width, height)}
        assert [p.data for p in splice.photos[2:]] == [photo.data] * 2

        # A photo within the working size goes on as it came.
        small = _photo()
        _ask(gateway, k=1, photo=small)
        assert tryon.photos[-1].data == small.data and splice.photos[-1].data == small.data
    finally:
        gateway.close()


def test_a_bad_photo_is_refused_before_any_backend_is_asked():
    tryon, features = TryOn(), Photos()
    gateway = _gateway(Recommend(["a"]), tryon, features)
    try:
        with pytest.raises(InvalidArgument, match="photo: the bytes are not a JPEG"):
            _ask(gateway, k=1, photo=common_pb2.Image(data=b"not a photo"))
        assert features.photos == [] and tryon.calls == []
    finally:
        gateway.close()


def test_previews_below_the_quality_threshold_are_not_shown_and_say_what_to_do():
    tryon = TryOn()
    gateway = _gateway(Recommend(["fine-1", "poor-1"]), tryon, min_preview_quality=0.3)
    try:
        reply = _ask(gateway, k=2)
        assert _statuses(reply) == ["OK", "UNSUPPORTED"]
        fine, poor = (item.preview for item in reply.items)
        assert fine.image.data and fine.quality.score == pytest.approx(0.9)
        assert not poor.image.data and poor.quality.score == pytest.approx(0.1)
        assert "weakest: coverage" in poor.reason and "stand facing the camera" in poor.reason
        assert gateway.unsupported.labels("coverage")._value.get() == 1

        # A storefront that accepts less sees the same previews, from the cache.
        request = gateway_pb2.GatewayServiceRecommendRequest(
            user_id="u", k=2, photo=_photo(), previews=True, min_preview_quality=0.05
        )
        with scopes.request_scope("req", timeout=5):
            lenient = gateway.Recommend(request, None)
        assert _statuses(lenient) == ["CACHED", "CACHED"] and len(tryon.calls) == 2
        assert lenient.items[1].preview.image.data == b"poor-1@tryon_gan-a"

        # TryOn is gated the same way.
        single = gateway.TryOn(
            gateway_pb2.TryOnRequest(photo=_photo(shade=40), garment_id="poor-2"), None
        )
        assert single.preview.status == common_pb2.PREVIEW_STATUS_UNSUPPORTED
    finally:
        gateway.close()


def test_a_shopper_the_fitting_cannot_dress_is_told_what_to_change():
    gateway = _gateway(Recommend(["sideways-1", "nobody-1"]), TryOn())
    try:
        reply = _ask(gateway, k=2)
        assert _statuses(reply) == ["UNSUPPORTED", "FAILED"]
        sideways, nobody = (item.preview for item in reply.items)
        assert not sideways.image.data and "face the camera" in sideways.reason
        assert nobody.reason == "no person found in the photo"
        assert gateway.unsupported.labels("facing_sideways")._value.get() == 1
    finally:
        gateway.close()


def test_the_reply_margin_grows_with_the_time_left():
    gateway = _gateway(Recommend([]), TryOn(), preview_reply_margin_ms=100,
                       preview_reply_margin_share=0.1)  # fmt: skip
    try:
        assert gateway._reply_margin(0.5) == pytest.approx(0.1)  # the floor
        assert gateway._reply_margin(4.0) == pytest.approx(0.4)  # a tenth of the time left
    finally:
        gateway.close()


def test_a_late_photo_embedding_leaves_the_ranking_without_it_and_serves_the_next_call():
    features = SlowFeatures(0.6)
    gateway = _gateway(Recommend(["ok-1", "ok-2"]), TryOn(), features=features,
                       photo_embedding_share=0.1)  # fmt: skip
    try:
        late = _ask(gateway, timeout=2.0, k=2)  # 0.2 s for the photo
        assert not late.photo.used
        assert re.search(r"not ready within \d+ ms \(its share", late.photo.reason)
        assert _statuses(late) == ["OK", "OK"], "the previews still got their time"
        assert gateway.photos.labels("late")._value.get() == 1
        assert wait_until(lambda: gateway.photo_cache.get(_hash(_photo())) is not None, 5, 0.05)
        kept = _ask(gateway, timeout=2.0, k=2)
        assert kept.photo.used and kept.photo.model_version == "enc-1"
        assert features.calls == 1, "the late answer was kept, not asked for again"
    finally:
        gateway.close()


def test_identical_photos_in_flight_are_embedded_once():
    features = SlowFeatures(0.3)
    gateway = _gateway(Recommend(["ok-1"]), TryOn(), features=features)
    try:
        replies = _at_once(gateway, 4, k=1)
        assert len(replies) == 4 and all(reply.photo.used for reply in replies)
        assert features.calls == 1
    finally:
        gateway.close()


def test_the_reply_margin_is_a_share_of_the_calls_whole_time():
    """A ranking that took half the call's time leaves the previews the rest less a tenth of
    the whole call (0.4 s), not a tenth of what was left when they began."""

    class Timed(TryOn):
        def Generate(self, request, timeout=None):
            self.timeouts.append(timeout)
            return super().Generate(request, timeout)

    tryon = Timed()
    tryon.timeouts = []
    gateway = _gateway(SlowRecommend(["ok-1"], 2.0), tryon, preview_reply_margin_ms=100,
                       preview_reply_margin_share=0.1)  # fmt: skip
    try:
        reply = _ask(gateway, timeout=4.0, k=1)
        assert _statuses(reply) == ["OK"]
        (given,) = tryon.timeouts
        assert 1.0 <= given <= 1.65, given  # 4 - 2 - 0.4 s at most, not 4 - 2 - 0.2 s
    finally:
        gateway.close()


def test_the_cache_answers_repeats_and_a_new_model_version_is_not_served_old_previews():
    tryon = TryOn()
    gateway = _gateway(Recommend(["a", "b"]), tryon)
    try:
        assert _statuses(_ask(gateway, k=2)) == ["OK", "OK"]
        again = _ask(gateway, k=2)
        assert _statuses(again) == ["CACHED", "CACHED"] and len(tryon.calls) == 2
        assert again.items[0].preview.image.data == b"a@tryon_gan-a"

        # A new generator is deployed; once the gateway has seen it, old previews are misses.
        tryon.version = "tryon_gan-b"
        gateway.TryOn(gateway_pb2.TryOnRequest(photo=_photo(shade=30), garment_id="c"), None)
        fresh = _ask(gateway, k=2)
        assert _statuses(fresh) == ["OK", "OK"]
        assert fresh.items[0].preview.image.data == b"a@tryon_gan-b"
    finally:
        gateway.close()


def test_the_cache_forgets_after_its_ttl():
    tryon = TryOn()
    gateway = _gateway(Recommend(["a"]), tryon, preview_cache_ttl_s=0.2)
    try:
        assert _statuses(_ask(gateway, k=1)) == ["OK"]
        time.sleep(0.5)
        assert len(gateway.preview_cache) == 0 and len(gateway.photo_cache) == 0
        assert _statuses(_ask(gateway, k=1)) == ["OK"] and len(tryon.calls) == 2
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("recommend", "previews", "reason"),
    [
        (Recommend(["a", "b"], previews=False), True, "variant 'off' does not show previews"),
        (Recommend(["a", "b"]), False, "previews were not requested"),
    ],
)
def test_skipped_previews_say_why_and_call_nothing(recommend, previews, reason):
    tryon = TryOn()
    gateway = _gateway(recommend, tryon)
    try:
        reply = _ask(gateway, k=2, previews=previews)
        assert _statuses(reply) == ["SKIPPED", "SKIPPED"]
        assert all(i.preview.reason == reason for i in reply.items) and not tryon.calls
    finally:
        gateway.close()


def test_no_time_left_for_previews_still_returns_the_items():
    gateway = _gateway(Recommend(["a", "b"]), TryOn(), preview_reply_margin_ms=5000)
    try:
        reply = _ask(gateway, timeout=1.0, k=2)
        assert _statuses(reply) == ["TIMED_OUT", "TIMED_OUT"]
        assert "left no time for previews" in reply.items[0].preview.reason
    finally:
        gateway.close()


def test_previews_that_would_overflow_the_reply_say_so():
    class BigSplice(Splice):
        def Compose(self, request, timeout=None):
            return splice_pb2.ComposeResponse(composite=common_pb2.Image(data=b"x" * 400_000))

    config = GatewayConfig(server={"max_message_mb": 1})
    gateway = GatewayServicer(Recommend(["a", "b", "c"]), Events(), Features(), TryOn(), BigSplice(),
                              config, CollectorRegistry())  # fmt: skip
    try:
        reply = _ask(gateway, k=3)
        assert _statuses(reply) == ["OK", "OK", "FAILED"]
        assert "would exceed 1 MiB" in reply.items[2].preview.reason
        assert reply.ByteSize() < 2**20
    finally:
        gateway.close()


def _dropped(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("drape_exposures_dropped_total", {"reason": reason}) or 0.0


def test_every_list_served_is_logged_with_what_the_shopper_saw():
    events = Events()
    gateway = _gateway(Recommend(["a", "down-b", "c"]), TryOn(), events=events)
    try:
        reply = _ask(gateway, k=3)
    finally:
        gateway.close()  # flushes the queue
    (logged,) = events.exposures
    assert logged.recommendation_id == reply.recommendation_id and logged.user_id == "u"
    assert [(i.garment_id, i.rank) for i in logged.items] == [("a", 1), ("down-b", 2), ("c", 3)]
    assert [common_pb2.PreviewStatus.Name(i.preview_status) for i in logged.items] == [
        "PREVIEW_STATUS_OK", "PREVIEW_STATUS_UNAVAILABLE", "PREVIEW_STATUS_OK"]  # fmt: skip
    assert [(a.experiment, a.variant, a.version) for a in logged.arms] == [("exp", "on", "v1")]
    assert logged.strategy == "popularity" and logged.model_version == "pop-1"
    assert logged.latency_ms > 0 and logged.served_at.seconds > 0


def test_exposure_logging_failures_never_fail_the_call_and_are_counted():
    registry = CollectorRegistry()
    events = Events(fail=grpc.StatusCode.UNAVAILABLE)
    config = GatewayConfig(exposure_attempts=2, exposure_flush_interval_s=0.01)
    gateway = GatewayServicer(Recommend(["a", "b"]), events, Features(), TryOn(), Splice(),
                              config, registry)  # fmt: skip
    try:
        replies = [_ask(gateway, k=2, previews=False) for _ in range(3)]
        assert all(len(r.items) == 2 for r in replies)
    finally:
        gateway.close()
    assert _dropped(registry, "send_failed") == 3 and events.calls >= 2


def test_a_full_queue_drops_exposures_instead_of_holding_the_call():
    """An events service that takes a second per batch and a queue of one: the calls go on,
    and what does not fit is dropped and counted (a blocked call would drop nothing)."""
    registry = CollectorRegistry()
    events = Events(delay_s=1.0)
    config = GatewayConfig(exposure_queue=1, exposure_batch=1, exposure_flush_interval_s=0.01,
                           exposure_flush_timeout_s=0)  # fmt: skip
    gateway = GatewayServicer(Recommend(["a"]), events, Features(), TryOn(), Splice(), config,
                              registry)  # fmt: skip
    try:
        for _ in range(6):
            _ask(gateway, k=1, previews=False)
        dropped = _dropped(registry, "queue_full")
    finally:
        gateway.close()
    assert dropped >= 3 and len(events.exposures) + dropped <= 6


def test_url_delivery_stores_each_preview_once_and_replies_with_a_signed_link(tmp_path):
    from urllib.parse import parse_qs, urlsplit

    from drape.services.runtime.preview_store import PreviewStore, UrlSigner, ensure_key_file

    store = PreviewStore(tmp_path / "previews")
    signer = UrlSigner(ensure_key_file(tmp_path / "keys"), "https://cdn.example", 3600)
    config = GatewayConfig(preview_reply_margin_ms=50)
    gateway = GatewayServicer(Recommend(["ok-1", "ok-2", "gone-1"]), Events(), Features(), TryOn(),
                              Splice(), config, CollectorRegistry(), store, signer)  # fmt: skip
    try:
        reply = _ask(gateway, k=3)  # the gateway's default: URL
        assert _statuses(reply) == ["OK", "OK", "FAILED"]
        for item in reply.items[:2]:
            preview = item.preview
            assert not preview.image.data
            parts = urlsplit(preview.url)
            digest = parts.path.rsplit("/", 1)[1]
            assert (
                parts.netloc == "cdn.example"
                and store.get(digest) == f"{item.garment.garment_id}@tryon_gan-a".encode()
            )
            query = parse_qs(parts.query)
            assert (
                signer.verify(digest, query["expires"][0], query["sig"][0])
                == preview.url_expires_at.seconds
            )
        assert not reply.items[2].preview.url  # nothing to link to
        again = _ask(gateway, k=3)  # from the cache: the same stored object, the same URL
        assert [i.preview.url for i in again.items] == [i.preview.url for i in reply.items]
        assert len(list((tmp_path / "previews").rglob("*.jpg"))) == 2
        inline = gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=3, photo=_photo(), previews=True,
                                                             delivery=common_pb2.PREVIEW_DELIVERY_INLINE)  # fmt: skip
        with scopes.request_scope("req", timeout=5):
            kept = gateway.Recommend(inline, None)
        assert (
            kept.items[0].preview.image.data == b"ok-1@tryon_gan-a"
            and not kept.items[0].preview.url
        )
    finally:
        gateway.close()


def test_previews_are_stored_as_they_are_made_not_one_by_one_before_the_reply(tmp_path):
    """Four previews, each upload to object storage taking 0.4 s: stored one after another
    when the reply is sent they would take 1.6 s, past the caller's 1.5 s deadline."""
    from drape.services.runtime.preview_store import PreviewStore, UrlSigner, ensure_key_file

    class SlowRemote:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def put_file(self, path, key: str) -> None:
            time.sleep(0.4)
            self.keys.append(key)

    remote = SlowRemote()
    signer = UrlSigner(ensure_key_file(tmp_path / "keys"), "https://cdn.example", 3600)
    garments = ["busy-1", "busy-2", "busy-3", "busy-4"]
    gateway = GatewayServicer(Recommend(garments), Events(), Features(), TryOn(), Splice(),
                              GatewayConfig(preview_reply_margin_ms=50), CollectorRegistry(),
                              PreviewStore(tmp_path / "previews", remote), signer)  # fmt: skip
    try:
        started = time.monotonic()
        reply = _ask(gateway, timeout=1.5, k=4)
        assert time.monotonic() - started < 1.5, "answered before the caller's deadline"
        assert _statuses(reply) == ["OK"] * 4
        assert all(item.preview.url and not item.preview.image.data for item in reply.items)
        assert len(remote.keys) == 4, "each uploaded once, not again for the reply"
    finally:
        gateway.close()


def test_a_preview_store_that_cannot_be_written_makes_previews_unavailable_not_the_call(tmp_path):
    from drape.services.runtime.preview_store import PreviewStore, UrlSigner, ensure_key_file

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    signer = UrlSigner(ensure_key_file(tmp_path / "keys"), "https://cdn.example", 3600)
    gateway = GatewayServicer(Recommend(["ok-1"]), Events(), Features(), TryOn(), Splice(),
                              GatewayConfig(preview_reply_margin_ms=50), CollectorRegistry(),
                              PreviewStore(blocked), signer)  # fmt: skip
    try:
        reply = _ask(gateway, k=1)
        preview = reply.items[0].preview
        assert _statuses(reply) == ["UNAVAILABLE"] and "preview store" in preview.reason
        assert not preview.image.data and not preview.url
        # Without a store, asking for URLs is the caller's error, said plainly.
        bare = _gateway(Recommend(["ok-1"]), TryOn())
        request = gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=1, photo=_photo(), previews=True,
                                                             delivery=common_pb2.PREVIEW_DELIVERY_URL)  # fmt: skip
        with scopes.request_scope("req", timeout=5), pytest.raises(InvalidArgument, match="INLINE"):
            bare.Recommend(request, None)
        bare.close()
    finally:
        gateway.close()
