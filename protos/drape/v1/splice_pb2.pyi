from drape.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlendMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLEND_MODE_UNSPECIFIED: _ClassVar[BlendMode]
    BLEND_MODE_ALPHA: _ClassVar[BlendMode]
    BLEND_MODE_MULTIBAND: _ClassVar[BlendMode]
    BLEND_MODE_POISSON: _ClassVar[BlendMode]
BLEND_MODE_UNSPECIFIED: BlendMode
BLEND_MODE_ALPHA: BlendMode
BLEND_MODE_MULTIBAND: BlendMode
BLEND_MODE_POISSON: BlendMode

class ComposeRequest(_message.Message):
    __slots__ = ("request_id", "photo", "rendered", "garment_mask", "crop", "blend", "face")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    RENDERED_FIELD_NUMBER: _ClassVar[int]
    GARMENT_MASK_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    photo: _common_pb2.Image
    rendered: _common_pb2.Image
    garment_mask: _common_pb2.Image
    crop: _common_pb2.BoundingBox
    blend: BlendMode
    face: _common_pb2.BoundingBox
    def __init__(self, request_id: _Optional[str] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., rendered: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., garment_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., crop: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., blend: _Optional[_Union[BlendMode, str]] = ..., face: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ...) -> None: ...

class ComposeResponse(_message.Message):
    __slots__ = ("request_id", "composite", "face_ssim", "background_difference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMPOSITE_FIELD_NUMBER: _ClassVar[int]
    FACE_SSIM_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    composite: _common_pb2.Image
    face_ssim: float
    background_difference: float
    def __init__(self, request_id: _Optional[str] = ..., composite: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., face_ssim: _Optional[float] = ..., background_difference: _Optional[float] = ...) -> None: ...
