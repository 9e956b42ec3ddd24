"""Recommendations with previews from Python, over gRPC (the generated stubs of `drape.v1`).

    python docs/examples/grpc_client.py [GATEWAY_ADDRESS] [PHOTO]

Against `drape up` (the gateway on 127.0.0.1:50051); with no photo it sends the astronaut.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import grpc

from drape.v1 import common_pb2, events_pb2, gateway_pb2, gateway_pb2_grpc


def main(address: str = "127.0.0.1:50051", photo_path: str | None = None) -> int:
    if photo_path:
        photo = Path(photo_path).read_bytes()
    else:
        from skimage import data

        from drape.models.images import encode_jpeg

        photo = encode_jpeg(data.astronaut())
    with grpc.insecure_channel(address) as channel:  # grpc.secure_channel(...) with TLS
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        metadata = ()  # (("authorization", "Bearer drape_<id>_<secret>"),) where keys are on
        reply = gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(
                user_id="shopper-42", k=4, photo=common_pb2.Image(data=photo), previews=True,
                delivery=common_pb2.PREVIEW_DELIVERY_URL,
            ),
            timeout=30, metadata=metadata,
        )  # fmt: skip
        print(
            f"recommendation {reply.recommendation_id} ({reply.assignment.variant or 'no experiment'})"
        )
        for item in reply.items:
            preview = item.preview
            status = common_pb2.PreviewStatus.Name(preview.status)
            print(f"  {item.rank}. {item.garment.garment_id} {item.garment.title!r}: {status} "
                  f"{preview.url or preview.reason}")  # fmt: skip
        if not reply.items:
            return 1
        bought = events_pb2.Event(
            event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_PURCHASE, user_id="shopper-42",
            garment_id=reply.items[0].garment.garment_id, recommendation_id=reply.recommendation_id,
            value_minor=reply.items[0].garment.price_minor,
        )  # fmt: skip
        tracked = gateway.Track(
            gateway_pb2.TrackRequest(events=[bought]), timeout=10, metadata=metadata
        )
        print(f"purchase tracked: stored={tracked.stored} duplicates={tracked.duplicates}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
