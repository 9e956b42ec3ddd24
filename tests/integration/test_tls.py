"""The stack with TLS everywhere and mTLS between the services (a development CA): a
shopper's photo gets previewed recommendations and their feedback is stored, through the
gateway over TLS and every service behind it over mTLS; a client without a certificate, or
in plaintext, is refused (Triton's gRPC port too); grpcurl works with -cacert/-cert/-key; the plaintext health port
answers health and nothing else; and a rotated certificate is served without a restart."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from skimage import data as images

from drape.cli.stack import Stack, ephemeral, free_ports
from drape.models.images import encode_jpeg
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig, ServerConfig, TlsConfig
from drape.services.runtime.devca import make_dev_ca, reissue, tls_for, with_tls
from drape.services.table import SERVICE_NAMES
from drape.synthetic.catalog import write_generated_feed
from drape.v1 import (
    common_pb2,
    events_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
)
from tests.conftest import ingest_feed

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
OK = (common_pb2.PREVIEW_STATUS_OK, common_pb2.PREVIEW_STATUS_CACHED)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    root = tmp_path_factory.mktemp("tls")
    certificates = make_dev_ca(root / "pki", [*SERVICE_NAMES, "triton", "client"])
    config = with_tls(ephemeral(DrapeConfig(data_dir=root / "data")), certificates)
    for name, port in zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True):
        config.server(name).health_port = port  # fixed: recommend's workers share it
    config.recommend.refresh_s = 0.3
    feed = write_generated_feed(24, root / "feed", seed=5)
    stack = Stack(config, run_dir=root / "run").start(timeout=120)
    try:
        ingest_feed(stack, feed, 24, client=ServerConfig(tls=config.client_tls))
        yield stack, certificates
    finally:
        stack.stop()


def _gateway(stack: Stack, certificates: Path) -> gateway_pb2_grpc.GatewayServiceStub:
    # A storefront: verifies the gateway's certificate, presents none (API keys are its identity).
    return gateway_pb2_grpc.GatewayServiceStub(connect(stack.address("gateway"), ServerConfig(
        tls=TlsConfig(ca=str(certificates / "ca.pem")))))  # fmt: skip


def test_the_demo_flow_over_tls_and_mtls(secured):
    stack, certificates = secured
    gateway = _gateway(stack, certificates)
    photo = common_pb2.Image(data=encode_jpeg(images.astronaut()))
    reply = gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id="visitor-1", k=4, photo=photo,
                                                                         previews=True), timeout=120)  # fmt: skip
    assert len(reply.items) == 4
    assert any(item.preview.status in OK for item in reply.items), [i.preview for i in reply.items]
    shown = reply.items[0].garment.garment_id
    event = events_pb2.Event(event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_PURCHASE, user_id="visitor-1",
                             garment_id=shown, recommendation_id=reply.recommendation_id)  # fmt: skip
    assert gateway.Track(gateway_pb2.TrackRequest(events=[event]), timeout=30).stored == 1
    tried = gateway.TryOn(gateway_pb2.TryOnRequest(photo=photo, garment_id=shown), timeout=120)
    assert tried.preview.status in OK


def test_a_client_without_a_certificate_or_in_plaintext_is_refused(secured):
    stack, certificates = secured
    request = recommend_pb2.RecommendRequest(user_id="u", k=2)
    address = stack.address("recommend")
    with_cert = recommend_pb2_grpc.RecommendServiceStub(connect(address, ServerConfig(
        tls=tls_for(certificates, "client", mutual=False))))  # fmt: skip
    assert len(with_cert.Recommend(request, timeout=10).items) == 2
    no_cert = recommend_pb2_grpc.RecommendServiceStub(connect(address, ServerConfig(
        tls=TlsConfig(ca=str(certificates / "ca.pem")))))  # fmt: skip
    plaintext = recommend_pb2_grpc.RecommendServiceStub(connect(address))
    for stub in (no_cert, plaintext):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Recommend(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_triton_serves_its_grpc_port_over_mtls_too(secured):
    from drape.models.runners import triton_client

    stack, certificates = secured
    address = stack.address("triton")
    assert triton_client(address, tls_for(certificates, "client", mutual=False)).is_server_ready()
    for tls in (
        None,
        TlsConfig(ca=str(certificates / "ca.pem")),
    ):  # plaintext; TLS without a certificate
        with pytest.raises(
            Exception, match=r"(?i)unavailable|handshake|ssl|socket closed|connection"
        ):
            triton_client(address, tls).is_server_ready(client_timeout=5)


def test_grpcurl_with_the_ca_and_a_client_certificate(secured):
    stack, certificates = secured
    pki = {flag: str(certificates / name) for flag, name in
           (("-cacert", "ca.pem"), ("-cert", "client.pem"), ("-key", "client-key.pem"))}  # fmt: skip
    run = subprocess.run([GRPCURL, *(x for pair in pki.items() for x in pair), "-max-time", "10",
                          "-d", '{"user_id": "u", "k": 2}', stack.address("recommend"),
                          "drape.v1.RecommendService/Recommend"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0 and '"items"' in run.stdout, run.stderr
    without = subprocess.run([GRPCURL, "-cacert", pki["-cacert"], "-max-time", "5", stack.address("recommend"),
                              "list"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert without.returncode != 0


def test_the_health_port_is_plaintext_and_only_health(secured):
    stack, _ = secured
    for name in SERVICE_NAMES:
        port = stack.endpoints[name].health_port
        assert port, name
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
            if name == "recommend":
                with pytest.raises(grpc.RpcError) as other:
                    recommend_pb2_grpc.RecommendServiceStub(channel).Recommend(
                        recommend_pb2.RecommendRequest(user_id="u", k=1), timeout=5
                    )
                assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED
    health = subprocess.run([sys.executable, "-m", "drape.cli", "health", "splice", "--address",
                             f"127.0.0.1:{stack.endpoints['splice'].health_port}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert health.returncode == 0 and "SERVING" in health.stdout


def _served_serial(address: str, certificates: Path) -> int:
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    context.load_cert_chain(certificates / "client.pem", certificates / "client-key.pem")
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:  # fmt: skip
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def test_a_rotated_certificate_is_served_without_a_restart(secured):
    stack, certificates = secured
    address = stack.address("splice")
    before = _served_serial(address, certificates)
    assert _served_serial(address, certificates) == before
    reissue(certificates, "splice")  # a renewal, as cert-manager makes one
    after = _served_serial(address, certificates)
    assert after != before
    assert Path(f"/proc/{stack.endpoints['splice'].pid}").exists()  # the same process
