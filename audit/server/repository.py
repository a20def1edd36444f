"""All SQL of the audit service: batch inserts that ignore redeliveries, rejects, history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from audit.server.models import AuditQuery, AuditRecord
from global_utils.audit import AuditEvent, Subject

_COLUMNS = (
    "eventid, actiontime, topic, service, actionfunc, actiontype, objectname, objectid,"
    " performedby, recordedtime, objectdetail, payloadtype"
)


def build_search(query: AuditQuery) -> tuple[str, list[Any]]:
    """SELECT for query, newest first; values only as $n parameters."""
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        numbers = []
        for value in values:
            args.append(value)
            numbers.append(f"${len(args)}")
        clauses.append(sql.format(*numbers))

    for column, value in (
        ("objectname", query.object_name),
        ("objectid", query.object_id),
        ("service", query.service),
        ("actiontype", query.action_type),
        ("performedby", query.performed_by),
    ):
        if value:
            add(f"{column} = {{}}", value)
    if query.from_time is not None:
        add("actiontime >= {}", query.from_time)
    if query.thru_time is not None:
        add("actiontime < {}", query.thru_time)
    if query.before is not None:
        add("(actiontime, eventid) < ({}, {})", *query.before)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(query.limit + 1)  # one extra row tells whether another page exists
    sql = (
        f"SELECT {_COLUMNS} FROM audit{where}"
        f" ORDER BY actiontime DESC, eventid DESC LIMIT ${len(args)}"
    )
    return sql, args


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
