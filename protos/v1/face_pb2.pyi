from protos.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    RGB8: _ClassVar[PixelFormat]
    BGR8: _ClassVar[PixelFormat]
    GRAY8: _ClassVar[PixelFormat]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
RGB8: PixelFormat
BGR8: PixelFormat
GRAY8: PixelFormat

class RawImage(_message.Message):
    __slots__ = ("data", "width", "height", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    width: int
    height: int
    format: PixelFormat
    def __init__(self, data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class FaceQuality(_message.Message):
    __slots__ = ("score", "probability", "size", "sharpness", "frontal")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    FRONTAL_FIELD_NUMBER: _ClassVar[int]
    score: float
    probability: float
    size: float
    sharpness: float
    frontal: float
    def __init__(self, score: _Optional[float] = ..., probability: _Optional[float] = ..., size: _Optional[float] = ..., sharpness: _Optional[float] = ..., frontal: _Optional[float] = ...) -> None: ...

class DetectedFace(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "probability", "landmarks", "quality")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    probability: float
    landmarks: _containers.RepeatedCompositeFieldContainer[Point]
    quality: FaceQuality
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., probability: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., quality: _Optional[_Union[FaceQuality, _Mapping]] = ...) -> None: ...

class ImageInfo(_message.Message):
    __slots__ = ("width", "height", "faces")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    faces: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., faces: _Optional[int] = ...) -> None: ...

class DetectFacesRequest(_message.Message):
    __slots__ = ("image", "min_probability")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    image: Image
    min_probability: float
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., min_probability: _Optional[float] = ...) -> None: ...

class DetectFacesResponse(_message.Message):
    __slots__ = ("faces", "image_info", "detector")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INFO_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    image_info: ImageInfo
    detector: _common_pb2.ModelRef
    def __init__(self, faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ..., image_info: _Optional[_Union[ImageInfo, _Mapping]] = ..., detector: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class EmbedFacesRequest(_message.Message):
    __slots__ = ("image", "aligned")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    image: Image
    aligned: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., aligned: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class FaceEmbedding(_message.Message):
    __slots__ = ("face", "embedding")
    FACE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    face: DetectedFace
    embedding: _common_pb2.Embedding
    def __init__(self, face: _Optional[_Union[DetectedFace, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ...) -> None: ...

class EmbedFacesResponse(_message.Message):
    __slots__ = ("faces", "image_info")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INFO_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceEmbedding]
    image_info: ImageInfo
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceEmbedding, _Mapping]]] = ..., image_info: _Optional[_Union[ImageInfo, _Mapping]] = ...) -> None: ...

class EnrollFaceRequest(_message.Message):
    __slots__ = ("person_id", "images", "mode", "store_media", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    STORE_MEDIA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    images: _containers.RepeatedCompositeFieldContainer[Image]
    mode: _common_pb2.EnrollMode
    store_media: bool
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, person_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., mode: _Optional[_Union[_common_pb2.EnrollMode, str]] = ..., store_media: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EnrollFaceResponse(_message.Message):
    __slots__ = ("person_id", "num_samples", "created", "model", "sequence")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    num_samples: int
    created: bool
    model: _common_pb2.ModelRef
    sequence: int
    def __init__(self, person_id: _Optional[str] = ..., num_samples: _Optional[int] = ..., created: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("image", "aligned")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    image: Image
    aligned: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., aligned: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class TrackOptions(_message.Message):
    __slots__ = ("best_frames", "min_quality", "min_frames", "progress_every")
    BEST_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    MIN_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_EVERY_FIELD_NUMBER: _ClassVar[int]
    best_frames: int
    min_quality: float
    min_frames: int
    progress_every: int
    def __init__(self, best_frames: _Optional[int] = ..., min_quality: _Optional[float] = ..., min_frames: _Optional[int] = ..., progress_every: _Optional[int] = ...) -> None: ...

class EnrollTracksRequest(_message.Message):
    __slots__ = ("track_id", "person_id", "frames", "end", "metadata", "options")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    person_id: str
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    end: bool
    metadata: _containers.ScalarMap[str, str]
    options: TrackOptions
    def __init__(self, track_id: _Optional[str] = ..., person_id: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., end: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Union[TrackOptions, _Mapping]] = ...) -> None: ...

class TrackQuality(_message.Message):
    __slots__ = ("mean_used", "min_used", "max_all", "mean_all")
    MEAN_USED_FIELD_NUMBER: _ClassVar[int]
    MIN_USED_FIELD_NUMBER: _ClassVar[int]
    MAX_ALL_FIELD_NUMBER: _ClassVar[int]
    MEAN_ALL_FIELD_NUMBER: _ClassVar[int]
    mean_used: float
    min_used: float
    max_all: float
    mean_all: float
    def __init__(self, mean_used: _Optional[float] = ..., min_used: _Optional[float] = ..., max_all: _Optional[float] = ..., mean_all: _Optional[float] = ...) -> None: ...

class TrackResult(_message.Message):
    __slots__ = ("track_id", "person_id", "accepted", "reason", "frames_received", "frames_with_face", "frames_used", "quality", "replaced", "sequence", "model")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITH_FACE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_USED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    person_id: str
    accepted: bool
    reason: str
    frames_received: int
    frames_with_face: int
    frames_used: int
    quality: TrackQuality
    replaced: bool
    sequence: int
    model: _common_pb2.ModelRef
    def __init__(self, track_id: _Optional[str] = ..., person_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., frames_received: _Optional[int] = ..., frames_with_face: _Optional[int] = ..., frames_used: _Optional[int] = ..., quality: _Optional[_Union[TrackQuality, _Mapping]] = ..., replaced: _Optional[bool] = ..., sequence: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class TrackProgress(_message.Message):
    __slots__ = ("track_id", "frames_received", "frames_with_face", "tracks_done", "frames_total")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITH_FACE_FIELD_NUMBER: _ClassVar[int]
    TRACKS_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    frames_received: int
    frames_with_face: int
    tracks_done: int
    frames_total: int
    def __init__(self, track_id: _Optional[str] = ..., frames_received: _Optional[int] = ..., frames_with_face: _Optional[int] = ..., tracks_done: _Optional[int] = ..., frames_total: _Optional[int] = ...) -> None: ...

class EnrollTracksResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: TrackProgress
    result: TrackResult
    def __init__(self, progress: _Optional[_Union[TrackProgress, _Mapping]] = ..., result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...

class VerifyFaceRequest(_message.Message):
    __slots__ = ("person_id", "image", "embedding", "target_far")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    image: Image
    embedding: _common_pb2.Embedding
    target_far: float
    def __init__(self, person_id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., target_far: _Optional[float] = ...) -> None: ...

class VerifyFaceResponse(_message.Message):
    __slots__ = ("person_id", "decision", "model", "face")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    decision: _common_pb2.Decision
    model: _common_pb2.ModelRef
    face: DetectedFace
    def __init__(self, person_id: _Optional[str] = ..., decision: _Optional[_Union[_common_pb2.Decision, _Mapping]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., face: _Optional[_Union[DetectedFace, _Mapping]] = ...) -> None: ...

class IdentifyFaceRequest(_message.Message):
    __slots__ = ("image", "embedding", "top_k", "target_far")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    image: Image
    embedding: _common_pb2.Embedding
    top_k: int
    target_far: float
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., top_k: _Optional[int] = ..., target_far: _Optional[float] = ...) -> None: ...

class IdentifyFaceResponse(_message.Message):
    __slots__ = ("candidates", "identified", "best_id", "threshold", "target_far", "model", "face", "gallery_size")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIED_FIELD_NUMBER: _ClassVar[int]
    BEST_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FAR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    identified: bool
    best_id: str
    threshold: float
    target_far: float
    model: _common_pb2.ModelRef
    face: DetectedFace
    gallery_size: int
    def __init__(self, candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., identified: _Optional[bool] = ..., best_id: _Optional[str] = ..., threshold: _Optional[float] = ..., target_far: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., face: _Optional[_Union[DetectedFace, _Mapping]] = ..., gallery_size: _Optional[int] = ...) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class DeleteFaceResponse(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class ListFacesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFacesResponse(_message.Message):
    __slots__ = ("people", "next_page_token", "total")
    PEOPLE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    people: _containers.RepeatedCompositeFieldContainer[_common_pb2.IdentityInfo]
    next_page_token: str
    total: int
    def __init__(self, people: _Optional[_Iterable[_Union[_common_pb2.IdentityInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...
