"""The features service over gRPC: embeddings, person analysis, every kind of bad input
(each answered with a clear status while the service keeps serving), and parity between
the Triton-served encoder and the in-process one."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from drape.cli.stack import Stack, ephemeral
from drape.models.images import encode_jpeg, encode_png
from drape.recsys.index import EmbeddingIndex
from drape.services.features.extractor import FeatureExtractor, open_encoder
from drape.services.registry import build_service
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.server import RunningService
from drape.synthetic.garments import garment_set
from drape.v1 import common_pb2, features_pb2, features_pb2_grpc
from tests.models.test_images import _png_declaring


def _image(data: bytes) -> common_pb2.Image:
    return common_pb2.Image(data=data)


@pytest.fixture(scope="module")
def shots():
    return garment_set(per_combination=1, seed=2)[::5][:48]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DrapeConfig:
    config = ephemeral(DrapeConfig(data_dir=tmp_path_factory.mktemp("features")))
    config.features.max_image_mb = 1
    config.features.batch_size = 8
    config.features.server.grace_s = 2
    return config


@pytest.fixture(scope="module")
def inprocess(config: DrapeConfig) -> Iterator[features_pb2_grpc.FeaturesServiceStub]:
    local = config.model_copy(deep=True)
    local.features.runner = "inprocess"
    service = RunningService(build_service("features", local), local.features.server).start()
    channel = grpc.insecure_channel(service.address)
    try:
        yield features_pb2_grpc.FeaturesServiceStub(channel)
    finally:
        channel.close()
        service.stop(grace=1)


@pytest.fixture(scope="module")
def through_triton(
    config: DrapeConfig, tmp_path_factory
) -> Iterator[features_pb2_grpc.FeaturesServiceStub]:
    stack = Stack(config, ["features"], run_dir=tmp_path_factory.mktemp("run"))
    stack.start(timeout=120)
    channel = grpc.insecure_channel(stack.address("features"))
    try:
        assert "triton" in stack.endpoints
        yield features_pb2_grpc.FeaturesServiceStub(channel)
    finally:
        channel.close()
        stack.stop()


def _embed(stub, shots) -> list[features_pb2.EmbedGarmentsResponse]:
    requests = [
        features_pb2.EmbedGarmentsRequest(garment_id=f"g{i}", image=_image(encode_png(s.image)))
        for i, s in enumerate(shots)
    ]
    return list(stub.EmbedGarments(iter(requests), timeout=60))


def test_garment_stream_comes_back_in_order(inprocess, shots):
    replies = _embed(inprocess, shots)
    assert [r.garment_id for r in replies] == [f"g{i}" for i in range(len(shots))]
    vectors = np.array([r.embedding.values for r in replies])
    assert vectors.shape == (len(shots), 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert all(r.embedding.model_version.startswith("efficientnet-lite0-") for r in replies)


def test_triton_and_in_process_embeddings_agree(through_triton, inprocess, shots):
    triton = np.array([r.embedding.values for r in _embed(through_triton, shots)])
    local = np.array([r.embedding.values for r in _embed(inprocess, shots)])
    assert triton.shape == local.shape == (len(shots), 256)
    assert np.abs(triton - local).max() <= 1e-5


def test_the_service_embeds_like_the_extractor(inprocess, shots, config, tmp_path: Path):
    local = config.model_copy(deep=True)
    extractor = FeatureExtractor(open_encoder(local, runner="inprocess"))
    expected = extractor.embed_inputs([extractor.garment_input(s.image) for s in shots[:4]])
    served = np.array([r.embedding.values for r in _embed(inprocess, shots[:4])])
    assert np.abs(served - expected).max() <= 1e-5


def test_bad_items_fail_alone_and_the_stream_goes_on(inprocess, shots):
    buffer = io.BytesIO()
    Image.fromarray(shots[0].image).convert("CMYK").save(buffer, format="JPEG")
    bad = {
        "junk": b"not an image",
        "truncated": encode_jpeg(shots[0].image)[:500],
        "tiny": encode_png(np.zeros((1, 1, 3), np.uint8)),
        "bomb": _png_declaring(30000, 30000),
        "huge": b"\x89PNG" + bytes(2 * 1024 * 1024),
        "empty": b"",
    }
    requests = [
        features_pb2.EmbedGarmentsRequest(
            garment_id="first", image=_image(encode_png(shots[0].image))
        )
    ]
    requests += [
        features_pb2.EmbedGarmentsRequest(garment_id=k, image=_image(v)) for k, v in bad.items()
    ]
    requests += [
        features_pb2.EmbedGarmentsRequest(garment_id="cmyk", image=_image(buffer.getvalue())),
        features_pb2.EmbedGarmentsRequest(image=_image(encode_png(shots[1].image))),
    ]
    replies = list(inprocess.EmbedGarments(iter(requests), timeout=60))
    assert len(replies) == len(requests)
    by_id = {r.garment_id: r for r in replies}
    assert by_id["first"].embedding.values and by_id["cmyk"].embedding.values
    assert "not a JPEG, PNG or WebP" in by_id["junk"].error
    assert "could not be decoded" in by_id["truncated"].error
    assert "at least 16 pixels" in by_id["tiny"].error
    assert (
        by_id["bomb"].error.startswith("RESOURCE_EXHAUSTED")
        and "too many pixels" in by_id["bomb"].error
    )
    assert (
        by_id["huge"].error.startswith("RESOURCE_EXHAUSTED") and "byte limit" in by_id["huge"].error
    )
    assert "required" in by_id["empty"].error
    assert replies[-1].error == "garment_id: is required"


def test_an_empty_stream_gets_an_empty_answer(inprocess):
    assert list(inprocess.EmbedGarments(iter([]), timeout=10)) == []


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "photo: is required"),
        (b"GIF89a....", grpc.StatusCode.INVALID_ARGUMENT, "not a JPEG, PNG or WebP"),
        (_png_declaring(30000, 30000), grpc.StatusCode.RESOURCE_EXHAUSTED, "too many pixels"),
        (b"\xff\xd8" + bytes(2 * 1024 * 1024), grpc.StatusCode.RESOURCE_EXHAUSTED, "byte limit"),
    ],
    ids=["missing", "gif-junk", "bomb", "over-size"],
)
def test_bad_photos_get_clear_errors(inprocess, data, code, text):
    with pytest.raises(grpc.RpcError) as err:
        inprocess.AnalyzePerson(features_pb2.AnalyzePersonRequest(photo=_image(data)), timeout=10)
    assert err.value.code() == code and text in err.value.details()
    # ... and the service is still there.
    reply = inprocess.AnalyzePerson(
        features_pb2.AnalyzePersonRequest(
            photo=_image(encode_png(np.full((64, 64, 3), 200, np.uint8)))
        ),
        timeout=10,
    )
    assert reply.analysis.status == features_pb2.PERSON_STATUS_NO_PERSON


def test_analyze_person_returns_keypoints_and_masks(inprocess):
    from skimage import data

    photo = data.astronaut()
    reply = inprocess.AnalyzePerson(
        features_pb2.AnalyzePersonRequest(photo=_image(encode_jpeg(photo)), include_masks=True),
        timeout=30,
    )
    analysis = reply.analysis
    assert analysis.status == features_pb2.PERSON_STATUS_OK
    assert (analysis.width, analysis.height) == (512, 512)
    assert len(analysis.keypoints) == 33 and analysis.keypoints[11].name == "left_shoulder"
    mask = np.asarray(Image.open(io.BytesIO(analysis.upper_body_mask.data)))
    assert mask.shape == (512, 512) and 0.1 < (mask > 0).mean() < 0.6
    agnostic = Image.open(io.BytesIO(analysis.agnostic_person.data))
    assert agnostic.size == (512, 512)
    plain = inprocess.AnalyzePerson(
        features_pb2.AnalyzePersonRequest(photo=_image(encode_jpeg(photo))), timeout=30
    )
    assert not plain.analysis.person_mask.data


def test_embed_user_from_photo_and_history(inprocess, config, shots):
    from skimage import data

    reply = inprocess.EmbedUser(
        features_pb2.EmbedUserRequest(user_id="u1", photo=_image(encode_jpeg(data.astronaut()))),
        timeout=30,
    )
    assert len(reply.photo_embedding.values) == 256
    assert reply.analysis.status == features_pb2.PERSON_STATUS_OK
    # A photo without a person: an analysis that says so, no photo embedding.
    reply = inprocess.EmbedUser(
        features_pb2.EmbedUserRequest(user_id="u1", photo=_image(encode_jpeg(data.chelsea()))),
        timeout=30,
    )
    assert not reply.photo_embedding.values
    assert reply.analysis.status == features_pb2.PERSON_STATUS_NO_PERSON
    # History: the recency-weighted mean of stored garment embeddings.
    vectors = np.array([r.embedding.values for r in _embed(inprocess, shots[:3])], np.float32)
    EmbeddingIndex.build(np.array(["a", "b", "c"]), vectors).save(config.embeddings_path())
    reply = inprocess.EmbedUser(
        features_pb2.EmbedUserRequest(user_id="u1", history_garment_ids=["c", "zzz", "a"]),
        timeout=30,
    )
    history = np.array(reply.history_embedding.values)
    expected = vectors[2] + 0.5 ** (2 / config.features.history_half_life) * vectors[0]
    assert np.allclose(history, expected / np.linalg.norm(expected), atol=1e-5)
    with pytest.raises(grpc.RpcError) as err:
        inprocess.EmbedUser(features_pb2.EmbedUserRequest(user_id="u1"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_greyscale_alpha_and_rotated_photos_are_analysed_upright(inprocess):
    from skimage import data

    photo = data.astronaut()
    grey = encode_png(np.asarray(Image.fromarray(photo).convert("L")))
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned 90 degrees clockwise; display rotates it back
    Image.fromarray(np.rot90(photo, k=-1).copy()).crop((0, 0, 512, 400)).save(
        rotated, format="JPEG", quality=92, exif=exif.tobytes()
    )
    for label, data_ in (("grey", grey), ("alpha", encode_png(rgba)), ("exif", rotated.getvalue())):
        reply = inprocess.AnalyzePerson(
            features_pb2.AnalyzePersonRequest(photo=_image(data_)), timeout=30
        )
        assert reply.analysis.status != features_pb2.PERSON_STATUS_UNSPECIFIED, label
        if label == "exif":
            # Upright after EXIF: portrait 400 wide, 512 high, the person found standing.
            assert (reply.analysis.width, reply.analysis.height) == (400, 512)
            assert reply.analysis.status == features_pb2.PERSON_STATUS_OK, reply.analysis.reason
        else:
            assert reply.analysis.status == features_pb2.PERSON_STATUS_OK, (
                label,
                reply.analysis.reason,
            )
