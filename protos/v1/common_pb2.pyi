from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_FORMAT_UNSPECIFIED: _ClassVar[SampleFormat]
    PCM_S16LE: _ClassVar[SampleFormat]
    PCM_S32LE: _ClassVar[SampleFormat]
    PCM_F32LE: _ClassVar[SampleFormat]

class EnrollMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENROLL_MODE_UNSPECIFIED: _ClassVar[EnrollMode]
    CREATE: _ClassVar[EnrollMode]
    APPEND: _ClassVar[EnrollMode]
    REPLACE: _ClassVar[EnrollMode]
SAMPLE_FORMAT_UNSPECIFIED: SampleFormat
PCM_S16LE: SampleFormat
PCM_S32LE: SampleFormat
PCM_F32LE: SampleFormat
ENROLL_MODE_UNSPECIFIED: EnrollMode
CREATE: EnrollMode
APPEND: EnrollMode
REPLACE: EnrollMode

class RawPcm(_message.Message):
    __slots__ = ("data", "sample_rate", "channels", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sample_rate: int
    channels: int
    format: SampleFormat
    def __init__(self, data: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., format: _Optional[_Union[SampleFormat, str]] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("encoded", "pcm")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: RawPcm
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[_Union[RawPcm, _Mapping]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "model")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model: ModelRef
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("input_seconds", "speech_seconds", "input_sample_rate")
    INPUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    input_seconds: float
    speech_seconds: float
    input_sample_rate: int
    def __init__(self, input_seconds: _Optional[float] = ..., speech_seconds: _Optional[float] = ..., input_sample_rate: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("score", "accepted", "threshold", "target_far")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    score: float
    accepted: bool
    threshold: float
    target_far: float
    def __init__(self, score: _Optional[float] = ..., accepted: _Optional[bool] = ..., threshold: _Optional[float] = ..., target_far: _Optional[float] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("id", "score", "accepted")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    accepted: bool
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., accepted: _Optional[bool] = ...) -> None: ...

class IdentityInfo(_message.Message):
    __slots__ = ("id", "num_samples", "created_at", "updated_at", "model", "has_media", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HAS_MEDIA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    num_samples: int
    created_at: float
    updated_at: float
    model: ModelRef
    has_media: bool
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., num_samples: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., has_media: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...
