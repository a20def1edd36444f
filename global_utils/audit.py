"""The audit event contract (subject, headers, model) and the emitter services hand events to."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol

from google.protobuf.message import Message
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from global_utils.timeutil import now

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger(__name__)


MAX_HEADER_CHARS = 500


class Subject(StrEnum):
    AUDIT = "Audit"


# goTemp's queue group name; JetStream durable names may not contain dots, hence the consumer.
AUDIT_QUEUE = "Audit.Insert"
AUDIT_CONSUMER = AUDIT_QUEUE.replace(".", "_")
AUDIT_STREAM = "AUDIT"
# JetStream drops a re-published event with the same Nats-Msg-Id within this window; the
# audit table's unique (eventid, actiontime) catches anything older.
DUPLICATE_WINDOW_SECONDS = 600.0


async def ensure_audit_stream(js: JetStreamContext) -> None:
    """Creates the stream that keeps audit events (file storage) unless it exists."""
    try:
        await js.stream_info(AUDIT_STREAM)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(
            StreamConfig(
                name=AUDIT_STREAM,
                subjects=[Subject.AUDIT.value],
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=7 * 24 * 3600.0,
            )
        )
    except BadRequestError:
        pass  # another process created it first


class ActionType(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


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


class AuditEvent(BaseModel):
    """One change to one record: who did what, when, and the record's serialized state."""

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
        values = self.model_dump(mode="json", include=set(_FIELD_BY_HEADER.values()))
        headers = {header.value: str(values[name]) for header, name in _FIELD_BY_HEADER.items()}
        headers[AuditHeader.MSG_ID.value] = headers[AuditHeader.EVENT_ID.value]
        return headers

    @classmethod
    def from_message(cls, headers: Mapping[str, str], data: bytes) -> AuditEvent:
        """Parses a NATS message back; raises ValueError naming the first bad header."""
        row = EventRow.from_message(headers, data)._asdict()
        del row["topic"]
        row["event_id"] = uuid.UUID(row["event_id"])
        return cls.model_construct(**row)


class EventRow(NamedTuple):
    """A received event as the audit table stores it (its columns, in the table's order).

    The audit consumer parses every event into one of these rather than an AuditEvent: the
    same rules as the model's validation, checked by hand, at a fraction of pydantic's cost
    per event (which was a third of the consumer's time)."""

    event_id: str  # canonical text form
    action_time: datetime
    topic: str
    service: str
    action_func: str
    action_type: ActionType
    object_name: str
    object_id: str
    performed_by: str
    payload: bytes
    payload_type: str

    @classmethod
    def from_message(cls, headers: Mapping[str, str], data: bytes) -> EventRow:
        """Raises ValueError naming the first bad or missing header."""
        values = []
        for header in _FIELD_BY_HEADER:
            try:
                values.append(headers[header])
            except KeyError:
                raise ValueError(f"header {header} missing") from None
        return _validated(values, data)

    @classmethod
    def from_header_block(cls, block: bytes | None, data: bytes) -> EventRow:
        """Parses a NATS header block straight from the wire; raises ValueError.

        Headers exactly as AuditEvent.headers() writes them (the producers' own) match one
        regular expression; anything else goes through the general header parser."""
        if block:
            found = _CANONICAL_BLOCK.fullmatch(block.decode("utf-8", "replace"))
            if found is not None:
                return _validated(found.groups(), data)
        return cls.from_message(parse_header_block(block), data)


def _validated(values: Sequence[str], data: bytes) -> EventRow:
    """values: the header values in _FIELD_BY_HEADER's order."""
    service, func, action, name, object_id, by, when, event_id, payload_type = values[:9]
    for header, value in (
        (AuditHeader.SERVICE, service),
        (AuditHeader.ACTION_FUNC, func),
        (AuditHeader.OBJECT_NAME, name),
        (AuditHeader.OBJECT_ID, object_id),
        (AuditHeader.PERFORMED_BY, by),
        (AuditHeader.PAYLOAD_TYPE, payload_type),
    ):
        try:
            plain_text(value)
        except ValueError as exc:
            raise ValueError(f"header {header}: {exc}") from None
    try:
        header = AuditHeader.ACTION_TYPE
        action_type = _ACTION_TYPES.get(action) or ActionType(action)
        header = AuditHeader.ACTION_TIME
        action_time = datetime.fromisoformat(when)
        if action_time.tzinfo is None:
            raise ValueError("no UTC offset")
        header = AuditHeader.EVENT_ID
        if _CANONICAL_UUID.fullmatch(event_id) is None:
            event_id = str(uuid.UUID(event_id))  # other spellings uuid accepts, or ValueError
    except (ValueError, TypeError) as exc:
        raise ValueError(f"header {header}: {exc}") from None
    return EventRow(
        event_id,
        action_time,
        Subject.AUDIT.value,
        service,
        func,
        action_type,
        name,
        object_id,
        by,
        data,
        payload_type,
    )


# Each header and the event field it carries (Nats-Msg-Id repeats the event id).
_FIELD_BY_HEADER: dict[AuditHeader, str] = {
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


def plain_text(value: str) -> str:
    """Header values end up in text columns: bounded, and no NUL or other control bytes."""
    if len(value) > MAX_HEADER_CHARS or not value.isprintable():
        raise ValueError(f"must be at most {MAX_HEADER_CHARS} printable characters")
    return value


def header_block(headers: Mapping[str, str]) -> bytes:
    """headers as a NATS header block, as clients write it (parse_header_block reads it)."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def parse_header_block(block: bytes | None) -> dict[str, str]:
    """A NATS header block ("NATS/1.0\r\nName: value\r\n...\r\n\r\n") as a dict, the
    last value of a repeated name winning; undecodable bytes become U+FFFD."""
    headers: dict[str, str] = {}
    if block:
        for line in block.decode("utf-8", "replace").split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name] = value.strip()
    return headers


_ACTION_TYPES = {action.value: action for action in ActionType}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A value without surrounding whitespace (the general parser strips it), on one line.
_CANONICAL_BLOCK = re.compile(
    "NATS/1.0\r\n"
    + "".join(
        re.escape(header) + r": (\S|\S[^\r\n]*\S)\r\n"
        for header in [*_FIELD_BY_HEADER, AuditHeader.MSG_ID]
    )
    + "\r\n"
)


class AuditEmitter(Protocol):
    """Takes the audit events of a unit of work, in two steps around its commit."""

    async def record(self, conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> None:
        """Inside the transaction, before commit (an outbox writes its rows here)."""
        ...

    def committed(self, events: Sequence[AuditEvent]) -> None:
        """After commit; must neither block nor raise."""
        ...
