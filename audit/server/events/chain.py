"""Tamper evidence for stored audit rows: each row's hash covers its stored content and the
hash of the row before it in its chain, so a row edited, inserted or deleted in SQL shows.

Scope: a fixed set of chains (`audit_chain_heads`, 16 rows), each a lane that one batch at a
time claims with `FOR UPDATE SKIP LOCKED`; batches in flight (and several audit instances)
take different lanes and never wait for each other. Within a chain, rows follow each other in
the order they were stored (`chainseq` 1, 2, ...); the first links to 32 zero bytes.

Row hash, version 2 (what rows are stored with): SHA-256 of the ASCII tag
`gotemp-audit-chain-v2` and a newline, the previous hash (32 bytes), then as UTF-8 text, each
followed by a newline: chainid, chainseq, eventid (canonical text), actiontime (microseconds
since 1970-01-01 UTC, decimal), topic, service, actionfunc, actiontype, objectname, objectid,
performedby, recordedtime (as actiontime), payloadtype; then `-` for a NULL objectdetail, or `+`
and its bytes. The consumer stores no text with a newline (header values are printable); a
stored row whose text has one does not match.

Version 1 (rows stored by the first release; still verified): SHA-256 of the ASCII tag
`gotemp-audit-chain-v1`, the previous hash (32 bytes), chainid (4 bytes) and chainseq (8 bytes)
big-endian, then eventid (canonical text), actiontime (microseconds since 1970-01-01 UTC, 8
bytes signed), topic, service, actionfunc, actiontype, objectname, objectid, performedby,
recordedtime (as actiontime), objectdetail (bytes; NULL as length 0xFFFFFFFF) and payloadtype;
texts UTF-8, every variable-length value preceded by its length (4 bytes big-endian).

A row matches if its hash is that of either version: both are public and unkeyed, so whoever
could forge one could forge the other, and accepting both costs no protection."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.server.events.wire import ReceivedEvent

GENESIS = bytes(32)
CHAIN_TAG_V1 = b"gotemp-audit-chain-v1"
CHAIN_TAG_V2 = b"gotemp-audit-chain-v2\n"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"
# The newlines a version 2 row's text holds: one after each of its 13 values.
_V2_TEXT_NEWLINES = 13


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _micros(moment: datetime) -> bytes:
    return _microseconds(moment).to_bytes(8, "big", signed=True)


def _text(value: str) -> bytes:
    encoded = value.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def row_hash(
    previous: bytes,
    chain_id: int,
    seq: int,
    event_id: str,
    action_time: datetime,
    topic: str,
    service: str,
    action_func: str,
    action_type: str,
    object_name: str,
    object_id: str,
    performed_by: str,
    recorded_time: datetime,
    object_detail: bytes | None,
    payload_type: str,
) -> bytes | None:
    """The version 2 hash of a row; None for text it cannot encode (a value with a newline)."""
    return _row_hash_v2(
        previous,
        chain_id,
        seq,
        event_id,
        _microseconds(action_time),
        topic,
        service,
        action_func,
        action_type,
        object_name,
        object_id,
        performed_by,
        _microseconds(recorded_time),
        object_detail,
        payload_type,
    )


def _row_hash_v2(
    previous: bytes,
    chain_id: int,
    seq: int,
    event_id: str,
    action_micros: int,
    topic: str,
    service: str,
    action_func: str,
    action_type: str,
    object_name: str,
    object_id: str,
    performed_by: str,
    recorded_micros: int,
    object_detail: bytes | None,
    payload_type: str,
) -> bytes | None:
    text = (
        f"{chain_id}\n{seq}\n{event_id}\n{action_micros}\n{topic}\n{service}\n{action_func}\n"
        f"{action_type}\n{object_name}\n{object_id}\n{performed_by}\n{recorded_micros}\n"
        f"{payload_type}\n"
    )
    if text.count("\n") != _V2_TEXT_NEWLINES:
        return None
    detail = b"-" if object_detail is None else b"+" + object_detail
    return hashlib.sha256(b"".join((CHAIN_TAG_V2, previous, text.encode(), detail))).digest()


def row_hash_v1(
    previous: bytes,
    chain_id: int,
    seq: int,
    event_id: str,
    action_time: datetime,
    topic: str,
    service: str,
    action_func: str,
    action_type: str,
    object_name: str,
    object_id: str,
    performed_by: str,
    recorded_time: datetime,
    object_detail: bytes | None,
    payload_type: str,
) -> bytes:
    """The first release's hash of a row (rows it stored still verify)."""
    detail = _NULL if object_detail is None else _text_bytes(object_detail)
    return hashlib.sha256(
        b"".join(
            (
                CHAIN_TAG_V1,
                previous,
                chain_id.to_bytes(4, "big"),
                seq.to_bytes(8, "big"),
                _text(event_id),
                _micros(action_time),
                _text(topic),
                _text(service),
                _text(action_func),
                _text(action_type),
                _text(object_name),
                _text(object_id),
                _text(performed_by),
                _micros(recorded_time),
                detail,
                _text(payload_type),
            )
        )
    ).digest()


def _text_bytes(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def chained(
    rows: Sequence[ReceivedEvent], chain_id: int, seq: int, previous: bytes, recorded: datetime
) -> tuple[list[tuple[Any, ...]], int, bytes]:
    """rows as audit table records (COPY_COLUMNS' order) continuing a chain whose last row has
    seq and hash previous, stored at recorded; returns the records, and the new last seq and
    hash. Raises ValueError for a row whose text has a newline (the consumer's validation
    refuses those).

    _row_hash_v2 inlined: this loop runs for every stored event, and a call with fifteen
    arguments costs as much as the hash."""
    records = []
    recorded_micros = _microseconds(recorded)
    sha256 = hashlib.sha256
    for row in rows:
        # the trace id (last) is not hashed: it says where to look, proves nothing
        (
            event_id,
            action_time,
            topic,
            service,
            func,
            action,
            name,
            object_id,
            by,
            detail,
            kind,
            _,
        ) = row
        seq += 1
        text = (
            f"{chain_id}\n{seq}\n{event_id}\n{(action_time - _EPOCH) // _MICROSECOND}\n{topic}\n"
            f"{service}\n{func}\n{action}\n{name}\n{object_id}\n{by}\n{recorded_micros}\n{kind}\n"
        )
        if text.count("\n") != _V2_TEXT_NEWLINES:
            raise ValueError(f"event {event_id}: a text value contains a newline")
        previous = sha256(b"".join((CHAIN_TAG_V2, previous, text.encode(), b"+", detail))).digest()
        records.append(row + (chain_id, seq, previous))
    return records, seq, previous


def _stored_values(row: Any) -> tuple[Any, ...]:
    """A stored row's values in row_hash's order, after previous."""
    return (
        row["chainid"],
        row["chainseq"],
        str(row["eventid"]),
        row["actiontime"],
        row["topic"],
        row["service"],
        row["actionfunc"],
        row["actiontype"],
        row["objectname"],
        row["objectid"],
        row["performedby"],
        row["recordedtime"],
        row["objectdetail"],
        row["payloadtype"],
    )


def stored_row_matches(row: Any, previous: bytes) -> bool:
    """Whether a stored row (a record with the audit table's column names) carries the hash
    of its content and previous, in either version."""
    stored = bytes(row["chainhash"])
    values = _stored_values(row)
    return row_hash(previous, *values) == stored or row_hash_v1(previous, *values) == stored


def mismatch(row: Any, chaining_since: datetime | None) -> str | None:
    """Why a stored row (with its predecessor's hash as `prevhash`, and `hasprev`) does not
    match its chain, or None."""
    if row["chainid"] is None:
        if chaining_since is not None and row["recordedtime"] >= chaining_since:
            return "not chained, though stored after chaining began"
        return None
    if row["chainhash"] is None or row["chainseq"] is None:
        return "chain columns incomplete"
    if row["chainseq"] == 1:
        previous = GENESIS
    elif not row["hasprev"]:
        return f"link broken: row {row['chainseq'] - 1} of chain {row['chainid']} is missing"
    else:
        previous = bytes(row["prevhash"])
    if not stored_row_matches(row, previous):
        return "content or link does not match its hash"
    return None
