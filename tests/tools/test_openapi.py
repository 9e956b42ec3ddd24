"""The JSON front's OpenAPI document is generated from the protos and kept fresh, and it
describes every field the gateway's messages have, as protobuf's JSON mapping names them."""

from __future__ import annotations

import json

from drape.v1 import gateway_pb2
from tools.openapi import OUT, render


def test_the_document_is_fresh():
    assert OUT.read_text() == render(), "run python tools/openapi.py"


def test_every_message_and_enum_reached_from_the_gateway_is_described():
    document = json.loads(OUT.read_text())
    schemas = document["components"]["schemas"]
    seen, todo = set(), list(gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods)
    messages = [m.input_type for m in todo] + [m.output_type for m in todo]
    while messages:
        message = messages.pop()
        if message.full_name in seen or message.full_name.startswith("google.protobuf"):
            continue
        seen.add(message.full_name)
        if message.GetOptions().map_entry:
            continue
        name = message.full_name.removeprefix("drape.v1.").replace(".", "_")
        assert set(schemas[name]["properties"]) == {f.json_name for f in message.fields}, name
        for field in message.fields:
            if field.message_type is not None:
                messages.append(field.message_type)
            if field.enum_type is not None:
                enum = field.enum_type.full_name.removeprefix("drape.v1.").replace(".", "_")
                assert schemas[enum]["enum"] == [v.name for v in field.enum_type.values]
    assert schemas["GatewayServiceRecommendRequest"]["properties"]["userId"]["type"] == "string"
    assert schemas["Garment"]["properties"]["priceMinor"]["type"] == "string"  # int64
    assert schemas["Image"]["properties"]["data"]["format"] == "byte"
    url = schemas["Preview"]["properties"]["urlExpiresAt"]
    assert url["format"] == "date-time"
    assert "signed" in schemas["Preview"]["properties"]["url"]["description"]
