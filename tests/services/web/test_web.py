"""The web front over real sockets: the JSON front against a gRPC gateway (protobuf's JSON
mapping both ways, statuses to HTTP codes with the same message, metadata and deadlines
carried), and the preview endpoint (signatures, expiry, caching headers, sizes and formats,
no listing, no traversal)."""

from __future__ import annotations

import http.client
import io
import json
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.preview_store import PreviewStore, UrlSigner
from drape.services.web.app import GATEWAY, path_of
from drape.services.web.server import WebServer
from drape.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


class Gateway(gateway_pb2_grpc.GatewayServiceServicer):
    """Answers from the request, and refuses the way the real gateway does."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], float | None]] = []

    def Recommend(self, request, context):
        self.seen.append((dict(context.invocation_metadata()), context.time_remaining()))
        if request.user_id == "limited":
            context.set_trailing_metadata((("retry-after-ms", "1500"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "key k1 is over its limit")
        if not request.user_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "user_id: is required (use a stable anonymous id for guests)")  # fmt: skip
        reply = gateway_pb2.GatewayServiceRecommendResponse(
            recommendation_id="r-1",
            model_version="v7",
            assignment=common_pb2.ExperimentAssignment(experiment="e", variant="treatment"),
        )
        garment = reply.items.add(rank=1, score=0.5)
        garment.garment.garment_id, garment.garment.price_minor = "g1", 2_500_000_000_000
        garment.preview.status = common_pb2.PREVIEW_STATUS_OK
        garment.preview.image.data = request.photo.data[::-1]
        garment.garment.attributes["colour"] = request.context.surface or "none"
        return reply

    def Track(self, request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing API key")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("web")
    gateway = Gateway()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(gateway, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    config = DrapeConfig(data_dir=root / "data")
    config.web.address = "127.0.0.1:0"
    config.web.gateway_address = f"127.0.0.1:{port}"
    config.gateway.max_photo_mb = 1
    front = WebServer(config).start()
    try:
        yield front, gateway, config
    finally:
        front.stop()
        server.stop(0)


def request(front: WebServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def post(front: WebServer, path: str, payload: object, **headers: str):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, head, data = request(front, "POST", path, body,
                                 {"content-type": "application/json", **headers})  # fmt: skip
    return status, head, json.loads(data)


def test_every_gateway_method_has_a_route_and_an_openapi_entry(web):
    front, _, _ = web
    status, _, body = request(front, "GET", "/openapi.json")
    document = json.loads(body)
    assert status == 200 and document["openapi"].startswith("3.")
    for method in GATEWAY.methods:
        operation = document["paths"][path_of(method.name)]["post"]
        assert operation["operationId"] == method.name
        schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        properties = document["components"]["schemas"][schema.rsplit("/", 1)[1]]["properties"]
        assert set(properties) == {f.json_name for f in method.input_type.fields}
    assert path_of("TryOn") == "/v1/try-on"
    assert "/v1/previews/{digest}" in document["paths"]


def test_json_goes_through_in_protobufs_own_mapping(web):
    front, gateway, _ = web
    status, _, reply = post(front, "/v1/recommend", {
        "userId": "u1", "k": 3, "photo": {"data": "AQID"}, "context": {"surface": "pdp"},
        "delivery": "PREVIEW_DELIVERY_INLINE",
    }, **{"authorization": "Bearer drape_k1_secret", "x-request-id": "req-42",
          "x-request-timeout-ms": "2500"})  # fmt: skip
    assert status == 200, reply
    item = reply["items"][0]
    assert reply["recommendationId"] == "r-1" and reply["assignment"]["variant"] == "treatment"
    assert item["garment"]["priceMinor"] == "2500000000000"  # int64 as a string
    assert item["preview"]["status"] == "PREVIEW_STATUS_OK"  # enums by name
    assert item["preview"]["image"]["data"] == "AwIB"  # bytes as base64 (reversed by the fake)
    assert item["garment"]["attributes"] == {"colour": "pdp"}
    metadata, remaining = gateway.seen[-1]
    assert metadata["authorization"] == "Bearer drape_k1_secret"
    assert metadata["x-request-id"] == "req-42"
    assert remaining is not None and 1.5 < remaining <= 2.5


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "message"),
    [
        ({"k": 3}, {}, 400, "INVALID_ARGUMENT", "user_id: is required"),
        ({"userId": "limited"}, {}, 429, "RESOURCE_EXHAUSTED", "over its limit"),
        (b"{not json", {}, 400, "INVALID_ARGUMENT", "request body"),
        ({"userId": "u", "nope": 1}, {}, 400, "INVALID_ARGUMENT", "nope"),
        ({"userId": "u", "k": "many"}, {}, 400, "INVALID_ARGUMENT", "k"),
        ({"userId": "u", "photo": {"data": 5}}, {}, 400, "INVALID_ARGUMENT", "data"),
        ([1, 2], {}, 400, "INVALID_ARGUMENT", "request body"),
        (b"\xff\xfe", {}, 400, "INVALID_ARGUMENT", "request body"),
        ({"userId": "u"}, {"authorization": "Basic x"}, 401, "UNAUTHENTICATED", "Bearer"),
        (
            {"userId": "u"},
            {"x-request-id": "bad id\u00e9"},
            400,
            "INVALID_ARGUMENT",
            "X-Request-Id",
        ),
        ({"userId": "u"}, {"x-request-timeout-ms": "0"}, 400, "INVALID_ARGUMENT", "Timeout"),
        ({"userId": "u"}, {"x-request-timeout-ms": "soon"}, 400, "INVALID_ARGUMENT", "Timeout"),
    ],
)
def test_refusals_carry_the_grpc_status_and_message(web, body, headers, status, code, message):
    front, _, _ = web
    headers = {k: v.encode("latin-1").decode("latin-1") for k, v in headers.items()}
    got, head, reply = post(front, "/v1/recommend", body, **headers)
    assert got == status, reply
    assert reply["error"]["status"] == code and reply["error"]["code"] == status
    assert message in reply["error"]["message"]
    if code == "RESOURCE_EXHAUSTED":
        assert head["retry-after"] == "2" and head["retry-after-ms"] == "1500"


def test_other_methods_and_a_gateway_that_is_down(web, tmp_path: Path):
    front, _, config = web
    status, _, reply = post(front, "/v1/track", {"events": []})
    assert status == 401 and reply["error"]["message"] == "missing API key"
    status, _, reply = post(front, "/v1/try-on", {"userId": "u"})
    assert status == 501 and reply["error"]["status"] == "UNIMPLEMENTED"
    assert request(front, "GET", "/v1/recommend")[0] == 405
    down = config.model_copy(deep=True)
    down.web.gateway_address = "127.0.0.1:9"  # nothing listens there
    down.data_dir = tmp_path
    other = WebServer(down).start()
    try:
        status, _, reply = post(
            other, "/v1/recommend", {"userId": "u"}, **{"x-request-timeout-ms": "500"}
        )
        assert status in (503, 504) and reply["error"]["status"] in (
            "UNAVAILABLE",
            "DEADLINE_EXCEEDED",
        )
    finally:
        other.stop()


def test_a_body_over_the_photo_limit_is_refused_before_it_is_read(web):
    front, _, _ = web
    big = json.dumps({"userId": "u", "photo": {"data": "A" * (3 * 2**20)}}).encode()
    status, _, reply = post(front, "/v1/recommend", big)
    assert status == 413 and "downscale the photo" in reply["error"]["message"]
    # Still serving after it.
    assert post(front, "/v1/recommend", {"userId": "u"})[0] == 200


def _jpeg() -> bytes:
    import numpy as np

    from drape.models.images import encode_jpeg

    rng = np.random.default_rng(5)
    return encode_jpeg(rng.integers(0, 255, (1000, 700, 3), dtype=np.uint8), quality=90)


def _signed(config: DrapeConfig, data: bytes) -> tuple[str, str]:
    digest = PreviewStore.from_config(config).put(data)
    url = UrlSigner.from_config(config).sign(digest).url
    return digest, url.split("127.0.0.1:8080", 1)[1]


def test_previews_are_served_by_signed_url_with_caching_headers(web):
    from PIL import Image

    front, _, config = web
    data = _jpeg()
    _, path = _signed(config, data)
    status, head, body = request(front, "GET", path)
    assert status == 200 and body == data and head["content-type"] == "image/jpeg"
    assert "immutable" in head["cache-control"] and "public" in head["cache-control"]
    max_age = int(head["cache-control"].split("max-age=")[1].split(",")[0])
    assert 86_400 - 60 <= max_age <= 86_400 * 9 / 8
    etag = head["etag"]
    status, head, body = request(front, "GET", path, headers={"if-none-match": etag})
    assert status == 304 and body == b"" and head["etag"] == etag
    status, head, body = request(front, "GET", path + "&size=512&format=webp")
    assert status == 200 and head["content-type"] == "image/webp" and head["etag"] != etag
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "WEBP" and max(image.size) == 512
    assert len(body) < len(data) / 3
    assert request(front, "HEAD", path)[0] == 200


def test_bad_signatures_expiry_unknown_previews_and_traversal(web):
    front, _, config = web
    digest, path = _signed(config, _jpeg()[:-10] + b"0123456789")
    assert request(front, "GET", path)[0] == 200
    base, query = path.split("?")
    tampered = path.replace("sig=", "sig=x")
    assert request(front, "GET", tampered)[0] == 403
    assert request(front, "GET", base)[0] == 403  # no signature
    expired = UrlSigner.from_config(config).sign(digest, now=time.time() - 10 * 86_400).url
    status, _, body = request(front, "GET", expired.split("127.0.0.1:8080", 1)[1])
    assert status == 403 and b"expired" in body
    # A well-signed URL of a preview no pod stored.
    unknown = UrlSigner.from_config(config).sign("0" * 64).url.split("127.0.0.1:8080", 1)[1]
    assert request(front, "GET", unknown)[0] == 404
    # Another preview's signature does not open this one.
    other = UrlSigner.from_config(config).sign("1" * 64).url.split("?", 1)[1]
    assert request(front, "GET", f"{base}?{other}")[0] == 403
    assert request(front, "GET", path + "&size=513")[0] == 400
    assert request(front, "GET", path + "&format=gif")[0] == 400
    keys = config.data_dir / "preview-signing.keys"
    for hostile in ("/v1/previews/", "/v1/previews", f"/v1/previews/{digest[:2]}/",
                    "/v1/previews/../preview-signing.keys", "/v1/previews/..%2fpreview-signing.keys",
                    "/v1/previews/%2e%2e%2f%2e%2e%2fetc%2fpasswd", f"/v1/previews/{digest}.jpg?{query}",
                    f"/v1/previews/{digest.upper()}?{query}", "/static/../preview-signing.keys",
                    "/static/", "/static/%2e%2e/app.py"):  # fmt: skip
        status, _, body = request(front, "GET", hostile)
        assert status == 404, (hostile, status)
        assert keys.read_bytes().strip() not in body


def test_metrics_count_requests_by_route_not_by_path(web):
    front, _, _ = web
    request(front, "GET", "/v1/previews/" + "9" * 64)
    status, _, body = request(front, "GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert 'drape_web_requests_total{code="403",route="/v1/previews/{digest}"}' in text
    assert "9999999999" not in text
