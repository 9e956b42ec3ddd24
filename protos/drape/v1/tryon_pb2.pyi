from drape.v1 import common_pb2 as _common_pb2
from drape.v1 import features_pb2 as _features_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "photo", "garment_id", "garment_image")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GARMENT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    photo: _common_pb2.Image
    garment_id: str
    garment_image: _common_pb2.Image
    def __init__(self, request_id: _Optional[str] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., garment_id: _Optional[str] = ..., garment_image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("request_id", "rendered", "garment_mask", "crop", "analysis", "model_version", "timings", "quality")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RENDERED_FIELD_NUMBER: _ClassVar[int]
    GARMENT_MASK_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    rendered: _common_pb2.Image
    garment_mask: _common_pb2.Image
    crop: _common_pb2.BoundingBox
    analysis: _features_pb2.PersonAnalysis
    model_version: str
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    quality: _common_pb2.PreviewQuality
    def __init__(self, request_id: _Optional[str] = ..., rendered: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., garment_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., crop: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., analysis: _Optional[_Union[_features_pb2.PersonAnalysis, _Mapping]] = ..., model_version: _Optional[str] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., quality: _Optional[_Union[_common_pb2.PreviewQuality, _Mapping]] = ...) -> None: ...
