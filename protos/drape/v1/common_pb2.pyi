from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_POPULARITY: _ClassVar[Channel]
    CHANNEL_CATEGORY_POPULARITY: _ClassVar[Channel]
    CHANNEL_COLLABORATIVE: _ClassVar[Channel]
    CHANNEL_VISUAL: _ClassVar[Channel]
    CHANNEL_PHOTO: _ClassVar[Channel]
    CHANNEL_SIMILAR: _ClassVar[Channel]
    CHANNEL_SEQUENTIAL: _ClassVar[Channel]
    CHANNEL_ENGAGEMENT: _ClassVar[Channel]
    CHANNEL_REPURCHASE: _ClassVar[Channel]

class PreviewStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREVIEW_STATUS_UNSPECIFIED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_OK: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_CACHED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_TIMED_OUT: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_UNAVAILABLE: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_FAILED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_SKIPPED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_UNSUPPORTED: _ClassVar[PreviewStatus]

class PreviewDelivery(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREVIEW_DELIVERY_UNSPECIFIED: _ClassVar[PreviewDelivery]
    PREVIEW_DELIVERY_URL: _ClassVar[PreviewDelivery]
    PREVIEW_DELIVERY_INLINE: _ClassVar[PreviewDelivery]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_POPULARITY: Channel
CHANNEL_CATEGORY_POPULARITY: Channel
CHANNEL_COLLABORATIVE: Channel
CHANNEL_VISUAL: Channel
CHANNEL_PHOTO: Channel
CHANNEL_SIMILAR: Channel
CHANNEL_SEQUENTIAL: Channel
CHANNEL_ENGAGEMENT: Channel
CHANNEL_REPURCHASE: Channel
PREVIEW_STATUS_UNSPECIFIED: PreviewStatus
PREVIEW_STATUS_OK: PreviewStatus
PREVIEW_STATUS_CACHED: PreviewStatus
PREVIEW_STATUS_TIMED_OUT: PreviewStatus
PREVIEW_STATUS_UNAVAILABLE: PreviewStatus
PREVIEW_STATUS_FAILED: PreviewStatus
PREVIEW_STATUS_SKIPPED: PreviewStatus
PREVIEW_STATUS_UNSUPPORTED: PreviewStatus
PREVIEW_DELIVERY_UNSPECIFIED: PreviewDelivery
PREVIEW_DELIVERY_URL: PreviewDelivery
PREVIEW_DELIVERY_INLINE: PreviewDelivery

class Image(_message.Message):
    __slots__ = ("data", "media_type", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Garment(_message.Message):
    __slots__ = ("garment_id", "title", "category", "price_minor", "currency", "in_stock", "attributes", "image_uri")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GARMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    garment_id: str
    title: str
    category: str
    price_minor: int
    currency: str
    in_stock: bool
    attributes: _containers.ScalarMap[str, str]
    image_uri: str
    def __init__(self, garment_id: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., price_minor: _Optional[int] = ..., currency: _Optional[str] = ..., in_stock: bool = ..., attributes: _Optional[_Mapping[str, str]] = ..., image_uri: _Optional[str] = ...) -> None: ...

class ChannelScore(_message.Message):
    __slots__ = ("channel", "score", "rank")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    score: float
    rank: int
    def __init__(self, channel: _Optional[_Union[Channel, str]] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ...) -> None: ...

class ExperimentAssignment(_message.Message):
    __slots__ = ("experiment", "variant", "strategy", "previews_enabled", "version")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PREVIEWS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    variant: str
    strategy: str
    previews_enabled: bool
    version: str
    def __init__(self, experiment: _Optional[str] = ..., variant: _Optional[str] = ..., strategy: _Optional[str] = ..., previews_enabled: bool = ..., version: _Optional[str] = ...) -> None: ...

class PreviewQuality(_message.Message):
    __slots__ = ("score", "coverage", "connectedness", "colour_delta_e", "pattern_ssim", "sharpness", "short", "advice", "face_ssim", "background_difference")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    CONNECTEDNESS_FIELD_NUMBER: _ClassVar[int]
    COLOUR_DELTA_E_FIELD_NUMBER: _ClassVar[int]
    PATTERN_SSIM_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    SHORT_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    FACE_SSIM_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    score: float
    coverage: float
    connectedness: float
    colour_delta_e: float
    pattern_ssim: float
    sharpness: float
    short: _containers.RepeatedScalarFieldContainer[str]
    advice: str
    face_ssim: float
    background_difference: float
    def __init__(self, score: _Optional[float] = ..., coverage: _Optional[float] = ..., connectedness: _Optional[float] = ..., colour_delta_e: _Optional[float] = ..., pattern_ssim: _Optional[float] = ..., sharpness: _Optional[float] = ..., short: _Optional[_Iterable[str]] = ..., advice: _Optional[str] = ..., face_ssim: _Optional[float] = ..., background_difference: _Optional[float] = ...) -> None: ...

class Preview(_message.Message):
    __slots__ = ("status", "reason", "image", "model_version", "latency_ms", "quality", "url", "url_expires_at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    URL_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    status: PreviewStatus
    reason: str
    image: Image
    model_version: str
    latency_ms: float
    quality: PreviewQuality
    url: str
    url_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[PreviewStatus, str]] = ..., reason: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., model_version: _Optional[str] = ..., latency_ms: _Optional[float] = ..., quality: _Optional[_Union[PreviewQuality, _Mapping]] = ..., url: _Optional[str] = ..., url_expires_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecommendedGarment(_message.Message):
    __slots__ = ("garment", "score", "rank", "channels", "preview")
    GARMENT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    garment: Garment
    score: float
    rank: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelScore]
    preview: Preview
    def __init__(self, garment: _Optional[_Union[Garment, _Mapping]] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelScore, _Mapping]]] = ..., preview: _Optional[_Union[Preview, _Mapping]] = ...) -> None: ...

class RecommendContext(_message.Message):
    __slots__ = ("categories", "exclude_categories", "exclude_garment_ids", "include_out_of_stock", "surface")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_GARMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OUT_OF_STOCK_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    exclude_categories: _containers.RepeatedScalarFieldContainer[str]
    exclude_garment_ids: _containers.RepeatedScalarFieldContainer[str]
    include_out_of_stock: bool
    surface: str
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., exclude_categories: _Optional[_Iterable[str]] = ..., exclude_garment_ids: _Optional[_Iterable[str]] = ..., include_out_of_stock: bool = ..., surface: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "milliseconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MILLISECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    milliseconds: float
    def __init__(self, stage: _Optional[str] = ..., milliseconds: _Optional[float] = ...) -> None: ...
