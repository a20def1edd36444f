"""The rules of an audit event, written once: for every header field, values just inside and
just outside each rule of the producers' AuditEvent are accepted or refused alike by the model
and by both of the audit consumer's parsers (the fast path for the producers' own spelling,
and the general one), and an accepted value is read as the model reads it.

A NATS header's value travels without the white space around it (nats-py strips it when it
writes a header and when it reads one, as parse_header_block does, and the signer signs the
values so stripped): the model is asked about a value as it is read, and the fast path must
leave a value with white space around it to the general one."""

from __future__ import annotations

from datetime import datetime

import pydantic
import pytest

from audit.server.events.wire import (
    ReceivedEvent,
    Seal,
    header_block,
    parse_canonical,
    parse_delivery,
    parse_general,
)
from global_utils.events.audit_event import (
    FIELD_BY_HEADER,
    MAX_HEADER_CHARS,
    ActionType,
    AuditEvent,
    AuditHeader,
)
from global_utils.events.signing import MAC_V2_PREFIX, EventSigner

SIGNER = EventSigner("rules-test", b"r" * 32)
PAYLOAD = b"\x08\x2a"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EVENT_ID = "0b7e5f3c-9d2a-4c1e-8f6b-2a9d3c4e5f60"
# A valid value of every header: each case changes one of them.
VALID: dict[AuditHeader, str] = {
    AuditHeader.SERVICE: "user",
    AuditHeader.ACTION_FUNC: "AfterUpdateUser",
    AuditHeader.ACTION_TYPE: "update",
    AuditHeader.OBJECT_NAME: "user",
    AuditHeader.OBJECT_ID: "42",
    AuditHeader.PERFORMED_BY: "7",
    AuditHeader.ACTION_TIME: "2026-12-06T10:00:00.123456+00:00",
    AuditHeader.EVENT_ID: EVENT_ID,
    AuditHeader.PAYLOAD_TYPE: "user.User",
}

LIMIT = MAX_HEADER_CHARS
# Printable text, at most MAX_HEADER_CHARS characters (the fast path takes printable ASCII
# without surrounding white space; the rest of what is printable goes the general way).
PLAIN_TEXT = [
    "",
    "a",
    "!",  # the first printable ASCII character after the space
    "~",  # the last printable ASCII character
    "a b",
    "x" * LIMIT,
    "x" * (LIMIT + 1),
    "é" * LIMIT,
    "é" * (LIMIT + 1),
    "日本語",
    "a\U0001f600b",
    "a\ufffdb",
    "a\x00b",
    "a\x1fb",
    "a\x7fb",  # DEL: ASCII, not printable
    "a\x80b",
    "a\x85b",
    "a\xa0b",  # no-break space: not printable
    "a\u200bb",  # zero width space: not printable
    "a\u2028b",
    "a\tb",
    "a\rb",
    "a\nb",
    # white space around a value is not part of it
    " ",
    " a",
    "a ",
    "\ta\t",
    "a\n",
    "\x1fa",
    "\xa0",
    "a\u2028",
    " " + "x" * LIMIT + " ",
]
ACTION_TYPES = [
    *(action.value for action in ActionType),
    *(action.value.upper() for action in ActionType),
    *(action.value[:-1] for action in ActionType),
    *(action.value + "s" for action in ActionType),
    "login-failed",
    "",
]
ACTION_TIMES = [
    "2026-12-06T10:00:00+00:00",
    "2026-12-06T10:00:00Z",
    "2026-12-06T10:00:00z",
    "2026-12-06t10:00:00Z",
    "2026-12-06T10:00:00",  # no offset
    "2026-12-06",
    "2026-12-06T10:00:00.1+05:30",
    "2026-12-06T10:00:00,5-08:00",
    "2026-12-06T10:00:00.1234567+00:00",
    "2026-12-06 10:00:00+00:00",
    "2026-12-06x10:00:00+00:00",
    "2026-12-06T10:00+00:00",
    "2026-12-06T10+00:00",
    "2026-12-06T10:00:00+0000",
    "2026-12-06T10:00:00+00",
    "2026-12-06T10:00:00+00:00:30",
    "2026-12-06T10:00:00+23:59",
    "2026-12-06T10:00:00+24:00",
    "2026-12-06T23:59:59.999999+00:00",
    "2026-12-06T24:00:00+00:00",
    "2026-12-06T10:00:60+00:00",
    "2026-02-29T10:00:00+00:00",
    "2028-02-29T10:00:00+00:00",
    "2026-13-06T10:00:00+00:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00",
    "20261206T100000Z",
    "2026-W49-7T10:00:00+00:00",
    "1765000000",
    "1765000000.5",
    "yesterday",
    "",
]
EVENT_IDS = [
    EVENT_ID,
    EVENT_ID.upper(),
    # upper case in one group at a time
    *(
        "-".join(g.upper() if i == n else g for i, g in enumerate(EVENT_ID.split("-")))
        for n in range(5)
    ),
    EVENT_ID.replace("-", ""),
    "{" + EVENT_ID + "}",
    "urn:uuid:" + EVENT_ID,
    "0b7e-5f3c9d2a4c1e8f6b2a9d3c4e5f60",  # hyphens elsewhere
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    EVENT_ID[:-1],
    EVENT_ID + "0",
    EVENT_ID[:-1] + "g",
    "0" * 31,
    "0" * 33,
    "not-a-uuid",
    "",
]
CASES: dict[AuditHeader, list[str]] = {
    AuditHeader.SERVICE: PLAIN_TEXT,
    AuditHeader.ACTION_FUNC: PLAIN_TEXT,
    AuditHeader.ACTION_TYPE: ACTION_TYPES,
    AuditHeader.OBJECT_NAME: PLAIN_TEXT,
    AuditHeader.OBJECT_ID: PLAIN_TEXT,
    AuditHeader.PERFORMED_BY: PLAIN_TEXT,
    AuditHeader.ACTION_TIME: ACTION_TIMES,
    AuditHeader.EVENT_ID: EVENT_IDS,
    AuditHeader.PAYLOAD_TYPE: PLAIN_TEXT,
}


def test_every_header_of_the_event_has_cases_and_carries_a_field_of_the_model() -> None:
    assert set(CASES) == set(VALID) == set(FIELD_BY_HEADER)
    assert set(FIELD_BY_HEADER.values()) == set(AuditEvent.model_fields) - {"payload"}
    assert set(FIELD_BY_HEADER.values()) <= set(ReceivedEvent._fields)


def _model(headers: dict[AuditHeader, str]) -> AuditEvent | None:
    """The event the producers' model makes of these header values, or None if it refuses."""
    fields = {name: headers[header] for header, name in FIELD_BY_HEADER.items()}
    try:
        return AuditEvent.model_validate({**fields, "payload": PAYLOAD})
    except pydantic.ValidationError:
        return None


def _block(headers: dict[AuditHeader, str], traced: bool) -> bytes:
    """The headers as a producer and the relay put them on the wire: the fields, the message
    id, the signer's key id and MAC, then the traceparent of a traced change."""
    wire = {header.value: value for header, value in headers.items()}
    wire[AuditHeader.MSG_ID.value] = headers[AuditHeader.EVENT_ID]
    try:
        signed = SIGNER.sign(wire, PAYLOAD)
    except ValueError:  # a value the MAC cannot cover (a newline): the consumer refuses it too
        signed = wire | {"keyId": SIGNER.key_id, "mac": MAC_V2_PREFIX + "0" * 64}
    if traced:
        signed["traceparent"] = TRACEPARENT
    return header_block(signed)


def _general(block: bytes) -> tuple[ReceivedEvent, Seal] | None:
    try:
        return parse_general(block, PAYLOAD)
    except ValueError:
        return None


def _whole(block: bytes) -> tuple[ReceivedEvent, Seal] | None:
    try:
        return parse_delivery(block, PAYLOAD)
    except ValueError:
        return None


def _as_model_reads_it(received: ReceivedEvent) -> dict[str, object]:
    return {name: getattr(received, name) for name in FIELD_BY_HEADER.values()}


def _model_fields(event: AuditEvent) -> dict[str, object]:
    values: dict[str, object] = {name: getattr(event, name) for name in FIELD_BY_HEADER.values()}
    values["event_id"] = str(event.event_id)  # the consumer keeps the canonical text
    return values


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param(header, value, id=f"{header.value}={value[:24]!a}({len(value)})")
        for header, values in CASES.items()
        for value in values
    ],
)
def test_the_model_and_both_parsers_agree_on_a_header_value(
    header: AuditHeader, value: str, traced: bool
) -> None:
    headers = {**VALID, header: value}
    model = _model({**headers, header: value.strip()})
    block = _block(headers, traced)
    fast = parse_canonical(block, PAYLOAD)  # None: refused, or not the producers' spelling
    general = _general(block)
    assert (general is not None) == (model is not None), "the general path and the model differ"
    if fast is not None:
        assert model is not None, "the fast path took a value the model refuses"
        assert fast == general, "the fast path read it otherwise than the general path"
    assert _whole(block) == (fast or general)
    if model is not None and general is not None:
        event, _ = general
        assert _as_model_reads_it(event) == _model_fields(model)
        assert event.payload == model.payload
        assert event.trace_id == ("4bf92f3577b34da6a3ce929d0e0e4736" if traced else None)


def test_what_the_producers_write_takes_the_fast_path() -> None:
    """The fast path is not dead code: the model's own headers, signed and traced or not, are
    in its spelling, and read back as the model's event."""
    for action in ActionType:
        event = AuditEvent(
            service="user",
            action_func="AfterUpdateUser",
            action_type=action,
            object_name="user",
            object_id="42",
            performed_by="7",
            payload_type="user.User",
            payload=PAYLOAD,
        )
        signed = SIGNER.sign(event.headers(), PAYLOAD)
        for wire in (signed, signed | {"traceparent": TRACEPARENT}):
            fast = parse_canonical(header_block(wire), PAYLOAD)
            assert fast is not None
            assert _as_model_reads_it(fast[0]) == _model_fields(event)
            assert isinstance(fast[0].action_time, datetime)
