from protos.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedSpeakerRequest(_message.Message):
    __slots__ = ("audio",)
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio: _common_pb2.Audio
    def __init__(self, audio: _Optional[_Union[_common_pb2.Audio, _Mapping]] = ...) -> None: ...

class EmbedSpeakerResponse(_message.Message):
    __slots__ = ("embedding", "audio_info")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INFO_FIELD_NUMBER: _ClassVar[int]
    embedding: _common_pb2.Embedding
    audio_info: _common_pb2.AudioInfo
    def __init__(self, embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., audio_info: _Optional[_Union[_common_pb2.AudioInfo, _Mapping]] = ...) -> None: ...

class EnrollSpeakerRequest(_message.Message):
    __slots__ = ("speaker_id", "audio", "mode", "store_media", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    STORE_MEDIA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    audio: _containers.RepeatedCompositeFieldContainer[_common_pb2.Audio]
    mode: _common_pb2.EnrollMode
    store_media: bool
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, speaker_id: _Optional[str] = ..., audio: _Optional[_Iterable[_Union[_common_pb2.Audio, _Mapping]]] = ..., mode: _Optional[_Union[_common_pb2.EnrollMode, str]] = ..., store_media: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EnrollSpeakerResponse(_message.Message):
    __slots__ = ("speaker_id", "num_samples", "created", "model", "sequence", "audio_info")
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INFO_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    num_samples: int
    created: bool
    model: _common_pb2.ModelRef
    sequence: int
    audio_info: _containers.RepeatedCompositeFieldContainer[_common_pb2.AudioInfo]
    def __init__(self, speaker_id: _Optional[str] = ..., num_samples: _Optional[int] = ..., created: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., sequence: _Optional[int] = ..., audio_info: _Optional[_Iterable[_Union[_common_pb2.AudioInfo, _Mapping]]] = ...) -> None: ...

class VerifySpeakerRequest(_message.Message):
    __slots__ = ("speaker_id", "audio", "embedding", "target_far")
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    audio: _common_pb2.Audio
    embedding: _common_pb2.Embedding
    target_far: float
    def __init__(self, speaker_id: _Optional[str] = ..., audio: _Optional[_Union[_common_pb2.Audio, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., target_far: _Optional[float] = ...) -> None: ...

class VerifySpeakerResponse(_message.Message):
    __slots__ = ("speaker_id", "decision", "model", "audio_info", "scoring")
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INFO_FIELD_NUMBER: _ClassVar[int]
    SCORING_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    decision: _common_pb2.Decision
    model: _common_pb2.ModelRef
    audio_info: _common_pb2.AudioInfo
    scoring: str
    def __init__(self, speaker_id: _Optional[str] = ..., decision: _Optional[_Union[_common_pb2.Decision, _Mapping]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., audio_info: _Optional[_Union[_common_pb2.AudioInfo, _Mapping]] = ..., scoring: _Optional[str] = ...) -> None: ...

class IdentifySpeakerRequest(_message.Message):
    __slots__ = ("audio", "embedding", "top_k", "target_far")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    audio: _common_pb2.Audio
    embedding: _common_pb2.Embedding
    top_k: int
    target_far: float
    def __init__(self, audio: _Optional[_Union[_common_pb2.Audio, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., top_k: _Optional[int] = ..., target_far: _Optional[float] = ...) -> None: ...

class IdentifySpeakerResponse(_message.Message):
    __slots__ = ("candidates", "identified", "best_id", "threshold", "target_far", "model", "audio_info", "gallery_size", "scoring")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIED_FIELD_NUMBER: _ClassVar[int]
    BEST_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INFO_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCORING_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    identified: bool
    best_id: str
    threshold: float
    target_far: float
    model: _common_pb2.ModelRef
    audio_info: _common_pb2.AudioInfo
    gallery_size: int
    scoring: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., identified: _Optional[bool] = ..., best_id: _Optional[str] = ..., threshold: _Optional[float] = ..., target_far: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., audio_info: _Optional[_Union[_common_pb2.AudioInfo, _Mapping]] = ..., gallery_size: _Optional[int] = ..., scoring: _Optional[str] = ...) -> None: ...

class DeleteSpeakerRequest(_message.Message):
    __slots__ = ("speaker_id",)
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    def __init__(self, speaker_id: _Optional[str] = ...) -> None: ...

class DeleteSpeakerResponse(_message.Message):
    __slots__ = ("speaker_id",)
    SPEAKER_ID_FIELD_NUMBER: _ClassVar[int]
    speaker_id: str
    def __init__(self, speaker_id: _Optional[str] = ...) -> None: ...

class ListSpeakersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSpeakersResponse(_message.Message):
    __slots__ = ("speakers", "next_page_token", "total")
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    speakers: _containers.RepeatedCompositeFieldContainer[_common_pb2.IdentityInfo]
    next_page_token: str
    total: int
    def __init__(self, speakers: _Optional[_Iterable[_Union[_common_pb2.IdentityInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...
