"""The audit envelope's wire format: what the relays encode, what the audit consumer reads back,
and what it refuses (an unknown version, a body that is not one, limits)."""

from __future__ import annotations

import random
import struct

import pytest

from audit.server.events.authenticity import EventAuthenticator, ProducerKey
from audit.server.events.wire import parse_delivery
from global_utils.events.audit_event import ActionType, AuditEvent, AuditHeader
from global_utils.events.envelope import (
    ENVELOPE_VERSION,
    MAX_ENVELOPE_BYTES,
    MAX_ENVELOPE_EVENTS,
    EnvelopeError,
    decode,
    encode,
    envelope_headers,
    envelope_version,
    event_size,
    header_block,
)
from global_utils.events.signing import EventSigner, in_published_order

KEY = b"k" * 32
SIGNER = EventSigner("user-1", KEY)
AUTHENTICATOR = EventAuthenticator({"user-1": ProducerKey("user", KEY)})


def _signed(number: int, payload: bytes = b"\x08\x2a") -> tuple[AuditEvent, bytes, bytes]:
    """An event, and its header block and payload as a relay puts them in an envelope."""
    event = AuditEvent(
        service="user",
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name="user",
        object_id=str(number),
        performed_by="7",
        payload_type="user.User",
        payload=payload,
    )
    headers = in_published_order(SIGNER.sign(event.headers(), event.payload))
    return event, header_block(headers), event.payload


def _entries(count: int) -> list[tuple[bytes, bytes]]:
    return [(block, payload) for _, block, payload in (_signed(i) for i in range(count))]


def test_an_envelope_reads_back_as_its_events_in_order_each_authentic_on_its_own() -> None:
    signed = [_signed(i) for i in range(5)]
    decoded = decode(encode([(block, payload) for _, block, payload in signed]))
    assert decoded == [(block, payload) for _, block, payload in signed]
    for (event, _, _), (block, payload) in zip(signed, decoded, strict=True):
        received, seal = parse_delivery(block, payload)
        assert received.event_id == str(event.event_id)
        assert received.object_id == event.object_id
        assert AUTHENTICATOR.check(received, seal) is None


def test_an_event_altered_inside_an_envelope_fails_its_own_mac_only() -> None:
    entries = _entries(3)
    block, payload = entries[1]
    entries[1] = (block, payload + b"\x00")
    checks = []
    for block, payload in decode(encode(entries)):
        checks.append(AUTHENTICATOR.check(*parse_delivery(block, payload)))
    assert checks[0] is None and checks[2] is None
    assert checks[1] is not None and checks[1][0].value == "altered"


def test_an_envelope_names_its_version_and_a_single_event_names_none() -> None:
    envelope = header_block(envelope_headers("envelope-1"))
    assert envelope_version(envelope) == ENVELOPE_VERSION
    assert envelope_version(_signed(1)[1]) is None
    assert envelope_version(None) is None
    assert envelope_version(b"NATS/1.0\r\nauditEnvelope: 7\r\n\r\n") == "7"
    # a value that merely contains the header's name is not the header
    assert envelope_version(header_block({"objectId": "auditEnvelope: 1"})) is None


def test_the_previous_releases_parser_refuses_an_envelope_as_malformed() -> None:
    """Consumers of the previous release parse every message as one event (parse_delivery):
    an envelope's own headers carry no event fields, so they refuse it (malformed, terminated,
    kept in audit_rejects) instead of storing anything of it."""
    body = encode(_entries(3))
    with pytest.raises(ValueError, match="header service missing"):
        parse_delivery(header_block(envelope_headers("envelope-1")), body)


def test_encoding_refuses_no_events_too_many_or_too_many_bytes() -> None:
    with pytest.raises(ValueError):
        encode([])
    block, payload = _entries(1)[0]
    with pytest.raises(ValueError):
        encode([(block, payload)] * (MAX_ENVELOPE_EVENTS + 1))
    big = b"x" * (MAX_ENVELOPE_BYTES // 2)
    with pytest.raises(ValueError):
        encode([(block, big), (block, big)])
    assert len(encode([(block, payload)] * MAX_ENVELOPE_EVENTS)) <= MAX_ENVELOPE_BYTES
    assert len(encode([(block, payload)])) == 4 + event_size(block, payload)


def test_decoding_refuses_every_truncation_of_an_envelope() -> None:
    body = encode(_entries(3))
    for end in range(len(body)):
        with pytest.raises(EnvelopeError):
            decode(body[:end])


def test_decoding_refuses_wrong_counts_and_leftover_bytes() -> None:
    body = encode(_entries(3))
    rest = body[4:]
    with pytest.raises(EnvelopeError, match="runs past|ends inside"):
        decode(struct.pack(">I", 4) + rest)
    with pytest.raises(EnvelopeError, match="bytes after"):
        decode(struct.pack(">I", 2) + rest)
    with pytest.raises(EnvelopeError, match="names 0 events"):
        decode(struct.pack(">I", 0) + rest)
    with pytest.raises(EnvelopeError, match="bytes after"):
        decode(body + b"\x00")


def test_decoding_refuses_a_huge_count_or_length_before_doing_the_work() -> None:
    with pytest.raises(EnvelopeError, match="names 4294967295 events"):
        decode(b"\xff\xff\xff\xff" + b"\x00" * 64)
    with pytest.raises(EnvelopeError, match="cannot hold"):
        decode(struct.pack(">I", MAX_ENVELOPE_EVENTS) + b"\x00" * 16)
    with pytest.raises(EnvelopeError, match="runs past"):
        decode(struct.pack(">III", 1, 0xFFFFFFFF, 0xFFFFFFFF))


def test_decoding_refuses_an_oversized_body() -> None:
    block, payload = _entries(1)[0]
    body = (
        struct.pack(">III", 1, len(block), MAX_ENVELOPE_BYTES) + block + b"x" * MAX_ENVELOPE_BYTES
    )
    with pytest.raises(EnvelopeError, match="more than"):
        decode(body)


def test_random_bytes_decode_or_are_refused_never_anything_else() -> None:
    rng = random.Random(27)
    body = bytearray(encode(_entries(4)))
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        for candidate in (bytes(mutated), garbage, bytes(mutated[: rng.randrange(len(mutated))])):
            try:
                events = decode(candidate)
            except EnvelopeError:
                continue
            assert 1 <= len(events) <= MAX_ENVELOPE_EVENTS
            # what does decode is an event list; each event is then parsed (or refused) alone
            for block, payload in events:
                try:
                    parse_delivery(block, payload)
                except ValueError:
                    pass


def test_an_envelope_message_carries_its_version_and_its_own_id() -> None:
    headers = envelope_headers("envelope-abc")
    assert headers == {AuditHeader.ENVELOPE.value: "1", AuditHeader.MSG_ID.value: "envelope-abc"}
