"""All SQL of the customer service (asyncpg, $n parameters); returns domain models."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from customer.server.models import Customer, CustomerDraft, CustomerQuery
from global_utils.data.sql import Filters
from global_utils.rules.validation import json_text

_COLUMNS = "id, name, validfrom, validthru, extrafields, createdate, updatedate, modifiedby"


def build_search(query: CustomerQuery) -> tuple[str, list[Any]]:
    """SELECT for query: one $n parameter per given filter, values never pasted into SQL."""
    filters = Filters()
    if query.id:
        filters.add("id = {0}", query.id)
    if query.name:
        filters.add("name = {0}", query.name)
    if query.valid_date is not None:
        filters.add("validfrom <= {0} AND validthru >= {0}", query.valid_date)
    if query.after_id:
        filters.add("id > {0}", query.after_id)
    where = filters.where()
    # one extra row tells whether another page exists
    limit = filters.limit(query.limit + 1)
    return f"SELECT {_COLUMNS} FROM customer{where} ORDER BY id{limit}", filters.args


def to_customer(row: asyncpg.Record) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        valid_from=row["validfrom"],
        valid_thru=row["validthru"],
        extra_fields=json.loads(row["extrafields"]),
        create_date=row["createdate"],
        update_date=row["updatedate"],
        modified_by=row["modifiedby"],
    )


class CustomerRepository:
    """Reads and writes customers on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, customer_id: int, *, for_update: bool = False) -> Customer | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM customer WHERE id = $1{lock}", customer_id
        )
        return None if row is None else to_customer(row)

    async def search(self, query: CustomerQuery) -> tuple[list[Customer], bool]:
        sql, args = build_search(query)
        customers = [to_customer(row) for row in await self._conn.fetch(sql, *args)]
        return customers[: query.limit], len(customers) > query.limit

    async def insert(self, draft: CustomerDraft, modified_by: str) -> Customer:
        row = await self._conn.fetchrow(
            "INSERT INTO customer (name, validfrom, validthru, extrafields, modifiedby)"
            f" VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING {_COLUMNS}",
            draft.name,
            draft.valid_from,
            draft.valid_thru,
            json_text(draft.extra_fields),
            modified_by,
        )
        return to_customer(row)

    async def update(self, draft: CustomerDraft, modified_by: str) -> Customer | None:
        row = await self._conn.fetchrow(
            "UPDATE customer SET name = $2, validfrom = $3, validthru = $4,"
            " extrafields = $5::jsonb, modifiedby = $6, updatedate = now()"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            draft.id,
            draft.name,
            draft.valid_from,
            draft.valid_thru,
            json_text(draft.extra_fields),
            modified_by,
        )
        return None if row is None else to_customer(row)

    async def delete(self, customer_id: int) -> int:
        status = await self._conn.execute("DELETE FROM customer WHERE id = $1", customer_id)
        return int(status.rsplit(" ", 1)[-1])
