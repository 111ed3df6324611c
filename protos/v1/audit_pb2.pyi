from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryAuditRequest(_message.Message):
    __slots__ = ("since", "until", "subject", "identity", "method", "code", "limit", "before_id")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    since: float
    until: float
    subject: str
    identity: str
    method: str
    code: str
    limit: int
    before_id: int
    def __init__(self, since: _Optional[float] = ..., until: _Optional[float] = ..., subject: _Optional[str] = ..., identity: _Optional[str] = ..., method: _Optional[str] = ..., code: _Optional[str] = ..., limit: _Optional[int] = ..., before_id: _Optional[int] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "time", "subject", "token_id", "method", "code", "peer", "identities", "duration_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    time: float
    subject: str
    token_id: str
    method: str
    code: str
    peer: str
    identities: _containers.RepeatedScalarFieldContainer[str]
    duration_ms: float
    def __init__(self, id: _Optional[int] = ..., time: _Optional[float] = ..., subject: _Optional[str] = ..., token_id: _Optional[str] = ..., method: _Optional[str] = ..., code: _Optional[str] = ..., peer: _Optional[str] = ..., identities: _Optional[_Iterable[str]] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class QueryAuditResponse(_message.Message):
    __slots__ = ("events", "truncated")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    truncated: bool
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
