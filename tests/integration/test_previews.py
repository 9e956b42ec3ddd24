"""Recommendations with try-on previews in one storefront call, end to end on loopback: a
real Triton (nvidia-pytriton) serving the shipped try-on checkpoint, a catalog ingested with
product shots, every service as its own process. Includes Triton dying mid-run and coming
back, and bad input."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from PIL import Image

from drape.cli.bench import peak_resident_mb
from drape.cli.bench.previews import huge_photos, on_a_busy_machine
from drape.cli.stack import Stack, ephemeral
from drape.models.images import encode_jpeg, encode_png
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.catalog import write_generated_feed
from drape.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import ingest_feed, wait_until

OK = (common_pb2.PREVIEW_STATUS_OK, common_pb2.PREVIEW_STATUS_CACHED)


def _astronaut(quality: int = 90) -> bytes:
    """The demo shopper; each JPEG quality is another photo as far as caches go."""
    from skimage import data

    return encode_jpeg(data.astronaut(), quality=quality)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("previews")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    config.gateway.max_photo_mb = 1
    feed = write_generated_feed(40, root / "feed", seed=3)
    stack = Stack(config, run_dir=root / "run")
    stack.start(timeout=120)
    try:
        ingest_feed(stack, feed, 40)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    channel = grpc.insecure_channel(stack.address("gateway"))
    yield gateway_pb2_grpc.GatewayServiceStub(channel)
    channel.close()


def _recommend(gateway, photo: bytes, k: int = 8, timeout: float = 60, previews: bool = True,
               **extra):  # fmt: skip
    return gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(
            user_id="shopper-1",
            k=k,
            photo=common_pb2.Image(data=photo),
            previews=previews,
            **{"delivery": common_pb2.PREVIEW_DELIVERY_INLINE, **extra},
        ),
        timeout=timeout,
    )


def test_eight_previews_on_the_shoppers_photo_then_from_the_cache(gateway):
    photo = _astronaut()
    reply = _recommend(gateway, photo)
    assert len(reply.items) == 8
    for item in reply.items:
        preview = item.preview
        assert preview.status == common_pb2.PREVIEW_STATUS_OK, preview.reason
        image = Image.open(io.BytesIO(preview.image.data))
        assert image.size == (512, 512), "the preview keeps the photo's size"
        assert preview.model_version.startswith("tryon_gan-") and preview.latency_ms > 0
    # Different garments give different previews.
    assert len({item.preview.image.data for item in reply.items}) == 8

    again = _recommend(gateway, photo)
    assert [i.garment.garment_id for i in again.items] == [
        i.garment.garment_id for i in reply.items
    ]
    for first, second in zip(reply.items, again.items, strict=True):
        assert second.preview.status == common_pb2.PREVIEW_STATUS_CACHED
        assert second.preview.image.data == first.preview.image.data
        assert second.preview.latency_ms == 0

    # preview_limit: only the top 3 get one.
    limited = _recommend(gateway, photo, preview_limit=3)
    assert [i.preview.status for i in limited.items[:3]] == [common_pb2.PREVIEW_STATUS_CACHED] * 3
    assert all(i.preview.status == 0 for i in limited.items[3:])


def test_a_photo_without_a_person_still_gets_recommendations(gateway):
    from skimage import data

    reply = _recommend(gateway, encode_jpeg(data.chelsea()), k=4)
    assert len(reply.items) == 4
    for item in reply.items:
        assert item.preview.status == common_pb2.PREVIEW_STATUS_FAILED
        assert "no person" in item.preview.reason and not item.preview.image.data


def test_a_deadline_too_short_for_previews_returns_the_items_without_them(gateway):
    photo = _astronaut(quality=80)
    # The photo's embedding is now cached; its previews are not.
    assert len(_recommend(gateway, photo, previews=False).items) == 8
    started = time.monotonic()
    reply = _recommend(gateway, photo, timeout=0.6)
    assert time.monotonic() - started < 0.6
    assert len(reply.items) == 8
    statuses = {item.preview.status for item in reply.items}
    assert common_pb2.PREVIEW_STATUS_TIMED_OUT in statuses
    for item in reply.items:
        if item.preview.status == common_pb2.PREVIEW_STATUS_TIMED_OUT:
            assert "deadline" in item.preview.reason and not item.preview.image.data

    # A deadline too short for anything: the caller gets DEADLINE_EXCEEDED, nothing breaks.
    with pytest.raises(grpc.RpcError) as err:
        _recommend(gateway, photo, timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(_recommend(gateway, _astronaut(), k=2).items) == 2


def test_bad_input(gateway):
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    big = encode_png(noise)
    assert len(big) > 2**20
    with pytest.raises(grpc.RpcError) as err:
        _recommend(gateway, big)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit is 1 MiB" in err.value.details() and "downscale" in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        gateway.TryOn(
            gateway_pb2.TryOnRequest(
                user_id="u", photo=common_pb2.Image(data=_astronaut()), garment_id="no-such"
            ),
            timeout=30,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no-such" in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        _recommend(gateway, b"\xff\xd8 truncated jpeg")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_photos_are_never_logged(stack: Stack, gateway):
    photo = _astronaut()
    _recommend(gateway, photo, k=2)
    logs = {p.name: p.read_bytes() for p in stack.run_dir.glob("*.log")}
    assert {"gateway.log", "tryon.log", "splice.log"} <= set(logs)
    middle = photo[len(photo) // 2 : len(photo) // 2 + 24]
    for name, text in logs.items():
        assert middle not in text and base64.b64encode(middle) not in text, name


def test_triton_down_then_back_previews_recover_without_restarting_services(stack: Stack, gateway):
    pids = {name: e.pid for name, e in stack.endpoints.items() if name != "triton"}
    stack.kill("triton")

    photo = _astronaut(quality=70)  # not in any cache
    started = time.monotonic()
    reply = _recommend(gateway, photo, k=4, timeout=10)
    assert time.monotonic() - started < 10
    assert len(reply.items) == 4, "recommendations are served while Triton is down"
    for item in reply.items:
        assert item.preview.status == common_pb2.PREVIEW_STATUS_UNAVAILABLE, item.preview.reason
        assert "unavailable" in item.preview.reason.lower()

    stack.restart("triton", timeout=120)

    def recovered() -> bool:
        reply = _recommend(gateway, photo, k=4, timeout=30)
        return all(item.preview.status in OK for item in reply.items)

    assert wait_until(recovered, timeout=60, interval=1.0)
    assert {name: stack.endpoints[name].pid for name in pids} == pids, "no service restarted"


def test_the_preview_cache_is_bounded_by_its_config():
    config = DrapeConfig()
    assert config.gateway.preview_cache_ttl_s > 0 and config.gateway.preview_cache_mb > 0
    with pytest.raises(ValueError, match="preview_cache_ttl_s"):
        DrapeConfig.model_validate({"gateway": {"preview_cache_ttl_s": 0}})


# Peak resident memory of each service of the previews path, whatever the photos (see
# docs/architecture.md: photos are reduced to the working size once, in the gateway).
MEMORY_BOUND_MB = {"gateway": 800, "features": 1200, "tryon": 1500, "splice": 1300}


def test_several_huge_photos_at_once_stay_within_the_memory_bound(stack: Stack, gateway):
    from concurrent.futures import ThreadPoolExecutor

    photos = huge_photos(4)
    with ThreadPoolExecutor(len(photos)) as pool:
        replies = list(pool.map(lambda p: _recommend(gateway, p, k=2, timeout=120), photos))
    working = stack.config.gateway.working_megapixels * 1_000_000
    for reply in replies:
        assert [item.preview.status for item in reply.items] == [common_pb2.PREVIEW_STATUS_OK] * 2
        for item in reply.items:
            width, height = Image.open(io.BytesIO(item.preview.image.data)).size
            assert width == height and width * height <= working, "made at the working size"
    peaks = {name: peak_resident_mb(stack.endpoints[name].pid) for name in MEMORY_BOUND_MB}
    print("peak resident MB:", {name: round(mb) for name, mb in peaks.items()})
    for name, bound in MEMORY_BOUND_MB.items():
        assert peaks[name] < bound, f"{name} peaked at {peaks[name]:.0f} MB"


def test_previews_never_fail_whole_calls_on_a_busy_machine(gateway):
    """Sixteen storefront calls at once, each with previews and a 5 s deadline, while two
    processes keep every core busy: some previews may time out, no call may fail."""
    photos = [_astronaut(quality=q) for q in range(60, 76)]  # 16 different photos
    results = on_a_busy_machine(lambda p: _recommend(gateway, p, k=4, timeout=5), photos, 2)
    failed = [(reply, round(seconds, 2)) for reply, seconds in results
              if isinstance(reply, grpc.RpcError)]  # fmt: skip
    assert not failed, failed
    for reply, _ in results:
        assert len(reply.items) == 4
        assert all(item.preview.status != common_pb2.PREVIEW_STATUS_UNSPECIFIED
                   for item in reply.items)  # fmt: skip
