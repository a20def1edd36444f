"""The producers' side of the audit event: subject, stream, headers, model, and the emitter."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from google.protobuf.message import Message
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from global_utils.runtime.timeutil import now

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger(__name__)


MAX_HEADER_CHARS = 500


class Subject(StrEnum):
    AUDIT = "Audit"


AUDIT_STREAM = "AUDIT"
# The audit service's durable pull consumer of AUDIT (goTemp's queue group "Audit.Insert";
# durable names may not contain dots). Provisioning makes both (provision/broker.py); the
# NATS permissions (nats/nats.conf) name them too.
AUDIT_CONSUMER = "Audit_Insert"


class ActionType(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    # Logins are recorded too (objectName "session"); they are not changes.
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"


class AuditHeader(StrEnum):
    SERVICE = "service"
    ACTION_FUNC = "actionFunc"
    ACTION_TYPE = "actionType"
    OBJECT_NAME = "objectName"
    OBJECT_ID = "objectId"
    PERFORMED_BY = "performedBy"
    ACTION_TIME = "actionTime"
    EVENT_ID = "eventId"
    PAYLOAD_TYPE = "payloadType"
    # JetStream de-duplicates on this header.
    MSG_ID = "Nats-Msg-Id"
    # The producer's key id and its HMAC-SHA256 over the event (global_utils/events/signing.py).
    KEY_ID = "keyId"
    MAC = "mac"
    # On a message holding several events: the envelope format's version
    # (global_utils/events/envelope.py); a message of one event has none.
    ENVELOPE = "auditEnvelope"


class AuditEvent(BaseModel):
    """The producer's shape of an audit event: one change to one record (who did what, when,
    and the record's serialized state), as a service emits it in its unit of work.

    The stages after this one: headers() is what the outbox row keeps (audit_outbox: event id,
    subject, these headers, payload) and the relay publishes unchanged; the audit service has
    its own shapes for an event it received (ReceivedEvent) and one it stored (StoredEvent)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    service: str
    action_func: str
    action_type: ActionType
    object_name: str
    object_id: str
    performed_by: str
    action_time: AwareDatetime = Field(default_factory=now)
    payload_type: str
    payload: bytes

    @field_validator(
        "service", "action_func", "object_name", "object_id", "performed_by", "payload_type"
    )
    @classmethod
    def _plain_text(cls, value: str) -> str:
        return plain_text(value)

    # A time or id given as text is read by the rule of its header (what the audit consumer
    # accepts), not by pydantic's own parsers (which take other spellings).
    @field_validator("action_time", mode="before")
    @classmethod
    def _action_time_text(cls, value: object) -> object:
        return parse_action_time(value) if isinstance(value, str) else value

    @field_validator("event_id", mode="before")
    @classmethod
    def _event_id_text(cls, value: object) -> object:
        return parse_event_id(value) if isinstance(value, str) else value

    @classmethod
    def for_record(
        cls,
        *,
        service: str,
        action_func: str,
        action_type: ActionType,
        object_name: str,
        object_id: int | str,
        performed_by: str,
        record: Message,
    ) -> AuditEvent:
        return cls(
            service=service,
            action_func=action_func,
            action_type=action_type,
            object_name=object_name,
            object_id=str(object_id),
            performed_by=performed_by,
            payload_type=record.DESCRIPTOR.full_name,
            payload=record.SerializeToString(),
        )

    def headers(self) -> dict[str, str]:
        values = self.model_dump(mode="json", include=set(FIELD_BY_HEADER.values()))
        headers = {header.value: str(values[name]) for header, name in FIELD_BY_HEADER.items()}
        headers[AuditHeader.MSG_ID.value] = headers[AuditHeader.EVENT_ID.value]
        return headers


# Each header and the event field it carries (Nats-Msg-Id repeats the event id), in the order
# AuditEvent.headers() writes them; the audit consumer reads them back in this order.
FIELD_BY_HEADER: dict[AuditHeader, str] = {
    AuditHeader.SERVICE: "service",
    AuditHeader.ACTION_FUNC: "action_func",
    AuditHeader.ACTION_TYPE: "action_type",
    AuditHeader.OBJECT_NAME: "object_name",
    AuditHeader.OBJECT_ID: "object_id",
    AuditHeader.PERFORMED_BY: "performed_by",
    AuditHeader.ACTION_TIME: "action_time",
    AuditHeader.EVENT_ID: "event_id",
    AuditHeader.PAYLOAD_TYPE: "payload_type",
}


# The rules of the header values, one function per kind of value: the model validates with
# them, the audit consumer's general parser calls them, and its fast path (the producers'
# canonical spelling, audit/server/events/wire.py) is tested against them value by value
# (tests/unit/test_audit_event_rules.py).


def plain_text(value: str) -> str:
    """Header values end up in text columns: bounded, and no NUL or other control bytes."""
    if len(value) > MAX_HEADER_CHARS or not value.isprintable():
        raise ValueError(f"must be at most {MAX_HEADER_CHARS} printable characters")
    return value


def parse_action_time(value: str) -> datetime:
    """An actionTime value: ISO 8601 as datetime.fromisoformat reads it, with a UTC offset."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no UTC offset")
    return moment


def parse_event_id(value: str) -> uuid.UUID:
    """An eventId value: a UUID in any spelling uuid.UUID reads (producers write the canonical
    one, lower-case with hyphens)."""
    return uuid.UUID(value)


class AuditEmitter(Protocol):
    """Takes the audit events of a unit of work, in two steps around its commit."""

    async def record(
        self,
        conn: asyncpg.Connection,
        events: Sequence[AuditEvent],
        changes: Sequence[str] = (),
        args: Sequence[Any] = (),
    ) -> None:
        """Inside the transaction, before commit (an outbox writes its rows here). With
        changes (data-modifying WITH items, `name AS (INSERT ...)`, whose parameters are
        $1..$len(args)), the change and its events are one statement: atomic without a
        transaction, so a change known in full up front needs no BEGIN and COMMIT."""
        ...

    def committed(self, events: Sequence[AuditEvent]) -> None:
        """After commit; must neither block nor raise."""
        ...
