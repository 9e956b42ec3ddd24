from drape.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PersonStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSON_STATUS_UNSPECIFIED: _ClassVar[PersonStatus]
    PERSON_STATUS_OK: _ClassVar[PersonStatus]
    PERSON_STATUS_NO_PERSON: _ClassVar[PersonStatus]
    PERSON_STATUS_MULTIPLE_PERSONS: _ClassVar[PersonStatus]
    PERSON_STATUS_CROPPED_BODY: _ClassVar[PersonStatus]
    PERSON_STATUS_FACING_SIDEWAYS: _ClassVar[PersonStatus]
    PERSON_STATUS_TORSO_OCCLUDED: _ClassVar[PersonStatus]
PERSON_STATUS_UNSPECIFIED: PersonStatus
PERSON_STATUS_OK: PersonStatus
PERSON_STATUS_NO_PERSON: PersonStatus
PERSON_STATUS_MULTIPLE_PERSONS: PersonStatus
PERSON_STATUS_CROPPED_BODY: PersonStatus
PERSON_STATUS_FACING_SIDEWAYS: PersonStatus
PERSON_STATUS_TORSO_OCCLUDED: PersonStatus

class Embedding(_message.Message):
    __slots__ = ("values", "model_version")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model_version: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model_version: _Optional[str] = ...) -> None: ...

class EmbedGarmentsRequest(_message.Message):
    __slots__ = ("request_id", "garment_id", "image")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    garment_id: str
    image: _common_pb2.Image
    def __init__(self, request_id: _Optional[str] = ..., garment_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...

class EmbedGarmentsResponse(_message.Message):
    __slots__ = ("garment_id", "embedding", "error")
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    garment_id: str
    embedding: Embedding
    error: str
    def __init__(self, garment_id: _Optional[str] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class EmbedUserRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "photo", "history_garment_ids")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    HISTORY_GARMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    photo: _common_pb2.Image
    history_garment_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., history_garment_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedUserResponse(_message.Message):
    __slots__ = ("request_id", "photo_embedding", "history_embedding", "analysis")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    HISTORY_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    photo_embedding: Embedding
    history_embedding: Embedding
    analysis: PersonAnalysis
    def __init__(self, request_id: _Optional[str] = ..., photo_embedding: _Optional[_Union[Embedding, _Mapping]] = ..., history_embedding: _Optional[_Union[Embedding, _Mapping]] = ..., analysis: _Optional[_Union[PersonAnalysis, _Mapping]] = ...) -> None: ...

class AnalyzePersonRequest(_message.Message):
    __slots__ = ("request_id", "photo", "include_masks")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MASKS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    photo: _common_pb2.Image
    include_masks: bool
    def __init__(self, request_id: _Optional[str] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., include_masks: bool = ...) -> None: ...

class AnalyzePersonResponse(_message.Message):
    __slots__ = ("request_id", "analysis")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    analysis: PersonAnalysis
    def __init__(self, request_id: _Optional[str] = ..., analysis: _Optional[_Union[PersonAnalysis, _Mapping]] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("name", "x", "y", "visibility")
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    x: float
    y: float
    visibility: float
    def __init__(self, name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., visibility: _Optional[float] = ...) -> None: ...

class PersonAnalysis(_message.Message):
    __slots__ = ("status", "reason", "width", "height", "keypoints", "face_box", "upper_body_box", "person_mask", "upper_body_mask", "agnostic_person")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    FACE_BOX_FIELD_NUMBER: _ClassVar[int]
    UPPER_BODY_BOX_FIELD_NUMBER: _ClassVar[int]
    PERSON_MASK_FIELD_NUMBER: _ClassVar[int]
    UPPER_BODY_MASK_FIELD_NUMBER: _ClassVar[int]
    AGNOSTIC_PERSON_FIELD_NUMBER: _ClassVar[int]
    status: PersonStatus
    reason: str
    width: int
    height: int
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    face_box: _common_pb2.BoundingBox
    upper_body_box: _common_pb2.BoundingBox
    person_mask: _common_pb2.Image
    upper_body_mask: _common_pb2.Image
    agnostic_person: _common_pb2.Image
    def __init__(self, status: _Optional[_Union[PersonStatus, str]] = ..., reason: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ..., face_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., upper_body_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., person_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., upper_body_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., agnostic_person: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...
