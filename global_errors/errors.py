"""The domain exception hierarchy: what went wrong, as a message key and its parameters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from global_errors.messages import Language, MessageKey, render


@dataclass(frozen=True)
class Failure:
    """One failed rule: the field it concerns and the message that explains it."""

    field: str
    key: MessageKey
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def text(self, language: Language) -> str:
        return render(self.key, language, field=self.field, **self.params)


class DomainError(Exception):
    """Base of every expected error; the transport edge turns it into a status code."""

    def __init__(self, key: MessageKey, **params: Any) -> None:
        super().__init__(render(key, Language.EN, **params))
        self.key = key
        self.params = params

    def text(self, language: Language) -> str:
        return render(self.key, language, **self.params)


class ValidationFailed(DomainError):
    """The request broke one or more rules; every failure is reported, not only the first."""

    def __init__(self, failures: list[Failure]) -> None:
        self.failures = list(failures)
        super().__init__(MessageKey.VALIDATION_FAILED, count=len(self.failures))

    def text(self, language: Language) -> str:
        details = "; ".join(f.text(language) for f in self.failures)
        return f"{render(self.key, language, count=len(self.failures))}: {details}"


class NotFound(DomainError):
    """The record asked for does not exist."""


class AlreadyExists(DomainError):
    """A unique rule (enforced by the database) was broken."""


class FailedPrecondition(DomainError):
    """The record is in a state that forbids the operation."""


class Unauthenticated(DomainError):
    """Missing, invalid or expired credentials."""


class PermissionDenied(DomainError):
    """The caller is authenticated, but their role does not allow the operation."""


class ResourceExhausted(DomainError):
    """The caller used up an allowance (failed logins for one email) for now."""


class Unavailable(DomainError):
    """A dependency (database, broker, another service) cannot be reached right now."""
