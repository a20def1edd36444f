"""The audit consumer's wire format: NATS header blocks in, rows in the audit table's order out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from global_utils.events.audit_event import (
    FIELD_BY_HEADER,
    MAX_HEADER_CHARS,
    ActionType,
    AuditHeader,
    Subject,
    parse_action_time,
    parse_event_id,
    plain_text,
)
from global_utils.events.envelope import header_block as header_block
from global_utils.events.envelope import header_in_block
from global_utils.events.signing import MAC_V2_PREFIX, mac_message, mac_message_v1

# The W3C trace context header (global_utils.observability.propagation.TRACEPARENT), read here
# without importing tracing.
TRACEPARENT = "traceparent"


class ReceivedEvent(NamedTuple):
    """The consumer's shape of an audit event: one delivery, checked, as the audit table stores
    it (its columns in COLUMNS' order, so COPY takes it as it is).

    Parsed from the delivery's headers rather than into the producers' AuditEvent: the same
    rules as that model's validation (global_utils/events/audit_event.py's plain_text,
    ActionType, parse_action_time, parse_event_id), applied without pydantic, whose cost per
    event was a third of the consumer's time."""

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
    # the W3C trace id of the change's trace (its `traceparent` header), None when untraced;
    # covered by neither the producer's MAC nor the row hash: it says where to look
    trace_id: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], data: bytes) -> ReceivedEvent:
        """Raises ValueError naming the first bad or missing header."""
        return _validated(_field_values(headers), data, headers.get(TRACEPARENT))

    @classmethod
    def from_header_block(cls, block: bytes | None, data: bytes) -> ReceivedEvent:
        """Parses a NATS header block straight from the wire; raises ValueError."""
        return parse_delivery(block, data)[0]


class Seal(NamedTuple):
    """What authenticates a delivery: the key id and MAC (hex) it carries (empty when missing),
    and the bytes the MAC must cover in the version its mac header names
    (global_utils/events/signing.py)."""

    key_id: str
    mac: str
    message: bytes


def parse_delivery(block: bytes | None, data: bytes) -> tuple[ReceivedEvent, Seal]:
    """A delivery as an event and its seal; raises ValueError naming the first bad header.

    Headers exactly as the producers write them (AuditEvent.headers() then the signer's) match
    one regular expression (whose values need no further text checks); anything else, and
    anything that expression lets through but whose action type or time is not one, goes
    through the general header parser, which names the header to blame."""
    # parse_canonical's steps, inline: this runs for every event.
    if block:
        found = _CANONICAL_BLOCK.fullmatch(block.decode("utf-8", "replace"))
        if found is not None:
            parsed = _canonical(found.groups(), data)
            if parsed is not None:
                return parsed
    return parse_general(block, data)


def parse_canonical(block: bytes, data: bytes) -> tuple[ReceivedEvent, Seal] | None:
    """The fast path alone: a block in the producers' own spelling as an event and its seal;
    None for anything else (parse_general then decides)."""
    found = _CANONICAL_BLOCK.fullmatch(block.decode("utf-8", "replace"))
    return None if found is None else _canonical(found.groups(), data)


def parse_general(block: bytes | None, data: bytes) -> tuple[ReceivedEvent, Seal]:
    """The general path alone: headers in any order and spelling NATS allows; raises
    ValueError naming the first bad header."""
    headers = parse_header_block(block)
    values = _field_values(headers)
    event = _validated(values, data, headers.get(TRACEPARENT))
    seal = _seal(
        headers.get(AuditHeader.KEY_ID, ""), headers.get(AuditHeader.MAC, ""), values, data
    )
    return event, seal


def _canonical(groups: tuple[str, ...], data: bytes) -> tuple[ReceivedEvent, Seal] | None:
    """The event and seal of _CANONICAL_BLOCK's groups (the last, traceparent, None when the
    header is absent), or None when the action type or time is not one.

    The expression has already checked what _validated checks of text (printable, at most
    MAX_HEADER_CHARS, no surrounding whitespace, a canonical event id), so only the action
    type and time are left: this runs for every stored event, so it applies
    parse_action_time's rule inline (tests/unit/test_audit_event_rules.py holds them
    together)."""
    (
        service,
        func,
        action,
        name,
        object_id,
        by,
        when,
        event_id,
        payload_type,
        _,
        key_id,
        mac,
        traceparent,
    ) = groups
    action_type = _ACTION_TYPES.get(action)
    if action_type is None:
        return None
    try:
        action_time = datetime.fromisoformat(when)
    except ValueError:
        return None
    if action_time.tzinfo is None:
        return None
    event = ReceivedEvent(
        event_id,
        action_time,
        _TOPIC,
        service,
        func,
        action_type,
        name,
        object_id,
        by,
        data,
        payload_type,
        trace_id_of(traceparent),
    )
    return event, _seal(key_id, mac, groups, data)


def _field_values(headers: Mapping[str, str]) -> list[str]:
    values = []
    for header in FIELD_BY_HEADER:
        try:
            values.append(headers[header])
        except KeyError:
            raise ValueError(f"header {header} missing") from None
    return values


def _seal(key_id: str, mac: str, values: Sequence[str], data: bytes) -> Seal:
    """The seal of header values in FIELD_BY_HEADER's order (as they travelled): the MAC input
    of the version the mac header names. Raises ValueError for a value a version 2 MAC
    cannot cover (one with a newline)."""
    if mac.startswith(MAC_V2_PREFIX):
        return Seal(key_id, mac[len(MAC_V2_PREFIX) :], mac_message(values[:9], data))
    service, func, action, name, object_id, by, when, event_id, payload_type = values[:9]
    message = mac_message_v1(
        (event_id, when, service, func, action, name, object_id, by, payload_type), data
    )
    return Seal(key_id, mac, message)


# The audit table's columns in ReceivedEvent's order (what COPY and the INSERT fallback name).
COLUMNS = [
    "eventid",
    "actiontime",
    "topic",
    "service",
    "actionfunc",
    "actiontype",
    "objectname",
    "objectid",
    "performedby",
    "objectdetail",
    "payloadtype",
    "traceid",
]


def _validated(values: Sequence[str], data: bytes, traceparent: str | None) -> ReceivedEvent:
    """values: the header values in FIELD_BY_HEADER's order; a traceparent that is not one is
    ignored (the event is stored untraced, never refused for it)."""
    service, func, action, name, object_id, by, when, event_id, payload_type = values[:9]
    plain = (service, func, name, object_id, by, payload_type)
    # One check of them all (the usual case); the header to blame only when it fails.
    if max(map(len, plain)) > MAX_HEADER_CHARS or not "".join(plain).isprintable():
        for header, value in zip(_PLAIN_HEADERS, plain, strict=True):
            try:
                plain_text(value)
            except ValueError as exc:
                raise ValueError(f"header {header}: {exc}") from None
    try:
        header = _ACTION_TYPE
        action_type = _ACTION_TYPES.get(action) or ActionType(action)
        header = _ACTION_TIME
        action_time = parse_action_time(when)
        header = _EVENT_ID
        if _CANONICAL_UUID.fullmatch(event_id) is None:
            event_id = str(parse_event_id(event_id))  # other spellings, or ValueError
    except (ValueError, TypeError) as exc:
        raise ValueError(f"header {header}: {exc}") from None
    return ReceivedEvent(
        event_id,
        action_time,
        _TOPIC,
        service,
        func,
        action_type,
        name,
        object_id,
        by,
        data,
        payload_type,
        trace_id_of(traceparent),
    )


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C traceparent; None when it is not a valid one
    (version ff, or an all-zero trace or parent id)."""
    if not traceparent:
        return None
    found = _TRACEPARENT.fullmatch(traceparent)
    if found is None or found.group(1) == "ff":
        return None
    if not found.group(2).strip("0") or not found.group(3).strip("0"):
        return None
    return found.group(2)


def traceparent_header(block: bytes | None) -> str | None:
    """The traceparent header of a NATS header block, without parsing the rest of it."""
    return header_in_block(block, TRACEPARENT)


# Read once: an enum member's attribute access costs more than the check it names.
_PLAIN_HEADERS = tuple(
    header.value
    for header in (
        AuditHeader.SERVICE,
        AuditHeader.ACTION_FUNC,
        AuditHeader.OBJECT_NAME,
        AuditHeader.OBJECT_ID,
        AuditHeader.PERFORMED_BY,
        AuditHeader.PAYLOAD_TYPE,
    )
)
_ACTION_TYPE = AuditHeader.ACTION_TYPE.value
_ACTION_TIME = AuditHeader.ACTION_TIME.value
_EVENT_ID = AuditHeader.EVENT_ID.value
_TOPIC = Subject.AUDIT.value


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
# A value of printable ASCII without surrounding whitespace (the general parser strips it),
# at most MAX_HEADER_CHARS long: one that needs none of _validated's text checks. (A repeat
# with a bound costs the regular expression engine no more than `*`.)
_PLAIN_VALUE = f"([!-~][ -~]{{0,{MAX_HEADER_CHARS - 1}}}(?<=[!-~]))"
_VALUE_BY_HEADER = {
    AuditHeader.EVENT_ID: f"({_CANONICAL_UUID.pattern})",  # other spellings: the general path
}
_CANONICAL_BLOCK = re.compile(
    "NATS/1.0\r\n"
    + "".join(
        re.escape(header) + ": " + _VALUE_BY_HEADER.get(header, _PLAIN_VALUE) + "\r\n"
        for header in [*FIELD_BY_HEADER, AuditHeader.MSG_ID, AuditHeader.KEY_ID, AuditHeader.MAC]
    )
    # as the relay adds it after the signed headers, when the change was traced
    + f"(?:{TRACEPARENT}: (\\S+)\r\n)?"
    + "\r\n"
)
