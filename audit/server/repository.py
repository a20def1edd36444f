"""All SQL of the audit service: batch inserts that ignore redeliveries, rejects, history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from audit.server.events.chain import chained, mismatch
from audit.server.events.wire import COLUMNS, ReceivedEvent
from audit.server.models import AuditQuery, ChainBreak, HistoryCheck, StoredEvent
from global_utils.data.sql import Filters

# What a batch writes: the event's columns and its place in its chain (recordedtime is the
# column's default, now(): the transaction's start, which the chain claim reads for the hash).
COPY_COLUMNS = [*COLUMNS, "chainid", "chainseq", "chainhash"]
# Rows a history check reads per round trip.
_VERIFY_PREFETCH = 2000

# What history queries read back, StoredEvent's fields.
_STORED_COLUMNS = (
    "eventid, actiontime, topic, service, actionfunc, actiontype, objectname, objectid,"
    " performedby, recordedtime, objectdetail, payloadtype, traceid"
)


def build_search(query: AuditQuery) -> tuple[str, list[Any]]:
    """SELECT for query, newest first; values only as $n parameters."""
    filters = Filters()
    for column, value in (
        ("objectname", query.object_name),
        ("objectid", query.object_id),
        ("service", query.service),
        ("actiontype", query.action_type),
        ("performedby", query.performed_by),
    ):
        if value:
            filters.add(f"{column} = {{0}}", value)
    if query.from_time is not None:
        filters.add("actiontime >= {0}", query.from_time)
    if query.thru_time is not None:
        filters.add("actiontime < {0}", query.thru_time)
    if query.before is not None:
        filters.add("(actiontime, eventid) < ({0}, {1})", *query.before)
    where = filters.where()
    # one extra row tells whether another page exists
    limit = filters.limit(query.limit + 1)
    order = " ORDER BY actiontime DESC, eventid DESC"
    sql = f"SELECT {_STORED_COLUMNS} FROM audit{where}{order}{limit}"
    return sql, filters.args


def _to_stored_event(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        event_id=row["eventid"],
        action_time=row["actiontime"],
        topic=row["topic"],
        service=row["service"],
        action_func=row["actionfunc"],
        action_type=row["actiontype"],
        object_name=row["objectname"],
        object_id=row["objectid"],
        performed_by=row["performedby"],
        recorded_time=row["recordedtime"],
        object_detail=row["objectdetail"] or b"",
        payload_type=row["payloadtype"],
        trace_id=row["traceid"],
    )


class AuditRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def insert_events(self, rows: Sequence[ReceivedEvent]) -> int:
        """Stores events at the end of a chain; one already stored (a redelivery) is skipped.
        Returns how many rows were new. Raises asyncpg errors for rows the database refuses,
        leaving a surrounding transaction usable.

        One transaction: claim a chain no other batch holds, COPY the rows linked to its last
        hash, move its head. A redelivered event makes the unique (eventid, actiontime) index
        refuse the COPY; the transaction then starts again without the rows already there
        (rare enough that a savepoint's two round trips on every batch would cost more)."""
        pending = list(rows)
        while pending:
            try:
                async with self._conn.transaction():
                    chain_id, seq, previous, recorded = await self._claim_chain()
                    records, last_seq, last_hash = chained(
                        pending, chain_id, seq, previous, recorded
                    )
                    await self._conn.copy_records_to_table(
                        "audit", records=records, columns=COPY_COLUMNS
                    )
                    await self._conn.execute(
                        "UPDATE audit_chain_heads SET chainseq = $2, chainhash = $3"
                        " WHERE chainid = $1",
                        chain_id,
                        last_seq,
                        last_hash,
                    )
                return len(pending)
            except asyncpg.UniqueViolationError:
                pending = await self._not_stored(pending)
        return 0

    async def _claim_chain(self) -> tuple[int, int, bytes, datetime]:
        """Locks a chain head until the transaction ends (a free one, else waits for one);
        with it the transaction's start, which the rows' recordedtime defaults to."""
        head = await self._conn.fetchrow(
            "SELECT chainid, chainseq, chainhash, now() AS recorded FROM audit_chain_heads"
            " ORDER BY chainid LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        if head is None:
            head = await self._conn.fetchrow(
                "SELECT chainid, chainseq, chainhash, now() AS recorded FROM audit_chain_heads"
                " ORDER BY random() LIMIT 1 FOR UPDATE"
            )
        if head is None:
            raise asyncpg.PostgresError("audit_chain_heads is empty: run the audit init scripts")
        return head["chainid"], head["chainseq"], bytes(head["chainhash"]), head["recorded"]

    async def _not_stored(self, rows: list[ReceivedEvent]) -> list[ReceivedEvent]:
        """rows without those already stored and without repeats within rows."""
        stored = await self._conn.fetch(
            "SELECT a.eventid::text AS eventid, a.actiontime FROM audit a"
            " JOIN unnest($1::uuid[], $2::timestamptz[]) AS b(eventid, actiontime)"
            " ON a.eventid = b.eventid AND a.actiontime = b.actiontime",
            [r.event_id for r in rows],
            [r.action_time for r in rows],
        )
        seen = {(r["eventid"], r["actiontime"]) for r in stored}
        fresh = []
        for row in rows:
            key = (row.event_id, row.action_time)
            if key not in seen:
                seen.add(key)
                fresh.append(row)
        return fresh

    async def insert_reject(
        self, subject: str, headers: dict[str, str], payload: bytes, reason: str, kind: str
    ) -> None:
        await self._conn.execute(
            "INSERT INTO audit_rejects (subject, headers, payload, reason, kind)"
            " VALUES ($1, $2::jsonb, $3, $4, $5)",
            subject,
            json.dumps(headers),
            payload,
            reason[:2000],
            kind,
        )

    async def check_history(self, from_time: datetime, thru_time: datetime) -> HistoryCheck:
        """Walks the rows with from_time <= actiontime < thru_time (oldest first) and each
        chain's head; names the first row whose content or link does not match. Call inside
        a REPEATABLE READ transaction: one snapshot for rows and heads."""
        chaining_since = await self._conn.fetchval("SELECT min(createdat) FROM audit_chain_heads")
        checked = unchained = 0
        first: ChainBreak | None = None
        async for row in self._conn.cursor(
            f"SELECT {_STORED_COLUMNS}, a.chainid, a.chainseq, a.chainhash,"
            " prev.chainhash AS prevhash, prev.found IS NOT NULL AS hasprev FROM audit a"
            " LEFT JOIN LATERAL (SELECT p.chainhash, true AS found FROM audit p"
            "  WHERE p.chainid = a.chainid AND p.chainseq = a.chainseq - 1 LIMIT 1) prev ON true"
            " WHERE a.actiontime >= $1 AND a.actiontime < $2"
            " ORDER BY a.actiontime, a.eventid",
            from_time,
            thru_time,
            prefetch=_VERIFY_PREFETCH,
        ):
            checked += 1
            if row["chainid"] is None:
                unchained += 1
            if first is None and (reason := mismatch(row, chaining_since)) is not None:
                first = ChainBreak(
                    row["eventid"], row["actiontime"], row["chainid"], row["chainseq"], reason
                )
        if first is None:
            first = await self._check_heads()
        return HistoryCheck(checked, unchained, first)

    async def _check_heads(self) -> ChainBreak | None:
        """Each chain's last row is there, carries the head's hash, and nothing follows it."""
        heads = await self._conn.fetch(
            "SELECT h.chainid, h.chainseq, h.chainhash AS headhash, a.eventid, a.actiontime,"
            " a.chainhash, (SELECT max(n.chainseq) FROM audit n WHERE n.chainid = h.chainid)"
            " AS lastseq FROM audit_chain_heads h LEFT JOIN LATERAL (SELECT eventid, actiontime,"
            " chainhash FROM audit r WHERE r.chainid = h.chainid AND r.chainseq = h.chainseq"
            " LIMIT 1) a ON true WHERE h.chainseq > 0 ORDER BY h.chainid"
        )
        for head in heads:
            chain, seq = head["chainid"], head["chainseq"]
            if head["chainhash"] is None:
                reason = f"the last row of chain {chain} (row {seq}) is missing"
            elif bytes(head["chainhash"]) != bytes(head["headhash"]):
                reason = f"the last row of chain {chain} does not match the chain's head"
            elif head["lastseq"] != seq:
                reason = f"chain {chain} has rows after its head (row {seq})"
            else:
                continue
            return ChainBreak(head["eventid"], head["actiontime"], chain, seq, reason)
        return None

    async def search(self, query: AuditQuery) -> tuple[list[StoredEvent], bool]:
        sql, args = build_search(query)
        rows = await self._conn.fetch(sql, *args)
        return [_to_stored_event(r) for r in rows[: query.limit]], len(rows) > query.limit

    async def storage_mode(self) -> str:
        """How the audit table is stored, as the ready line says it."""
        has_extension = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        )
        # The information view exists only with the extension: asked in a second step.
        if has_extension and await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'audit')"
        ):
            return "TimescaleDB hypertable"
        return "ordinary table (no TimescaleDB)"
