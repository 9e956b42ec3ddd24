"""The whole stack on ephemeral loopback ports, called through the generated stubs
and through grpcurl (an independent client using server reflection)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drape.cli.stack import Stack
from drape.synthetic.catalog import generate_catalog
from drape.v1 import (
    common_pb2,
    events_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
)
from tests.conftest import wait_until

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def _events(
    user: str, garments: list[str], type_: int = events_pb2.EVENT_TYPE_PURCHASE
) -> list[events_pb2.Event]:
    return [
        events_pb2.Event(event_id=uuid.uuid4().hex, type=type_, user_id=user, garment_id=g)
        for g in garments
    ]


@pytest.fixture(scope="module")
def gateway(running_stack: Stack):
    channel = grpc.insecure_channel(running_stack.address("gateway"))
    yield gateway_pb2_grpc.GatewayServiceStub(channel)
    channel.close()


def test_every_service_reports_serving(running_stack: Stack):
    import tritonclient.grpc as triton_grpc

    triton = triton_grpc.InferenceServerClient(running_stack.address("triton"))
    try:
        assert triton.is_server_ready() and triton.is_model_ready("drape_encoder")
    finally:
        triton.close()
    for name, endpoint in running_stack.endpoints.items():
        if name == "triton":
            continue
        with grpc.insecure_channel(endpoint.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


def test_track_then_recommend_reflects_popularity_and_filters_purchases(
    running_stack: Stack, gateway
):
    # Many shoppers buy g000007 and g000011: they become the most popular garments.
    events = []
    for i in range(30):
        events += _events(f"shopper-{i}", ["g000007", "g000011"])
    events += _events("shopper-0", ["g000011"] * 5, events_pb2.EVENT_TYPE_VIEW)
    tracked = gateway.Track(gateway_pb2.TrackRequest(events=events), timeout=10)
    assert tracked.stored == len(events) and tracked.duplicates == 0

    def top(user: str) -> list[str]:
        reply = gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=5), timeout=5
        )
        return [item.garment.garment_id for item in reply.items]

    # The gateway spreads calls over its connections, and so over recommend's worker
    # processes, which refresh on their own timers: wait until every answer agrees.
    assert wait_until(
        lambda: all(top("newcomer")[:2] == ["g000011", "g000007"] for _ in range(8)), timeout=15
    )
    # shopper-0 already bought both: they are filtered out of their own list.
    assert all(not {"g000007", "g000011"} & set(top("shopper-0")) for _ in range(8))


def test_recommend_response_is_complete(gateway):
    reply = gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(
            user_id="u-42", k=7, context=common_pb2.RecommendContext(categories=["coat"])
        ),
        timeout=5,
    )
    assert len(reply.items) == 7
    assert reply.request_id and reply.recommendation_id and reply.model_version
    assert reply.assignment.experiment == "default" and reply.assignment.variant == "control"
    assert [item.rank for item in reply.items] == list(range(1, 8))
    scores = [item.score for item in reply.items]
    assert scores == sorted(scores, reverse=True)
    for item in reply.items:
        assert item.garment.category == "coat" and item.garment.in_stock
        assert item.channels[0].channel == common_pb2.CHANNEL_POPULARITY
        assert item.preview.status == common_pb2.PREVIEW_STATUS_SKIPPED


def test_a_shoppers_photo_is_analysed_and_reported(gateway):
    from skimage import data

    from drape.models.images import encode_jpeg

    reply = gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(
            user_id="u-photo", k=5, photo=common_pb2.Image(data=encode_jpeg(data.astronaut()))
        ),
        timeout=30,
    )
    assert len(reply.items) == 5
    assert reply.photo.used and reply.photo.model_version.startswith("efficientnet-lite0-")
    reply = gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(
            user_id="u-photo", k=5, photo=common_pb2.Image(data=encode_jpeg(data.chelsea()))
        ),
        timeout=30,
    )
    assert len(reply.items) == 5
    assert not reply.photo.used and "no person" in reply.photo.reason
    with pytest.raises(grpc.RpcError) as err:
        gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(
                user_id="u-photo", k=5, photo=common_pb2.Image(data=b"not a photo")
            ),
            timeout=30,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "photo: the bytes are not a JPEG" in err.value.details()


def test_track_is_idempotent_and_reports_per_event(gateway):
    batch = _events("u-idem", ["g000001", "g000002"])
    first = gateway.Track(gateway_pb2.TrackRequest(events=batch), timeout=5)
    again = gateway.Track(gateway_pb2.TrackRequest(events=batch), timeout=5)
    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates) == (0, 2)
    assert [r.outcome for r in again.results] == [events_pb2.EVENT_OUTCOME_DUPLICATE] * 2


def test_invalid_batch_is_atomic_unless_partial_allowed(gateway):
    good = _events("u-batch", ["g000003"])[0]
    bad = events_pb2.Event(
        event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_RATING, user_id="u-batch", rating=7
    )
    with pytest.raises(grpc.RpcError) as err:
        gateway.Track(gateway_pb2.TrackRequest(events=[good, bad]), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events[1].rating" in err.value.details() and "nothing was stored" in err.value.details()
    partial = gateway.Track(
        gateway_pb2.TrackRequest(events=[good, bad], allow_partial=True), timeout=5
    )
    assert (partial.stored, partial.rejected) == (1, 1)  # `good` was not stored by the failed call
    assert partial.results[1].outcome == events_pb2.EVENT_OUTCOME_REJECTED
    assert partial.results[1].field == "events[1].rating"


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (
            gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "k: must be between 1 and 200",
        ),
        (
            gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=201),
            grpc.StatusCode.INVALID_ARGUMENT,
            "(got 201)",
        ),
        (
            gateway_pb2.GatewayServiceRecommendRequest(k=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user_id: is required",
        ),
        (
            gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=5, preview_limit=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "preview_limit",
        ),
        (
            gateway_pb2.GatewayServiceRecommendRequest(
                user_id="u", k=5, photo=common_pb2.Image(data=b"\0" * (11 * 2**20))
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "limit is 10 MiB",
        ),
    ],
)
def test_bad_recommend_requests(gateway, request_, code, fragment):
    with pytest.raises(grpc.RpcError) as err:
        gateway.Recommend(request_, timeout=5)
    assert err.value.code() == code
    assert fragment in err.value.details()
    # ... and the gateway keeps serving.
    assert gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(user_id="u", k=1), timeout=5
    ).items


def test_bad_track_requests(running_stack: Stack, gateway):
    with pytest.raises(grpc.RpcError) as err:
        gateway.Track(gateway_pb2.TrackRequest(), timeout=5)
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "at least one event" in err.value.details()
    )
    too_many = _events("u", [f"g{i}" for i in range(1001)])
    with pytest.raises(grpc.RpcError) as err:
        gateway.Track(gateway_pb2.TrackRequest(events=too_many), timeout=5)
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "at most 1000 events" in err.value.details()
    )


def test_similar_garments_unknown_and_not_yet_indexed(running_stack: Stack):
    with grpc.insecure_channel(running_stack.address("recommend")) as channel:
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.SimilarGarments(
                recommend_pb2.SimilarGarmentsRequest(garment_id="nope", k=5), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            stub.SimilarGarments(
                recommend_pb2.SimilarGarmentsRequest(garment_id="g000001", k=5), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grpcurl_lists_services_checks_health_and_recommends(running_stack: Stack):
    address = running_stack.address("gateway")
    listed = _grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {
        "drape.v1.GatewayService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(listed.stdout.split())

    health = _grpcurl(
        "-d", '{"service": "drape.v1.GatewayService"}', address, "grpc.health.v1.Health/Check"
    )
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"

    reply = _grpcurl(
        "-d", '{"user_id": "grpcurl-user", "k": 3}', address, "drape.v1.GatewayService/Recommend"
    )
    assert reply.returncode == 0, reply.stderr
    body = json.loads(reply.stdout)
    assert len(body["items"]) == 3
    assert body["assignment"]["variant"] == "control"

    bad = _grpcurl("-d", '{"user_id": "x", "k": 0}', address, "drape.v1.GatewayService/Recommend")
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr


def test_recommendations_survive_the_features_service_being_down(drape_config, tmp_path: Path):
    from drape.cli.stack import free_ports
    from drape.models.images import encode_jpeg
    from tests.models.test_images import _photo

    generate_catalog(50, seed=2).save(drape_config.catalog_path())
    # Nothing listens where the gateway looks for the features service.
    drape_config.gateway.features_address = f"127.0.0.1:{free_ports(1)[0]}"
    with Stack(drape_config, ["events", "recommend", "gateway"], run_dir=tmp_path / "run") as stack:
        channel = grpc.insecure_channel(stack.address("gateway"))
        reply = gateway_pb2_grpc.GatewayServiceStub(channel).Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(
                user_id="u", k=3, photo=common_pb2.Image(data=encode_jpeg(_photo(64, 64)))
            ),
            timeout=10,
        )
        channel.close()
    assert len(reply.items) == 3
    assert not reply.photo.used and "features service is unavailable" in reply.photo.reason


def test_try_on_previews_one_garment_on_the_shoppers_photo(gateway):
    import io

    import numpy as np
    from PIL import Image
    from skimage import data

    from drape.models.images import encode_jpeg, encode_png
    from drape.synthetic.garments import render_garment

    shot = render_garment("t-shirt", "red", "striped", np.random.default_rng(5))
    garment = common_pb2.Image(data=encode_png(shot.image))
    reply = gateway.TryOn(
        gateway_pb2.TryOnRequest(
            user_id="u",
            photo=common_pb2.Image(data=encode_jpeg(data.astronaut())),
            garment_image=garment,
            delivery=common_pb2.PREVIEW_DELIVERY_INLINE,
        ),
        timeout=60,
    )
    preview = reply.preview
    assert preview.status == common_pb2.PREVIEW_STATUS_OK, preview.reason
    assert Image.open(io.BytesIO(preview.image.data)).size == (512, 512)
    assert preview.model_version.startswith("tryon_gan-") and preview.latency_ms > 0
    cat = gateway.TryOn(
        gateway_pb2.TryOnRequest(
            user_id="u",
            photo=common_pb2.Image(data=encode_jpeg(data.chelsea())),
            garment_image=garment,
        ),
        timeout=60,
    )
    assert (
        cat.preview.status == common_pb2.PREVIEW_STATUS_FAILED and "no person" in cat.preview.reason
    )
    with pytest.raises(grpc.RpcError) as err:
        gateway.TryOn(
            gateway_pb2.TryOnRequest(
                user_id="u",
                photo=common_pb2.Image(data=encode_jpeg(data.astronaut())),
                garment_id="no-such",
            ),
            timeout=60,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
