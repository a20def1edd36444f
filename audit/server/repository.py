"""All SQL of the audit service: batch inserts that ignore redeliveries, rejects, history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from audit.server.models import AuditQuery, StoredEvent
from audit.server.wire import COLUMNS, ReceivedEvent
from global_utils.sql import Filters

# What history queries read back, StoredEvent's fields.
_STORED_COLUMNS = (
    "eventid, actiontime, topic, service, actionfunc, actiontype, objectname, objectid,"
    " performedby, recordedtime, objectdetail, payloadtype"
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
    )


class AuditRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def insert_events(self, rows: Sequence[ReceivedEvent]) -> int:
        """Stores events; one already stored (a redelivery) is skipped. Returns how many rows
        were new. Raises asyncpg errors for rows the database refuses, leaving a surrounding
        transaction usable.

        A COPY first: the fast path, at the cost of a bulk load. A redelivered event makes the
        unique (eventid, actiontime) index refuse the whole COPY; the batch then goes in again
        with one INSERT that skips the rows already there."""
        if not rows:
            return 0
        try:
            async with self._conn.transaction():
                await self._conn.copy_records_to_table("audit", records=rows, columns=COLUMNS)
            return len(rows)
        except asyncpg.UniqueViolationError:
            pass
        async with self._conn.transaction():
            status = await self._conn.execute(
                f"INSERT INTO audit ({', '.join(COLUMNS)})"
                " SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],"
                " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[],"
                " $11::text[])"
                " ON CONFLICT (eventid, actiontime) DO NOTHING",
                *zip(*rows, strict=True),
            )
        return int(status.rsplit(" ", 1)[-1])

    async def insert_reject(
        self, subject: str, headers: dict[str, str], payload: bytes, reason: str
    ) -> None:
        await self._conn.execute(
            "INSERT INTO audit_rejects (subject, headers, payload, reason)"
            " VALUES ($1, $2::jsonb, $3, $4)",
            subject,
            json.dumps(headers),
            payload,
            reason[:2000],
        )

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
