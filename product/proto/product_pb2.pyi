import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValidityDates(_message.Message):
    __slots__ = ("valid_from", "valid_thru")
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_THRU_FIELD_NUMBER: _ClassVar[int]
    valid_from: _timestamp_pb2.Timestamp
    valid_thru: _timestamp_pb2.Timestamp
    def __init__(self, valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_thru: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Modifications(_message.Message):
    __slots__ = ("create_date", "update_date", "modified_by")
    CREATE_DATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DATE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_BY_FIELD_NUMBER: _ClassVar[int]
    create_date: _timestamp_pb2.Timestamp
    update_date: _timestamp_pb2.Timestamp
    modified_by: str
    def __init__(self, create_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified_by: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("id", "name", "hierarchy_level", "validity_dates", "modifications", "extra_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HIERARCHY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_DATES_FIELD_NUMBER: _ClassVar[int]
    MODIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    hierarchy_level: str
    validity_dates: ValidityDates
    modifications: Modifications
    extra_fields: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., hierarchy_level: _Optional[str] = ..., validity_dates: _Optional[_Union[ValidityDates, _Mapping]] = ..., modifications: _Optional[_Union[Modifications, _Mapping]] = ..., extra_fields: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Products(_message.Message):
    __slots__ = ("product", "next_page_token")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    product: _containers.RepeatedCompositeFieldContainer[Product]
    next_page_token: str
    def __init__(self, product: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("id", "name", "valid_date", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALID_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    valid_date: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., valid_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ValidationErr(_message.Message):
    __slots__ = ("failure_desc",)
    FAILURE_DESC_FIELD_NUMBER: _ClassVar[int]
    failure_desc: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, failure_desc: _Optional[_Iterable[str]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("product", "affected_count", "validation_err")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ERR_FIELD_NUMBER: _ClassVar[int]
    product: Product
    affected_count: int
    validation_err: ValidationErr
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., affected_count: _Optional[int] = ..., validation_err: _Optional[_Union[ValidationErr, _Mapping]] = ...) -> None: ...
