"""The tryon service over gRPC with a real Triton: a garment by image or catalog id on a real
photo, clear answers for bad input, and recovery when Triton goes away and comes back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from drape.catalog.images import ImageStore
from drape.cli.stack import Stack, ephemeral
from drape.models.images import encode_jpeg, encode_png
from drape.models.tryon.training import SyntheticBatches, TrainSettings, TryOnTrainer
from drape.recsys.catalog import COLUMNS, Catalog
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.garments import render_garment
from drape.v1 import common_pb2, features_pb2, tryon_pb2, tryon_pb2_grpc
from tests.conftest import wait_until
from tests.models.test_tryon import SMALL


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("tryon-service")
    trainer = TryOnTrainer(TrainSettings(spec=SMALL, batch_size=2))
    trainer.step(SyntheticBatches(SMALL, 2, seed=0).batch(0))
    trainer.save(root / "ckpt")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.tryon.checkpoint = str(root / "ckpt" / "generator.safetensors")
    config.tryon.max_image_mb = 1
    config.tryon.triton_timeout_s = 5
    config.tryon.server.grace_s = 2
    shot = render_garment("shirt", "navy", "checked", np.random.default_rng(0))
    _, uri = ImageStore(config.images_path()).put(encode_png(shot.image), "image/png")
    row = {"garment_id": "g1", "title": "Navy checked shirt", "category": "shirt", "price_minor": 2999,
           "currency": "EUR", "in_stock": True, "colour": "navy", "pattern": "checked", "image_uri": uri}  # fmt: skip
    Catalog(pd.DataFrame([row], columns=list(COLUMNS))).save(config.catalog_path())
    running = Stack(config, ["tryon"], run_dir=root / "run")
    running.start(timeout=120)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(stack: Stack) -> Iterator[tryon_pb2_grpc.TryOnServiceStub]:
    channel = grpc.insecure_channel(stack.address("tryon"))
    yield tryon_pb2_grpc.TryOnServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def photo() -> bytes:
    from skimage import data

    return encode_jpeg(data.astronaut())


def _request(photo: bytes, **garment) -> tryon_pb2.GenerateRequest:
    return tryon_pb2.GenerateRequest(request_id="r1", photo=common_pb2.Image(data=photo), **garment)


def test_a_garment_image_on_a_real_photo(stub, photo):
    shot = render_garment("t-shirt", "red", "striped", np.random.default_rng(1))
    reply = stub.Generate(
        _request(photo, garment_image=common_pb2.Image(data=encode_png(shot.image))), timeout=30
    )
    rendered = Image.open(io.BytesIO(reply.rendered.data))
    assert rendered.size == (SMALL.width, SMALL.height) and reply.rendered.media_type == "image/png"
    assert Image.open(io.BytesIO(reply.garment_mask.data)).mode == "L"
    assert reply.analysis.status == features_pb2.PERSON_STATUS_OK
    assert 0 <= reply.crop.x_min < reply.crop.x_max <= 1 and reply.crop.y_max <= 1
    assert reply.model_version.startswith("tryon_gan-")
    assert {t.stage for t in reply.timings} >= {"person_analysis", "triton", "quality"}
    # Every rendering is measured (this fixture's generator is a tiny, barely trained one).
    quality = reply.quality
    assert 0 <= quality.score <= 1 and 0 <= quality.coverage <= 1 and quality.colour_delta_e > 0
    assert set(quality.short) <= {"coverage", "connectedness", "colour_delta_e", "pattern_ssim",
                                  "sharpness"}  # fmt: skip
    assert bool(quality.advice) == bool(quality.short)


def test_a_catalog_garment_by_id(stub, photo):
    reply = stub.Generate(_request(photo, garment_id="g1"), timeout=30)
    assert reply.rendered.data
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(_request(photo, garment_id="nope"), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.value.details()


def test_bad_requests_get_clear_answers(stub, photo):
    from skimage import data

    reply = stub.Generate(_request(encode_jpeg(data.chelsea()), garment_id="g1"), timeout=30)
    assert not reply.rendered.data and reply.analysis.status == features_pb2.PERSON_STATUS_NO_PERSON
    cases = [
        (_request(photo), grpc.StatusCode.INVALID_ARGUMENT, "garment"),
        (_request(b"junk", garment_id="g1"), grpc.StatusCode.INVALID_ARGUMENT, "photo: the bytes are not"),
        (_request(b"\xff\xd8" + bytes(2 * 2**20), garment_id="g1"), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
        (_request(photo, garment_image=common_pb2.Image(data=encode_png(np.full((64, 64, 3), 255, np.uint8)))),
         grpc.StatusCode.INVALID_ARGUMENT, "no garment found"),
    ]  # fmt: skip
    for request, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(request, timeout=30)
        assert err.value.code() == code and text in err.value.details(), err.value.details()


def test_triton_down_means_unavailable_and_recovery_needs_no_restart(stack, stub, photo):
    request = _request(photo, garment_id="g1")
    tryon_pid = stack.process("tryon").pid
    stack.process("triton").terminate()
    stack.process("triton").wait(timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(request, timeout=15)
    assert (
        err.value.code() == grpc.StatusCode.UNAVAILABLE
        and "try-on model is unavailable" in err.value.details()
    )
    stack.restart("triton", timeout=120)

    def works() -> bool:
        try:
            return bool(stub.Generate(request, timeout=15).rendered.data)
        except grpc.RpcError:
            return False

    assert wait_until(works, timeout=60, interval=0.5)
    assert stack.process("tryon").pid == tryon_pid  # the tryon service was never restarted


def test_without_a_generator_generate_says_what_to_do(tmp_path: Path, photo):
    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    config.tryon.checkpoint = str(tmp_path / "missing.safetensors")
    from drape.services.registry import build_service
    from drape.services.runtime.server import RunningService

    service = RunningService(build_service("tryon", config), config.tryon.server).start()
    try:
        with grpc.insecure_channel(service.address) as channel, pytest.raises(grpc.RpcError) as err:
            tryon_pb2_grpc.TryOnServiceStub(channel).Generate(
                _request(photo, garment_id="g1"), timeout=10
            )
    finally:
        service.stop(grace=1)
    assert (
        err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "drape train tryon" in err.value.details()
    )
