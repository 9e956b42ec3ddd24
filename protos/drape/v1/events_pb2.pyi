from drape.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_IMPRESSION: _ClassVar[EventType]
    EVENT_TYPE_VIEW: _ClassVar[EventType]
    EVENT_TYPE_TRYON_VIEW: _ClassVar[EventType]
    EVENT_TYPE_ADD_TO_CART: _ClassVar[EventType]
    EVENT_TYPE_PURCHASE: _ClassVar[EventType]
    EVENT_TYPE_RATING: _ClassVar[EventType]

class EventOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_OUTCOME_UNSPECIFIED: _ClassVar[EventOutcome]
    EVENT_OUTCOME_STORED: _ClassVar[EventOutcome]
    EVENT_OUTCOME_DUPLICATE: _ClassVar[EventOutcome]
    EVENT_OUTCOME_REJECTED: _ClassVar[EventOutcome]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_IMPRESSION: EventType
EVENT_TYPE_VIEW: EventType
EVENT_TYPE_TRYON_VIEW: EventType
EVENT_TYPE_ADD_TO_CART: EventType
EVENT_TYPE_PURCHASE: EventType
EVENT_TYPE_RATING: EventType
EVENT_OUTCOME_UNSPECIFIED: EventOutcome
EVENT_OUTCOME_STORED: EventOutcome
EVENT_OUTCOME_DUPLICATE: EventOutcome
EVENT_OUTCOME_REJECTED: EventOutcome

class Event(_message.Message):
    __slots__ = ("event_id", "type", "user_id", "garment_id", "occurred_at", "experiment", "variant", "rating", "recommendation_id", "value_minor")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_MINOR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: EventType
    user_id: str
    garment_id: str
    occurred_at: _timestamp_pb2.Timestamp
    experiment: str
    variant: str
    rating: int
    recommendation_id: str
    value_minor: int
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., user_id: _Optional[str] = ..., garment_id: _Optional[str] = ..., occurred_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., experiment: _Optional[str] = ..., variant: _Optional[str] = ..., rating: _Optional[int] = ..., recommendation_id: _Optional[str] = ..., value_minor: _Optional[int] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("event_id", "outcome", "field", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: EventOutcome
    field: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[EventOutcome, str]] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordRequest(_message.Message):
    __slots__ = ("request_id", "events", "allow_partial")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    events: _containers.RepeatedCompositeFieldContainer[Event]
    allow_partial: bool
    def __init__(self, request_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., allow_partial: bool = ...) -> None: ...

class RecordResponse(_message.Message):
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
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    def __init__(self, request_id: _Optional[str] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ...) -> None: ...

class ExposedItem(_message.Message):
    __slots__ = ("garment_id", "rank", "preview_status")
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    garment_id: str
    rank: int
    preview_status: _common_pb2.PreviewStatus
    def __init__(self, garment_id: _Optional[str] = ..., rank: _Optional[int] = ..., preview_status: _Optional[_Union[_common_pb2.PreviewStatus, str]] = ...) -> None: ...

class ExposureArm(_message.Message):
    __slots__ = ("experiment", "variant", "version")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    variant: str
    version: str
    def __init__(self, experiment: _Optional[str] = ..., variant: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Exposure(_message.Message):
    __slots__ = ("recommendation_id", "user_id", "served_at", "arms", "strategy", "model_version", "items", "latency_ms")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVED_AT_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    user_id: str
    served_at: _timestamp_pb2.Timestamp
    arms: _containers.RepeatedCompositeFieldContainer[ExposureArm]
    strategy: str
    model_version: str
    items: _containers.RepeatedCompositeFieldContainer[ExposedItem]
    latency_ms: float
    def __init__(self, recommendation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., served_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., arms: _Optional[_Iterable[_Union[ExposureArm, _Mapping]]] = ..., strategy: _Optional[str] = ..., model_version: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ExposedItem, _Mapping]]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class LogExposuresRequest(_message.Message):
    __slots__ = ("request_id", "exposures")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPOSURES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    exposures: _containers.RepeatedCompositeFieldContainer[Exposure]
    def __init__(self, request_id: _Optional[str] = ..., exposures: _Optional[_Iterable[_Union[Exposure, _Mapping]]] = ...) -> None: ...

class LogExposuresResponse(_message.Message):
    __slots__ = ("request_id", "stored", "duplicates")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    stored: int
    duplicates: int
    def __init__(self, request_id: _Optional[str] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...
