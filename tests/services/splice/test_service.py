"""The splice service over gRPC: the composite keeps the photo's size and orientation, and
bad requests get clear errors."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from PIL import Image

from drape.cli.stack import ephemeral
from drape.models.images import decode_image, encode_png
from drape.services.registry import build_service
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.server import RunningService
from drape.v1 import common_pb2, splice_pb2, splice_pb2_grpc


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> Iterator[splice_pb2_grpc.SpliceServiceStub]:
    config = ephemeral(DrapeConfig(data_dir=tmp_path_factory.mktemp("splice")))
    config.splice.max_image_mb = 1
    service = RunningService(build_service("splice", config), config.splice.server).start()
    channel = grpc.insecure_channel(service.address)
    yield splice_pb2_grpc.SpliceServiceStub(channel)
    channel.close()
    service.stop(grace=1)


def _rotated_photo() -> tuple[bytes, np.ndarray]:
    """A JPEG stored sideways with EXIF orientation 6, and how it looks upright."""
    rng = np.random.default_rng(0)
    upright = rng.integers(0, 256, (160, 120, 3), dtype=np.uint8)
    stored = np.rot90(upright, k=1).copy()  # displayed after a 90-degree clockwise turn
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue(), decode_image(buffer.getvalue()).pixels


def _request(photo_bytes: bytes, upright: np.ndarray, **overrides) -> splice_pb2.ComposeRequest:
    """The GAN's view of the whole photo (64x48) with a green garment in the middle."""
    rendered = np.array(Image.fromarray(upright).resize((48, 64)))
    mask = np.zeros((64, 48), np.uint8)
    mask[20:50, 10:38] = 255
    rendered[mask > 0] = (20, 160, 40)
    fields = {
        "photo": common_pb2.Image(data=photo_bytes),
        "rendered": common_pb2.Image(data=encode_png(rendered)),
        "garment_mask": common_pb2.Image(data=encode_png(mask)),
        "crop": common_pb2.BoundingBox(x_min=0.0, y_min=0.0, x_max=1.0, y_max=1.0),
        "blend": splice_pb2.BLEND_MODE_MULTIBAND,
    }
    fields.update(overrides)
    return splice_pb2.ComposeRequest(request_id="r", **fields)


def test_the_composite_keeps_size_and_orientation(stub):
    data, upright = _rotated_photo()
    reply = stub.Compose(_request(data, upright), timeout=10)
    composite = np.asarray(Image.open(io.BytesIO(reply.composite.data)).convert("RGB"))
    assert composite.shape == upright.shape == (160, 120, 3)
    assert (reply.composite.width, reply.composite.height) == (120, 160)
    # The garment region is the rendered green; the far corners are the photo (upright).
    assert composite[90, 60, 1] > 120 and composite[90, 60, 0] < 80
    assert (
        np.abs(composite[:10, :10].astype(int) - upright[:10, :10]).mean() < 12
    )  # JPEG noise only
    # The top of the photo, well away from the garment, stands in for a face: kept exactly.
    face = common_pb2.BoundingBox(x_min=0.2, y_min=0.0, x_max=0.8, y_max=0.15)
    reply = stub.Compose(_request(data, upright, face=face), timeout=10)
    assert reply.face_ssim > 0.99 and reply.background_difference == 0.0
    assert stub.Compose(_request(data, upright), timeout=10).face_ssim == 0.0, "no face given"


@pytest.mark.parametrize(
    ("overrides", "code", "text"),
    [
        ({"photo": common_pb2.Image(data=b"")}, grpc.StatusCode.INVALID_ARGUMENT, "photo: is required"),
        ({"rendered": common_pb2.Image(data=b"junk")}, grpc.StatusCode.INVALID_ARGUMENT, "rendered:"),
        ({"garment_mask": common_pb2.Image(data=encode_png(np.zeros((32, 32), np.uint8) + 255))},
         grpc.StatusCode.INVALID_ARGUMENT, "garment_mask: is 32x32"),
        ({"crop": common_pb2.BoundingBox(x_min=0.5, x_max=0.2, y_max=1)}, grpc.StatusCode.INVALID_ARGUMENT, "crop"),
        ({"photo": common_pb2.Image(data=b"\xff\xd8" + bytes(2 * 2**20))}, grpc.StatusCode.RESOURCE_EXHAUSTED,
         "limit"),
    ],
)  # fmt: skip
def test_bad_requests(stub, overrides, code, text):
    data, upright = _rotated_photo()
    with pytest.raises(grpc.RpcError) as err:
        stub.Compose(_request(data, upright, **overrides), timeout=10)
    assert err.value.code() == code and text in err.value.details(), err.value.details()
