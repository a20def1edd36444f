"""Maps domain errors to gRPC status codes and rich google.rpc.Status details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from global_errors.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from global_errors.messages import Language, MessageKey, render

STATUS_BY_ERROR: dict[type[DomainError], grpc.StatusCode] = {
    ValidationFailed: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an error; anything unexpected is INTERNAL."""
    for error_type in type(error).__mro__:
        code = STATUS_BY_ERROR.get(error_type) if issubclass(error_type, DomainError) else None
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def to_grpc_status(error: BaseException, language: Language) -> grpc.Status:
    """A grpc.Status (code, message, and google.rpc details in trailing metadata) for error."""
    code = status_code_for(error)
    if isinstance(error, DomainError):
        message = error.text(language)
    else:
        message = render(MessageKey.INTERNAL, language)
    rich = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if isinstance(error, ValidationFailed):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=f.field, description=f.text(language)
                )
                for f in error.failures
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        rich.details.append(detail)
    return rpc_status.to_status(rich)
