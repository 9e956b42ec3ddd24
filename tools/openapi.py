"""Generates the OpenAPI document of the JSON front (`drape web`) from the protos.

    python tools/openapi.py          # (re)write services/web/openapi.json
    python tools/openapi.py --check  # exit 1 if it is stale

Every gateway RPC is ``POST /v1/<method in kebab case>`` with its request message as the body
and its response message as the reply, in protobuf's JSON mapping (lowerCamelCase names,
enums by name, 64-bit integers and bytes as strings); the descriptions are the protos'
comments. The preview endpoint is added by hand below, as the web front serves it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from generated import write_or_check  # noqa: E402
from protogen import PROTO_ROOT, proto_files  # noqa: E402

from drape.services.web.app import path_of  # noqa: E402

OUT = ROOT / "services" / "web" / "openapi.json"
SERVICE = "drape.v1.GatewayService"
F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # 64-bit integers are strings in protobuf's JSON mapping (numbers are accepted too).
    F.TYPE_INT64: {"type": "string", "format": "int64"},
    F.TYPE_SINT64: {"type": "string", "format": "int64"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "format": "byte", "description": "base64"},
}
_WELL_KNOWN = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The protos compiled with their comments (protoc's source info)."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "drape.pb"
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--descriptor_set_out={out}",
                "--include_source_info", "--include_imports",
                *(str(p.relative_to(PROTO_ROOT)) for p in proto_files())]  # fmt: skip
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comment(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines())


class _Builder:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[tuple[str, tuple[int, ...]], str] = {}
        self.paths: dict[str, tuple[str, tuple[int, ...]]] = {}
        self.services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
        for file in files.file:
            for location in file.source_code_info.location:
                if location.leading_comments:
                    self.comments[(file.name, tuple(location.path))] = _comment(
                        location.leading_comments
                    )
            prefix = f".{file.package}"
            for i, message in enumerate(file.message_type):
                self._message(file.name, prefix, message, (4, i))
            for i, enum in enumerate(file.enum_type):
                self.enums[f"{prefix}.{enum.name}"] = enum
                self.paths[f"{prefix}.{enum.name}"] = (file.name, (5, i))
            for i, service in enumerate(file.service):
                self.services[f"{file.package}.{service.name}"] = service
                self.paths[f"{file.package}.{service.name}"] = (file.name, (6, i))

    def _message(self, file: str, prefix: str, message: descriptor_pb2.DescriptorProto,
                 path: tuple[int, ...]) -> None:  # fmt: skip
        name = f"{prefix}.{message.name}"
        self.messages[name], self.paths[name] = message, (file, path)
        for i, nested in enumerate(message.nested_type):
            self._message(file, name, nested, (*path, 3, i))
        for i, enum in enumerate(message.enum_type):
            self.enums[f"{name}.{enum.name}"] = enum
            self.paths[f"{name}.{enum.name}"] = (file, (*path, 4, i))

    def comment(self, name: str, *tail: int) -> str:
        file, path = self.paths[name]
        return self.comments.get((file, (*path, *tail)), "")

    def schema_name(self, name: str) -> str:
        return name.removeprefix(".drape.v1.").replace(".", "_")

    def field(self, owner: str, index: int, field: descriptor_pb2.FieldDescriptorProto,
              wanted: set[str]) -> dict:  # fmt: skip
        if field.type == F.TYPE_MESSAGE:
            entry = self.messages.get(field.type_name)
            if entry is not None and entry.options.map_entry:
                value = self.field(field.type_name, 1, entry.field[1], wanted)
                schema: dict = {"type": "object", "additionalProperties": value}
            elif field.type_name in _WELL_KNOWN:
                schema = dict(_WELL_KNOWN[field.type_name])
            else:
                wanted.add(field.type_name)
                schema = {"$ref": f"#/components/schemas/{self.schema_name(field.type_name)}"}
        elif field.type == F.TYPE_ENUM:
            wanted.add(field.type_name)
            schema = {"$ref": f"#/components/schemas/{self.schema_name(field.type_name)}"}
        else:
            schema = dict(_SCALARS[field.type])
        if field.label == F.LABEL_REPEATED and "additionalProperties" not in schema:
            schema = {"type": "array", "items": schema}
        description = self.comment(owner, 2, index)
        if description:
            schema = {"allOf": [schema], "description": description} if "$ref" in schema else {
                **schema, "description": description}  # fmt: skip
        return schema

    def component(self, name: str, wanted: set[str]) -> dict:
        if name in self.enums:
            enum = self.enums[name]
            return {"type": "string", "enum": [v.name for v in enum.value],
                    "description": self.comment(name)}  # fmt: skip
        message = self.messages[name]
        properties = {}
        for i, field in enumerate(message.field):
            properties[field.json_name] = self.field(name, i, field, wanted)
        schema: dict = {"type": "object", "properties": properties}
        oneofs = {}
        for field in message.field:
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneofs.setdefault(message.oneof_decl[field.oneof_index].name, []).append(
                    field.json_name
                )
        if oneofs:
            schema["description"] = " ".join(
                f"At most one of {', '.join(names)}." for names in oneofs.values()
            )
        text = self.comment(name)
        if text:
            schema["description"] = (text + " " + schema.get("description", "")).strip()
        return schema


def build(files: descriptor_pb2.FileDescriptorSet) -> dict:
    builder = _Builder(files)
    service = builder.services[SERVICE]
    wanted: set[str] = set()
    paths: dict[str, dict] = {}
    for i, method in enumerate(service.method):
        route = path_of(method.name)
        wanted |= {method.input_type, method.output_type}
        paths[route] = {"post": {
            "operationId": method.name,
            "summary": builder.comment(SERVICE, 2, i),
            "parameters": [{"$ref": "#/components/parameters/RequestId"},
                           {"$ref": "#/components/parameters/Timeout"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/{builder.schema_name(method.input_type)}"}}}},
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/{builder.schema_name(method.output_type)}"}}}},
                "default": {"$ref": "#/components/responses/Error"},
            },
        }}  # fmt: skip
    paths["/v1/previews/{digest}"] = {"get": {
        "operationId": "GetPreview",
        "summary": "A stored try-on preview, by the signed URL a reply carried (Preview.url). "
                   "Immutable: cache it until the URL expires.",
        "security": [],
        "parameters": [
            {"name": "digest", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
            {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
            {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "size", "in": "query", "schema": {"type": "string", "default": "full"},
             "description": "'full', or one of the configured sizes (previews.sizes; 512 by "
                            "default): the long side in pixels."},
            {"name": "format", "in": "query",
             "schema": {"type": "string", "enum": ["jpeg", "webp"], "default": "jpeg"}},
        ],
        "responses": {
            "200": {"description": "The image (ETag; Cache-Control: immutable).",
                    "content": {"image/jpeg": {}, "image/webp": {}}},
            "304": {"description": "Not modified (If-None-Match)."},
            "403": {"description": "A bad or expired signature."},
            "404": {"description": "No such preview."},
        },
    }}  # fmt: skip
    schemas: dict[str, dict] = {}
    while wanted:
        name = wanted.pop()
        key = builder.schema_name(name)
        if key not in schemas:
            schemas[key] = builder.component(name, wanted)
    schemas["Error"] = {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "integer", "description": "The HTTP status."},
        "status": {"type": "string", "description": "The gRPC status name (INVALID_ARGUMENT, ...)."},
        "message": {"type": "string", "description": "The gateway's message, as on gRPC."},
    }}}}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Drape storefront API (JSON)",
            "version": "v1",
            "description": "The gateway's RPCs (package drape.v1) as JSON over HTTP, "
            "served by `drape web`. Generated from the protos by "
            "tools/openapi.py.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": {
                "RequestId": {
                    "name": "X-Request-Id",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "Your request's id (1-128 of A-Za-z0-9._:/+=-); "
                    "echoed back, and in every service's logs.",
                },
                "Timeout": {
                    "name": "X-Request-Timeout-Ms",
                    "in": "header",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 600000},
                    "description": "The call's deadline (default web.call_timeout_s).",
                },
            },
            "responses": {
                "Error": {
                    "description": "A refusal, with the gRPC status it maps.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A storefront API key (`drape keys "
                    "new`), where the gateway requires one.",
                }
            },
        },
        "security": [{"apiKey": []}, {}],
    }


def render() -> str:
    return json.dumps(build(descriptor_set()), indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUT, render, "tools/openapi.py", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
