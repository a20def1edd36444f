"""The audit event contract: the producers' headers out, the audit consumer's rows back in."""

from __future__ import annotations

import pydantic
import pytest

from audit.server.events.wire import (
    _CANONICAL_BLOCK,
    ReceivedEvent,
    header_block,
    parse_delivery,
    parse_header_block,
    trace_id_of,
    traceparent_header,
)
from global_utils.events.audit_event import ActionType, AuditEvent, AuditHeader
from global_utils.events.signing import EventSigner
from user.proto import user_pb2

SIGNER = EventSigner("user-test", b"k" * 32)


def _event() -> AuditEvent:
    return AuditEvent.for_record(
        service="user",
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name="user",
        object_id=42,
        performed_by="7",
        record=user_pb2.User(id=42, firstname="Zoë"),
    )


def test_event_round_trips_through_headers() -> None:
    event = _event()
    headers = event.headers()
    assert headers[AuditHeader.MSG_ID] == headers[AuditHeader.EVENT_ID] == str(event.event_id)
    assert headers[AuditHeader.PAYLOAD_TYPE] == "user.User"
    received = ReceivedEvent.from_headers(headers, event.payload)
    assert (
        AuditEvent(**{name: getattr(received, name) for name in AuditEvent.model_fields}) == event
    )
    assert user_pb2.User.FromString(event.payload) == user_pb2.User(id=42, firstname="Zoë")


def test_malformed_headers_are_rejected() -> None:
    with pytest.raises((pydantic.ValidationError, ValueError)):
        ReceivedEvent.from_headers({"service": "user"}, b"")
    with pytest.raises((pydantic.ValidationError, ValueError)):
        ReceivedEvent.from_headers({AuditHeader.ACTION_TIME: "yesterday"}, b"")


def test_producer_headers_and_any_other_spelling_parse_to_the_same_row() -> None:
    event = _event()
    headers = event.headers()
    canonical = ReceivedEvent.from_header_block(header_block(headers), event.payload)
    assert canonical == ReceivedEvent.from_headers(headers, event.payload)
    assert canonical.event_id == str(event.event_id)
    assert canonical.action_time == event.action_time
    assert (canonical.service, canonical.object_id, canonical.performed_by) == ("user", "42", "7")
    assert canonical.action_type is ActionType.UPDATE and canonical.payload == event.payload
    # Reordered, spaced differently, an extra header, an upper-case UUID: the general parser.
    shuffled = dict(reversed(list(headers.items())))
    shuffled["X-Extra"] = "yes"
    shuffled[AuditHeader.EVENT_ID] = headers[AuditHeader.EVENT_ID].upper()
    block = header_block(shuffled).replace(b"service: user", b"service:   user  ")
    assert ReceivedEvent.from_header_block(block, event.payload) == canonical


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        (AuditHeader.SERVICE, "us\x00er", "service"),
        (AuditHeader.OBJECT_ID, "9" * 501, "objectId"),
        (AuditHeader.ACTION_TYPE, "explode", "actionType"),
        (AuditHeader.ACTION_TIME, "yesterday", "actionTime"),
        (AuditHeader.ACTION_TIME, "2026-11-24T10:00:00", "actionTime"),  # no offset
        (AuditHeader.EVENT_ID, "not-a-uuid", "eventId"),
    ],
)
def test_bad_header_values_are_refused_naming_the_header(
    header: AuditHeader, value: str, message: str
) -> None:
    event = _event()
    headers = {**event.headers(), header: value}
    for parse in (
        lambda: ReceivedEvent.from_header_block(header_block(headers), event.payload),
        lambda: ReceivedEvent.from_headers(headers, event.payload),
    ):
        with pytest.raises(ValueError, match=message):
            parse()


def test_missing_headers_and_empty_blocks_are_refused() -> None:
    headers = _event().headers()
    del headers[AuditHeader.PERFORMED_BY]
    with pytest.raises(ValueError, match="performedBy missing"):
        ReceivedEvent.from_header_block(header_block(headers), b"")
    for block in (None, b"", b"NATS/1.0\r\n\r\n", b"\xff\xfe garbage"):
        with pytest.raises(ValueError, match="missing"):
            ReceivedEvent.from_header_block(block, b"")


def test_header_block_parsing() -> None:
    block = b"NATS/1.0\r\nA: 1\r\nB:2\r\nno colon here\r\nA:  3 \r\nC: caf\xc3\xa9 \xff\r\n\r\n"
    assert parse_header_block(block) == {"A": "3", "B": "2", "C": "café \ufffd"}
    assert parse_header_block(None) == {}


def test_header_block_round_trip() -> None:
    headers = _event().headers()
    assert parse_header_block(header_block(headers)) == headers


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_traced_events_trace_id_is_read_from_its_traceparent_on_either_path() -> None:
    event = _event()
    signed = SIGNER.sign(event.headers(), event.payload) | {"traceparent": TRACEPARENT}
    block = header_block(signed)
    assert _CANONICAL_BLOCK.fullmatch(block.decode()) is not None  # the relay's order: fast path
    fast, seal = parse_delivery(block, event.payload)
    assert fast.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert seal.key_id == SIGNER.key_id and signed["mac"].endswith(seal.mac)  # seal unmoved
    assert traceparent_header(block) == TRACEPARENT
    reordered = header_block(dict(reversed(list(signed.items()))))
    general, general_seal = parse_delivery(reordered, event.payload)
    assert general == fast and general_seal == seal
    # untraced: no trace id, and the row is the same otherwise
    untraced, _ = parse_delivery(header_block(SIGNER.sign(event.headers(), event.payload)), b"")
    assert untraced.trace_id is None and traceparent_header(header_block(event.headers())) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "00-xyz",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # invalid trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # invalid span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    ],
)
def test_a_bad_traceparent_leaves_the_event_untraced_not_refused(garbage: str) -> None:
    event = _event()
    headers = event.headers() | {"traceparent": garbage}
    assert ReceivedEvent.from_headers(headers, event.payload).trace_id is None
    assert trace_id_of(garbage) is None


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        ("plain value with spaces", True),
        ("x" * 500, True),  # the longest a value may be
        ("x", True),
        ("Zoë", False),  # printable, not ASCII: the general path checks it
        ("tab\there", False),
        ("line\u2028break", False),  # not printable: refused either way
        ("y" * 501, False),
    ],
)
def test_the_fast_path_gives_what_the_general_parser_gives(value: str, fast: bool) -> None:
    """The one expression takes only values it has checked; the rest go the general way, and
    either way the row, the seal, or the refusal naming the header is the same."""
    event = _event()
    signed = SIGNER.sign({**event.headers(), AuditHeader.OBJECT_NAME: value}, event.payload)
    block = header_block(signed)
    assert (_CANONICAL_BLOCK.fullmatch(block.decode()) is not None) is fast
    reordered = header_block(dict(reversed(list(signed.items()))))
    try:
        expected = parse_delivery(reordered, event.payload)
    except ValueError as exc:
        assert "objectName" in str(exc)
        with pytest.raises(ValueError, match="objectName"):
            parse_delivery(block, event.payload)
        return
    assert parse_delivery(block, event.payload) == expected
    assert expected[0].object_name == value


def test_a_fast_path_block_with_a_bad_action_type_or_time_is_refused_naming_it() -> None:
    event = _event()
    for header, value in (
        (AuditHeader.ACTION_TYPE, "explode"),
        (AuditHeader.ACTION_TIME, "2026-11-24T10:00:00"),
        (AuditHeader.ACTION_TIME, "yesterday"),
    ):
        block = header_block(SIGNER.sign({**event.headers(), header: value}, event.payload))
        assert _CANONICAL_BLOCK.fullmatch(block.decode()) is not None
        with pytest.raises(ValueError, match=header.value):
            parse_delivery(block, event.payload)
