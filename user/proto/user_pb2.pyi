import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_MEMBER: _ClassVar[Role]

class LoginOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOGIN_OUTCOME_UNSPECIFIED: _ClassVar[LoginOutcome]
    LOGIN_OUTCOME_SUCCEEDED: _ClassVar[LoginOutcome]
    LOGIN_OUTCOME_BAD_CREDENTIALS: _ClassVar[LoginOutcome]
    LOGIN_OUTCOME_ACCOUNT_DISABLED: _ClassVar[LoginOutcome]
    LOGIN_OUTCOME_THROTTLED: _ClassVar[LoginOutcome]
ROLE_UNSPECIFIED: Role
ROLE_ADMIN: Role
ROLE_MEMBER: Role
LOGIN_OUTCOME_UNSPECIFIED: LoginOutcome
LOGIN_OUTCOME_SUCCEEDED: LoginOutcome
LOGIN_OUTCOME_BAD_CREDENTIALS: LoginOutcome
LOGIN_OUTCOME_ACCOUNT_DISABLED: LoginOutcome
LOGIN_OUTCOME_THROTTLED: LoginOutcome

class User(_message.Message):
    __slots__ = ("id", "firstname", "lastname", "valid_from", "valid_thru", "active", "pwd", "name", "email", "company", "create_date", "update_date", "role")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIRSTNAME_FIELD_NUMBER: _ClassVar[int]
    LASTNAME_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_THRU_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PWD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    CREATE_DATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    firstname: str
    lastname: str
    valid_from: _timestamp_pb2.Timestamp
    valid_thru: _timestamp_pb2.Timestamp
    active: bool
    pwd: str
    name: str
    email: str
    company: str
    create_date: _timestamp_pb2.Timestamp
    update_date: _timestamp_pb2.Timestamp
    role: Role
    def __init__(self, id: _Optional[int] = ..., firstname: _Optional[str] = ..., lastname: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_thru: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., pwd: _Optional[str] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., company: _Optional[str] = ..., create_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class Users(_message.Message):
    __slots__ = ("user", "next_page_token")
    USER_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user: _containers.RepeatedCompositeFieldContainer[User]
    next_page_token: str
    def __init__(self, user: _Optional[_Iterable[_Union[User, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("id", "firstname", "lastname", "valid_date", "email", "company", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIRSTNAME_FIELD_NUMBER: _ClassVar[int]
    LASTNAME_FIELD_NUMBER: _ClassVar[int]
    VALID_DATE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: int
    firstname: str
    lastname: str
    valid_date: _timestamp_pb2.Timestamp
    email: str
    company: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[int] = ..., firstname: _Optional[str] = ..., lastname: _Optional[str] = ..., valid_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., email: _Optional[str] = ..., company: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchString(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: str
    def __init__(self, value: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("user", "affected_count", "validation_err")
    USER_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ERR_FIELD_NUMBER: _ClassVar[int]
    user: User
    affected_count: int
    validation_err: ValidationErr
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., affected_count: _Optional[int] = ..., validation_err: _Optional[_Union[ValidationErr, _Mapping]] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("token", "valid", "e_uid", "role", "refresh_token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    E_UID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    valid: bool
    e_uid: str
    role: Role
    refresh_token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., valid: _Optional[bool] = ..., e_uid: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., refresh_token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RefreshTokenRequest(_message.Message):
    __slots__ = ("refresh_token",)
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refresh_token: str
    def __init__(self, refresh_token: _Optional[str] = ...) -> None: ...

class PublicKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublicKey(_message.Message):
    __slots__ = ("kid", "alg", "kty", "crv", "x")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    KTY_FIELD_NUMBER: _ClassVar[int]
    CRV_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    kid: str
    alg: str
    kty: str
    crv: str
    x: str
    def __init__(self, kid: _Optional[str] = ..., alg: _Optional[str] = ..., kty: _Optional[str] = ..., crv: _Optional[str] = ..., x: _Optional[str] = ...) -> None: ...

class PublicKeys(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: _containers.RepeatedCompositeFieldContainer[PublicKey]
    def __init__(self, key: _Optional[_Iterable[_Union[PublicKey, _Mapping]]] = ...) -> None: ...

class LoginAttempt(_message.Message):
    __slots__ = ("email", "user_id", "outcome")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    email: str
    user_id: int
    outcome: LoginOutcome
    def __init__(self, email: _Optional[str] = ..., user_id: _Optional[int] = ..., outcome: _Optional[_Union[LoginOutcome, str]] = ...) -> None: ...
