"""All SQL of the audit service: batch inserts that ignore redeliveries, rejects, history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from audit.server.models import AuditQuery, AuditRecord
from global_utils.audit import AuditEvent, Subject
from global_utils.sql import Filters

_COLUMNS = (
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
    sql = f"SELECT {_COLUMNS} FROM audit{where} ORDER BY actiontime DESC, eventid DESC{limit}"
    return sql, filters.args


def _to_record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
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

    async def insert_events(self, events: Sequence[AuditEvent]) -> int:
        """Stores events in one statement; one already stored (a redelivery) is skipped.
        Returns how many rows were new."""
        if not events:
            return 0
        status = await self._conn.execute(
            "INSERT INTO audit (eventid, actiontime, topic, service, actionfunc, actiontype,"
            " objectname, objectid, performedby, objectdetail, payloadtype)"
            " SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[],"
            " $11::text[])"
            " ON CONFLICT (eventid, actiontime) DO NOTHING",
            [e.event_id for e in events],
            [e.action_time for e in events],
            [Subject.AUDIT.value] * len(events),
            [e.service for e in events],
            [e.action_func for e in events],
            [e.action_type.value for e in events],
            [e.object_name for e in events],
            [e.object_id for e in events],
            [e.performed_by for e in events],
            [e.payload for e in events],
            [e.payload_type for e in events],
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

    async def search(self, query: AuditQuery) -> tuple[list[AuditRecord], bool]:
        sql, args = build_search(query)
        rows = await self._conn.fetch(sql, *args)
        return [_to_record(r) for r in rows[: query.limit]], len(rows) > query.limit

    async def has_timescaledb(self) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
            )
        )
