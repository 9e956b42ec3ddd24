from drape.v1 import common_pb2 as _common_pb2
from drape.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GatewayServiceRecommendRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "k", "context", "photo", "previews", "preview_limit", "full_size_previews", "min_preview_quality", "delivery")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FULL_SIZE_PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    MIN_PREVIEW_QUALITY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    k: int
    context: _common_pb2.RecommendContext
    photo: _common_pb2.Image
    previews: bool
    preview_limit: int
    full_size_previews: bool
    min_preview_quality: float
    delivery: _common_pb2.PreviewDelivery
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Union[_common_pb2.RecommendContext, _Mapping]] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., previews: bool = ..., preview_limit: _Optional[int] = ..., full_size_previews: bool = ..., min_preview_quality: _Optional[float] = ..., delivery: _Optional[_Union[_common_pb2.PreviewDelivery, str]] = ...) -> None: ...

class GatewayServiceRecommendResponse(_message.Message):
    __slots__ = ("request_id", "recommendation_id", "assignment", "items", "model_version", "photo", "assignments")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    recommendation_id: str
    assignment: _common_pb2.ExperimentAssignment
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.RecommendedGarment]
    model_version: str
    photo: PhotoUse
    assignments: _containers.RepeatedCompositeFieldContainer[_common_pb2.ExperimentAssignment]
    def __init__(self, request_id: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., assignment: _Optional[_Union[_common_pb2.ExperimentAssignment, _Mapping]] = ..., items: _Optional[_Iterable[_Union[_common_pb2.RecommendedGarment, _Mapping]]] = ..., model_version: _Optional[str] = ..., photo: _Optional[_Union[PhotoUse, _Mapping]] = ..., assignments: _Optional[_Iterable[_Union[_common_pb2.ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class PhotoUse(_message.Message):
    __slots__ = ("used", "reason", "model_version")
    USED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    used: bool
    reason: str
    model_version: str
    def __init__(self, used: bool = ..., reason: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class TryOnRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "photo", "garment_id", "garment_image", "full_size", "min_preview_quality", "delivery")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GARMENT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    FULL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_PREVIEW_QUALITY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    photo: _common_pb2.Image
    garment_id: str
    garment_image: _common_pb2.Image
    full_size: bool
    min_preview_quality: float
    delivery: _common_pb2.PreviewDelivery
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., photo: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., garment_id: _Optional[str] = ..., garment_image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., full_size: bool = ..., min_preview_quality: _Optional[float] = ..., delivery: _Optional[_Union[_common_pb2.PreviewDelivery, str]] = ...) -> None: ...

class TryOnResponse(_message.Message):
    __slots__ = ("request_id", "preview")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    preview: _common_pb2.Preview
    def __init__(self, request_id: _Optional[str] = ..., preview: _Optional[_Union[_common_pb2.Preview, _Mapping]] = ...) -> None: ...

class TrackRequest(_message.Message):
    __slots__ = ("request_id", "events", "allow_partial")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    allow_partial: bool
    def __init__(self, request_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., allow_partial: bool = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("request_id", "stored", "duplicates", "rejected", "results")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    stored: int
    duplicates: int
    rejected: int
    results: _containers.RepeatedCompositeFieldContainer[_events_pb2.EventResult]
    def __init__(self, request_id: _Optional[str] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ..., results: _Optional[_Iterable[_Union[_events_pb2.EventResult, _Mapping]]] = ...) -> None: ...
