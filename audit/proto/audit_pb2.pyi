import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchParams(_message.Message):
    __slots__ = ("object_name", "object_id", "service", "action_type", "performed_by", "from_time", "thru_time", "page_size", "page_token")
    OBJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERFORMED_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    THRU_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    object_name: str
    object_id: str
    service: str
    action_type: str
    performed_by: str
    from_time: _timestamp_pb2.Timestamp
    thru_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, object_name: _Optional[str] = ..., object_id: _Optional[str] = ..., service: _Optional[str] = ..., action_type: _Optional[str] = ..., performed_by: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., thru_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("event_id", "action_time", "topic", "service", "action_func", "action_type", "object_name", "object_id", "performed_by", "recorded_time", "object_detail", "payload_type", "object_detail_json", "trace_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TIME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FUNC_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PERFORMED_BY_FIELD_NUMBER: _ClassVar[int]
    RECORDED_TIME_FIELD_NUMBER: _ClassVar[int]
    OBJECT_DETAIL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    action_time: _timestamp_pb2.Timestamp
    topic: str
    service: str
    action_func: str
    action_type: str
    object_name: str
    object_id: str
    performed_by: str
    recorded_time: _timestamp_pb2.Timestamp
    object_detail: bytes
    payload_type: str
    object_detail_json: str
    trace_id: str
    def __init__(self, event_id: _Optional[str] = ..., action_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., topic: _Optional[str] = ..., service: _Optional[str] = ..., action_func: _Optional[str] = ..., action_type: _Optional[str] = ..., object_name: _Optional[str] = ..., object_id: _Optional[str] = ..., performed_by: _Optional[str] = ..., recorded_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., object_detail: _Optional[bytes] = ..., payload_type: _Optional[str] = ..., object_detail_json: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...

class AuditRecords(_message.Message):
    __slots__ = ("record", "next_page_token")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    record: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    next_page_token: str
    def __init__(self, record: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyParams(_message.Message):
    __slots__ = ("from_time", "thru_time")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    THRU_TIME_FIELD_NUMBER: _ClassVar[int]
    from_time: _timestamp_pb2.Timestamp
    thru_time: _timestamp_pb2.Timestamp
    def __init__(self, from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., thru_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyResult(_message.Message):
    __slots__ = ("intact", "rows_checked", "rows_unchained", "first_bad_event_id", "first_bad_action_time", "first_bad_chain_id", "first_bad_chain_seq", "reason")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    ROWS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ROWS_UNCHAINED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_ACTION_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_CHAIN_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    rows_checked: int
    rows_unchained: int
    first_bad_event_id: str
    first_bad_action_time: _timestamp_pb2.Timestamp
    first_bad_chain_id: int
    first_bad_chain_seq: int
    reason: str
    def __init__(self, intact: _Optional[bool] = ..., rows_checked: _Optional[int] = ..., rows_unchained: _Optional[int] = ..., first_bad_event_id: _Optional[str] = ..., first_bad_action_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_bad_chain_id: _Optional[int] = ..., first_bad_chain_seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
