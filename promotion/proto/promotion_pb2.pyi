import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DiscountType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCOUNT_TYPE_UNSPECIFIED: _ClassVar[DiscountType]
    DISCOUNT_TYPE_PERCENTAGE: _ClassVar[DiscountType]
    DISCOUNT_TYPE_AMOUNT: _ClassVar[DiscountType]
DISCOUNT_TYPE_UNSPECIFIED: DiscountType
DISCOUNT_TYPE_PERCENTAGE: DiscountType
DISCOUNT_TYPE_AMOUNT: DiscountType

class Discount(_message.Message):
    __slots__ = ("id", "value", "type", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: int
    value: float
    type: DiscountType
    description: str
    def __init__(self, id: _Optional[int] = ..., value: _Optional[float] = ..., type: _Optional[_Union[DiscountType, str]] = ..., description: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("id", "upc_code", "discount")
    ID_FIELD_NUMBER: _ClassVar[int]
    UPC_CODE_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    id: int
    upc_code: str
    discount: _containers.RepeatedCompositeFieldContainer[Discount]
    def __init__(self, id: _Optional[int] = ..., upc_code: _Optional[str] = ..., discount: _Optional[_Iterable[_Union[Discount, _Mapping]]] = ...) -> None: ...

class Promotion(_message.Message):
    __slots__ = ("id", "name", "description", "valid_from", "valid_thru", "active", "customer_id", "product", "approval_status", "prev_approval_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_THRU_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    PREV_APPROVAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    description: str
    valid_from: _timestamp_pb2.Timestamp
    valid_thru: _timestamp_pb2.Timestamp
    active: bool
    customer_id: int
    product: _containers.RepeatedCompositeFieldContainer[Product]
    approval_status: int
    prev_approval_status: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_thru: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., customer_id: _Optional[int] = ..., product: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., approval_status: _Optional[int] = ..., prev_approval_status: _Optional[int] = ...) -> None: ...

class Promotions(_message.Message):
    __slots__ = ("promotion", "next_page_token")
    PROMOTION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    promotion: _containers.RepeatedCompositeFieldContainer[Promotion]
    next_page_token: str
    def __init__(self, promotion: _Optional[_Iterable[_Union[Promotion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("id", "name", "product_id", "customer_id", "valid_date", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    product_id: int
    customer_id: int
    valid_date: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., product_id: _Optional[int] = ..., customer_id: _Optional[int] = ..., valid_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("promotion", "affected_count", "validation_err")
    PROMOTION_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ERR_FIELD_NUMBER: _ClassVar[int]
    promotion: Promotion
    affected_count: int
    validation_err: ValidationErr
    def __init__(self, promotion: _Optional[_Union[Promotion, _Mapping]] = ..., affected_count: _Optional[int] = ..., validation_err: _Optional[_Union[ValidationErr, _Mapping]] = ...) -> None: ...
