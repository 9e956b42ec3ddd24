"""Storefront API keys at a real gateway: no key or an unknown one is UNAUTHENTICATED, a
method outside the key's scopes PERMISSION_DENIED, a key over its limit RESOURCE_EXHAUSTED
with the wait in a trailer; health stays open; a key added or revoked in the file takes
effect without a restart; and no key reaches a log line or a metric."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drape.cli.stack import Stack, ephemeral
from drape.services.gateway.auth import RETRY_AFTER, add_key, load_keys, new_key, write_keys
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.catalog import generate_catalog
from drape.v1 import common_pb2, events_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import wait_until


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("keys")
    keys_file = root / "api-keys.yaml"
    issued = {}
    for key_id, scopes, rate, burst in (("shop", ["recommend", "track"], 50.0, 50),
                                        ("reader", ["recommend"], 50.0, 50),
                                        ("slow", ["recommend"], 0.5, 2)):  # fmt: skip
        key, entry = new_key(key_id, scopes, rate, burst)
        add_key(keys_file, entry)
        issued[key_id] = key
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.gateway.api_keys_path = str(keys_file)
    config.gateway.api_keys_reload_s = 0.2
    generate_catalog(100, seed=3).save(config.catalog_path())
    stack = Stack(config, ["events", "recommend", "gateway"], run_dir=root / "run").start(
        timeout=90
    )
    try:
        yield stack, keys_file, issued
    finally:
        stack.stop()


def _call(stack: Stack, key: str | None, method: str = "Recommend"):
    metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        if method == "Recommend":
            request = gateway_pb2.GatewayServiceRecommendRequest(user_id="u1", k=3)
            return gateway.Recommend.with_call(request, metadata=metadata, timeout=30)
        if method == "TryOn":
            request = gateway_pb2.TryOnRequest(photo=common_pb2.Image(data=b"x"), garment_id="g")
            return gateway.TryOn.with_call(request, metadata=metadata, timeout=30)
        event = events_pb2.Event(event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_VIEW, user_id="u1",
                                 garment_id="g1")  # fmt: skip
        return gateway.Track.with_call(
            gateway_pb2.TrackRequest(events=[event]), metadata=metadata, timeout=30
        )


def _refused(stack: Stack, key: str | None, method: str = "Recommend") -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _call(stack, key, method)
    return caught.value


def test_keys_scopes_and_limits(keyed):
    stack, _, issued = keyed
    reply, _ = _call(stack, issued["shop"])
    assert len(reply.items) == 3
    assert _call(stack, issued["shop"], "Track")[0].stored == 1
    missing = _refused(stack, None)
    assert (
        missing.code() == grpc.StatusCode.UNAUTHENTICATED and "missing API key" in missing.details()
    )
    forged = issued["shop"][:-4] + "AAAA"
    for bad in (forged, "not-a-key", "drape_nobody_secret", ""):
        refused = _refused(stack, bad)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, bad
    denied = _refused(stack, issued["reader"], "Track")
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.details() == "API key 'reader' is not allowed to track (its scopes: recommend)"
    assert _refused(stack, issued["shop"], "TryOn").code() == grpc.StatusCode.PERMISSION_DENIED
    # Two at once, then one every two seconds: the third call waits for its token.
    _call(stack, issued["slow"])
    _call(stack, issued["slow"])
    limited = _refused(stack, issued["slow"])
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_ms = int(dict(limited.trailing_metadata())[RETRY_AFTER])
    assert 0 < retry_ms <= 2000 and f"retry in {retry_ms} ms" in limited.details()
    # Health needs no key.
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_json_front_takes_the_same_keys_with_the_same_refusals(keyed):
    import json

    from drape.services.web.server import WebServer

    stack, _, issued = keyed
    config = stack.config.model_copy(deep=True)
    config.web.address = "127.0.0.1:0"
    config.web.gateway_address = stack.address("gateway")
    web = WebServer(config).start()

    def post(path: str, body: dict, key: str | None) -> tuple[int, dict, dict]:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        request = urllib.request.Request(web.url + path, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, dict(reply.headers), json.load(reply)
        except urllib.error.HTTPError as refused:
            return refused.code, dict(refused.headers), json.load(refused)

    try:
        status, _, reply = post("/v1/recommend", {"userId": "u1", "k": 3}, issued["shop"])
        assert status == 200 and len(reply["items"]) == 3
        status, _, reply = post("/v1/recommend", {"userId": "u1", "k": 3}, None)
        assert status == 401 and "missing API key" in reply["error"]["message"]
        status, _, reply = post("/v1/recommend", {"userId": "u1"}, issued["shop"][:-4] + "AAAA")
        assert status == 401 and reply["error"]["status"] == "UNAUTHENTICATED"
        status, _, reply = post("/v1/track", {"events": []}, issued["reader"])
        assert status == 403
        assert (
            reply["error"]["message"]
            == "API key 'reader' is not allowed to track (its scopes: recommend)"
        )
        for _ in range(5):  # burst 2, then one every two seconds
            status, headers, reply = post("/v1/recommend", {"userId": "u1", "k": 1}, issued["slow"])
            if status != 200:
                break
        assert status == 429 and reply["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert 1 <= int(headers["retry-after"]) <= 2 and 0 < int(headers["retry-after-ms"]) <= 2000
    finally:
        web.stop()


def test_a_key_added_or_revoked_takes_effect_without_a_restart(keyed):
    stack, keys_file, issued = keyed
    key, entry = new_key("late", ["recommend"], 10, 10)
    assert _refused(stack, key).code() == grpc.StatusCode.UNAUTHENTICATED
    add_key(keys_file, entry)
    assert wait_until(lambda: _works(stack, key), timeout=10, interval=0.2)
    kept = [e for e in load_keys(keys_file).values() if e.key_id != "reader"]
    write_keys(keys_file, kept)
    assert wait_until(lambda: not _works(stack, issued["reader"]), timeout=10, interval=0.2)
    # A broken file is refused (seen at the next call); the keys in use stay.
    keys_file.write_text("keys: [{id: x}]\n")
    assert wait_until(
        lambda: _works(stack, issued["shop"]) and _failures(stack) >= 1, timeout=10, interval=0.2
    )
    assert not _works(stack, issued["reader"])


def _works(stack: Stack, key: str) -> bool:
    try:
        _call(stack, key)
    except grpc.RpcError:
        return False
    return True


def _metrics(stack: Stack) -> str:
    port = stack.endpoints["gateway"].metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def _failures(stack: Stack) -> float:
    for line in _metrics(stack).splitlines():
        if line.startswith("drape_gateway_keys_reload_failures_total "):
            return float(line.split()[1])
    return 0.0


def test_no_key_reaches_a_log_or_a_metric(keyed):
    stack, _, issued = keyed
    metrics = _metrics(stack)
    assert 'drape_gateway_key_calls_total{key_id="shop",method="recommend",outcome="ok"}' in metrics
    assert 'key_id="reader",method="track",outcome="permission_denied"' in metrics
    assert 'key_id="unknown",method="recommend",outcome="unauthenticated"' in metrics
    logs = "".join(stack.log_path(name).read_text(errors="replace") for name in stack.endpoints)
    assert "PERMISSION_DENIED" in logs  # refusals are logged ...
    for key in issued.values():
        secret = key.split("_", 2)[2]  # drape_<id>_<secret>; the secret may hold "_"
        assert secret not in logs and secret not in metrics  # ... without the key
