"""Shared domain errors and their localized messages."""

from global_errors.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    Failure,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from global_errors.messages import Language, MessageKey, render

__all__ = [
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "Failure",
    "Language",
    "MessageKey",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "ValidationFailed",
    "render",
]
