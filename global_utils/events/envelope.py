"""The audit envelope: several signed audit events in one JetStream message (docs/events.md).

Version 1. The message carries the header `auditEnvelope: 1` (and a Nats-Msg-Id of its own);
its body is the event count (4 bytes big-endian), then per event the length of its header block
and of its payload (4 bytes big-endian each), the header block and the payload. Each event's
header block is exactly what that event would carry as a message of its own
("NATS/1.0\r\n" and `name: value\r\n` lines, ending in an empty line): its fields, event id,
key id and MAC, and its traceparent. So the audit service checks each event as it checks a
message of one event, and a consumer that knows no envelopes (the previous release) finds no
event's headers on the message and refuses it as malformed (terminated, kept in
audit_rejects), never storing part of it.

Both sides of the format are here, beside each other: the relays encode, the audit consumer
decodes, and the unit tests hold the two together."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from global_utils.events.audit_event import AuditHeader

ENVELOPE_VERSION = "1"
# The most events and bytes one envelope may hold; the consumer refuses more. The server's
# max_payload is NATS's default, 1 MiB (nats/nats.conf sets none): an envelope stays at half
# of it, whatever its headers add.
MAX_ENVELOPE_EVENTS = 1000
MAX_ENVELOPE_BYTES = 512 * 1024
# How many events a relay puts in one envelope unless AUDIT_ENVELOPE_EVENTS says otherwise.
DEFAULT_ENVELOPE_EVENTS = 100

_COUNT = struct.Struct(">I")
_SIZES = struct.Struct(">II")
# What one event adds to an envelope besides its header block and payload.
EVENT_OVERHEAD = _SIZES.size
EMPTY_ENVELOPE_BYTES = _COUNT.size


class EnvelopeError(ValueError):
    """An envelope this consumer cannot read; the message says why (no secret, no payload)."""


def header_block(headers: Mapping[str, str]) -> bytes:
    """headers as a NATS header block, as clients write them on the wire."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def event_size(block: bytes, payload: bytes) -> int:
    """The bytes an event takes in an envelope's body."""
    return EVENT_OVERHEAD + len(block) + len(payload)


def encode(events: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The body of an envelope of events (header block, payload), in their order. Raises
    ValueError for none, more than MAX_ENVELOPE_EVENTS, or more than MAX_ENVELOPE_BYTES."""
    if not 1 <= len(events) <= MAX_ENVELOPE_EVENTS:
        raise ValueError(f"an envelope holds 1 to {MAX_ENVELOPE_EVENTS} events, not {len(events)}")
    parts = [_COUNT.pack(len(events))]
    for block, payload in events:
        parts += (_SIZES.pack(len(block), len(payload)), block, payload)
    body = b"".join(parts)
    if len(body) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"an envelope holds at most {MAX_ENVELOPE_BYTES} bytes, not {len(body)}")
    return body


def envelope_headers(envelope_id: str) -> dict[str, str]:
    """The headers of an envelope message: its version, and the id JetStream de-duplicates a
    re-sent envelope by."""
    return {AuditHeader.ENVELOPE.value: ENVELOPE_VERSION, AuditHeader.MSG_ID.value: envelope_id}


def header_in_block(block: bytes | None, name: str) -> str | None:
    """One header's value from a NATS header block, without parsing the rest of it (a header
    value holds no line break, so the name cannot be part of another header); None when the
    block has no such header."""
    if not block:
        return None
    mark = b"\r\n" + name.encode() + b":"
    start = block.find(mark)
    if start < 0:
        return None
    start += len(mark)
    end = block.find(b"\r\n", start)
    return block[start : end if end >= 0 else len(block)].decode("utf-8", "replace").strip()


def envelope_version(block: bytes | None) -> str | None:
    """The envelope version a message's header block names; None for a message of one event
    (no such header)."""
    return header_in_block(block, AuditHeader.ENVELOPE.value)


def event_count(block: bytes | None, body: bytes) -> int:
    """How many events a message holds by its own word (1 for a message of one event), at
    least 1 and at most MAX_ENVELOPE_EVENTS whatever it says: for sizing batches before the
    message is read (decode checks it)."""
    if envelope_version(block) is None or len(body) < _COUNT.size:
        return 1
    (count,) = _COUNT.unpack_from(body)
    return min(max(count, 1), MAX_ENVELOPE_EVENTS)


def decode(body: bytes) -> list[tuple[bytes, bytes]]:
    """The events (header block, payload) of a version 1 envelope's body, in their order.
    Raises EnvelopeError for a body that is not one: too large, a count out of range, an
    event running past the end, bytes left over."""
    size = len(body)
    if size > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope of {size} bytes, more than {MAX_ENVELOPE_BYTES}")
    if size < _COUNT.size:
        raise EnvelopeError("envelope shorter than its event count")
    (count,) = _COUNT.unpack_from(body)
    if not 1 <= count <= MAX_ENVELOPE_EVENTS:
        raise EnvelopeError(f"envelope names {count} events (1 to {MAX_ENVELOPE_EVENTS})")
    # Each event needs at least its two lengths: a count the body cannot hold is refused
    # before any work.
    if count * _SIZES.size > size - _COUNT.size:
        raise EnvelopeError(f"envelope names {count} events, its {size} bytes cannot hold them")
    events = []
    at = _COUNT.size
    unpack = _SIZES.unpack_from
    for number in range(1, count + 1):
        if at + _SIZES.size > size:
            raise EnvelopeError(f"envelope ends inside event {number} of {count}")
        block_size, payload_size = unpack(body, at)
        at += _SIZES.size
        end = at + block_size + payload_size
        if end > size:
            raise EnvelopeError(f"event {number} of {count} runs past the envelope's end")
        events.append((body[at : at + block_size], body[at + block_size : end]))
        at = end
    if at != size:
        raise EnvelopeError(f"{size - at} bytes after the envelope's {count} events")
    return events
