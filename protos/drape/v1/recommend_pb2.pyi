from drape.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "k", "context", "photo_embedding")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PHOTO_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    k: int
    context: _common_pb2.RecommendContext
    photo_embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Union[_common_pb2.RecommendContext, _Mapping]] = ..., photo_embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("request_id", "recommendation_id", "assignment", "items", "model_version", "assignments")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    recommendation_id: str
    assignment: _common_pb2.ExperimentAssignment
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.RecommendedGarment]
    model_version: str
    assignments: _containers.RepeatedCompositeFieldContainer[_common_pb2.ExperimentAssignment]
    def __init__(self, request_id: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., assignment: _Optional[_Union[_common_pb2.ExperimentAssignment, _Mapping]] = ..., items: _Optional[_Iterable[_Union[_common_pb2.RecommendedGarment, _Mapping]]] = ..., model_version: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[_common_pb2.ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class SimilarGarmentsRequest(_message.Message):
    __slots__ = ("request_id", "garment_id", "k", "context")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    garment_id: str
    k: int
    context: _common_pb2.RecommendContext
    def __init__(self, request_id: _Optional[str] = ..., garment_id: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Union[_common_pb2.RecommendContext, _Mapping]] = ...) -> None: ...

class SimilarGarmentsResponse(_message.Message):
    __slots__ = ("request_id", "items", "model_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.RecommendedGarment]
    model_version: str
    def __init__(self, request_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[_common_pb2.RecommendedGarment, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...
