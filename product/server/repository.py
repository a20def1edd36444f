"""All SQL of the product service (asyncpg, $n parameters); returns domain models."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from global_utils.data.sql import Filters
from global_utils.rules.validation import json_text
from product.server.models import Product, ProductDraft, ProductQuery

_COLUMNS = (
    "id, name, hierarchylevel, validfrom, validthru, extrafields, createdate, updatedate,"
    " modifiedby"
)


def build_search(query: ProductQuery) -> tuple[str, list[Any]]:
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
    return f"SELECT {_COLUMNS} FROM product{where} ORDER BY id{limit}", filters.args


def to_product(row: asyncpg.Record) -> Product:
    return Product(
        id=row["id"],
        name=row["name"],
        hierarchy_level=row["hierarchylevel"],
        valid_from=row["validfrom"],
        valid_thru=row["validthru"],
        extra_fields=json.loads(row["extrafields"]),
        create_date=row["createdate"],
        update_date=row["updatedate"],
        modified_by=row["modifiedby"],
    )


class ProductRepository:
    """Reads and writes products on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, product_id: int, *, for_update: bool = False) -> Product | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM product WHERE id = $1{lock}", product_id
        )
        return None if row is None else to_product(row)

    async def search(self, query: ProductQuery) -> tuple[list[Product], bool]:
        sql, args = build_search(query)
        products = [to_product(row) for row in await self._conn.fetch(sql, *args)]
        return products[: query.limit], len(products) > query.limit

    async def insert(self, draft: ProductDraft, modified_by: str) -> Product:
        row = await self._conn.fetchrow(
            "INSERT INTO product"
            " (name, hierarchylevel, validfrom, validthru, extrafields, modifiedby)"
            f" VALUES ($1, $2, $3, $4, $5::jsonb, $6) RETURNING {_COLUMNS}",
            draft.name,
            draft.hierarchy_level,
            draft.valid_from,
            draft.valid_thru,
            json_text(draft.extra_fields),
            modified_by,
        )
        return to_product(row)

    async def update(self, draft: ProductDraft, modified_by: str) -> Product | None:
        row = await self._conn.fetchrow(
            "UPDATE product SET name = $2, hierarchylevel = $3, validfrom = $4, validthru = $5,"
            " extrafields = $6::jsonb, modifiedby = $7, updatedate = now()"
            f" WHERE id = $1 RETURNING {_COLUMNS}",
            draft.id,
            draft.name,
            draft.hierarchy_level,
            draft.valid_from,
            draft.valid_thru,
            json_text(draft.extra_fields),
            modified_by,
        )
        return None if row is None else to_product(row)

    async def delete(self, product_id: int) -> int:
        status = await self._conn.execute("DELETE FROM product WHERE id = $1", product_id)
        return int(status.rsplit(" ", 1)[-1])
