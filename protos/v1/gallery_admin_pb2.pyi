from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupRequest(_message.Message):
    __slots__ = ("modality", "all", "destination")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    modality: str
    all: bool
    destination: str
    def __init__(self, modality: _Optional[str] = ..., all: _Optional[bool] = ..., destination: _Optional[str] = ...) -> None: ...

class BackupSummary(_message.Message):
    __slots__ = ("modality", "path", "sequence", "identities", "model", "version", "dim", "created_at", "bytes", "seconds")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    modality: str
    path: str
    sequence: int
    identities: int
    model: str
    version: int
    dim: int
    created_at: float
    bytes: int
    seconds: float
    def __init__(self, modality: _Optional[str] = ..., path: _Optional[str] = ..., sequence: _Optional[int] = ..., identities: _Optional[int] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., dim: _Optional[int] = ..., created_at: _Optional[float] = ..., bytes: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("backups",)
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[BackupSummary]
    def __init__(self, backups: _Optional[_Iterable[_Union[BackupSummary, _Mapping]]] = ...) -> None: ...

class VerifyGalleryRequest(_message.Message):
    __slots__ = ("modality",)
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    modality: str
    def __init__(self, modality: _Optional[str] = ...) -> None: ...

class GalleryCheck(_message.Message):
    __slots__ = ("modality", "ok", "integrity", "store_count", "index_count", "store_sequence", "index_sequence", "message", "newest_backup")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    STORE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INDEX_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_BACKUP_FIELD_NUMBER: _ClassVar[int]
    modality: str
    ok: bool
    integrity: str
    store_count: int
    index_count: int
    store_sequence: int
    index_sequence: int
    message: str
    newest_backup: str
    def __init__(self, modality: _Optional[str] = ..., ok: _Optional[bool] = ..., integrity: _Optional[str] = ..., store_count: _Optional[int] = ..., index_count: _Optional[int] = ..., store_sequence: _Optional[int] = ..., index_sequence: _Optional[int] = ..., message: _Optional[str] = ..., newest_backup: _Optional[str] = ...) -> None: ...

class VerifyGalleryResponse(_message.Message):
    __slots__ = ("galleries", "ok")
    GALLERIES_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    galleries: _containers.RepeatedCompositeFieldContainer[GalleryCheck]
    ok: bool
    def __init__(self, galleries: _Optional[_Iterable[_Union[GalleryCheck, _Mapping]]] = ..., ok: _Optional[bool] = ...) -> None: ...
