"""Tamper evidence for stored audit rows: each row's hash covers its stored content and the
hash of the row before it in its chain, so a row edited, inserted or deleted in SQL shows.

Scope: a fixed set of chains (`audit_chain_heads`, 16 rows), each a lane that one batch at a
time claims with `FOR UPDATE SKIP LOCKED`; batches in flight (and several audit instances)
take different lanes and never wait for each other. Within a chain, rows follow each other in
the order they were stored (`chainseq` 1, 2, ...); the first links to 32 zero bytes.

Row hash, version 1: SHA-256 of the ASCII tag `gotemp-audit-chain-v1`, the previous hash (32
bytes), chainid (4 bytes) and chainseq (8 bytes) big-endian, then eventid (canonical text),
actiontime (microseconds since 1970-01-01 UTC, 8 bytes signed), topic, service, actionfunc,
actiontype, objectname, objectid, performedby, recordedtime (as actiontime), objectdetail
(bytes; NULL as length 0xFFFFFFFF) and payloadtype; texts UTF-8, every variable-length value
preceded by its length (4 bytes big-endian)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.server.wire import ReceivedEvent

GENESIS = bytes(32)
CHAIN_TAG = b"gotemp-audit-chain-v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"


def _micros(moment: datetime) -> bytes:
    return ((moment - _EPOCH) // _MICROSECOND).to_bytes(8, "big", signed=True)


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
) -> bytes:
    detail = _NULL if object_detail is None else _text_bytes(object_detail)
    return hashlib.sha256(
        b"".join(
            (
                CHAIN_TAG,
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
    seq and hash previous; returns the records, and the new last seq and hash."""
    records = []
    for row in rows:
        seq += 1
        previous = row_hash(
            previous,
            chain_id,
            seq,
            row.event_id,
            row.action_time,
            row.topic,
            row.service,
            row.action_func,
            row.action_type.value,
            row.object_name,
            row.object_id,
            row.performed_by,
            recorded,
            row.payload,
            row.payload_type,
        )
        records.append((*row, recorded, chain_id, seq, previous))
    return records, seq, previous


def stored_row_hash(row: Any, previous: bytes) -> bytes:
    """The hash a stored row (a record with the audit table's column names) should carry."""
    return row_hash(
        previous,
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
    if stored_row_hash(row, previous) != bytes(row["chainhash"]):
        return "content or link does not match its hash"
    return None
