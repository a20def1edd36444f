"""All SQL of the promotion service (asyncpg, $n parameters); returns domain models."""

from __future__ import annotations

from typing import Any

import asyncpg

from global_utils.data.sql import Filters
from promotion.server.models import Discount, Product, Promotion, PromotionDraft, PromotionQuery

_COLUMNS = (
    "id, name, description, validfrom, validthru, active, customerid, approvalstatus,"
    " prevapprovalstatus"
)


def build_search(query: PromotionQuery) -> tuple[str, list[Any]]:
    """SELECT for query: one $n parameter per given filter, values never pasted into SQL."""
    filters = Filters()
    if query.id:
        filters.add("id = {0}", query.id)
    if query.name:
        filters.add("name = {0}", query.name)
    if query.customer_id:
        filters.add("customerid = {0}", query.customer_id)
    if query.product_id:
        filters.add(
            "EXISTS (SELECT 1 FROM promotion_product pp"
            " WHERE pp.promotionid = promotion.id AND pp.productid = {0})",
            query.product_id,
        )
    if query.valid_date is not None:
        filters.add("validfrom <= {0} AND validthru >= {0}", query.valid_date)
    if query.after_id:
        filters.add("id > {0}", query.after_id)
    where = filters.where()
    # one extra row tells whether another page exists
    limit = filters.limit(query.limit + 1)
    return f"SELECT {_COLUMNS} FROM promotion{where} ORDER BY id{limit}", filters.args


def line_columns(products: list[Product]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The product and discount lines as column arrays (for one unnest insert each), in the
    order the caller gave them."""
    product_cols: list[list[Any]] = [[], [], []]
    discount_cols: list[list[Any]] = [[], [], [], [], [], []]
    for position, product in enumerate(products):
        for col, value in zip(product_cols, (product.id, product.upc_code, position), strict=True):
            col.append(value)
        for d_position, d in enumerate(product.discounts):
            row = (product.id, d.id, d.value, d.type, d.description, d_position)
            for col, value in zip(discount_cols, row, strict=True):
                col.append(value)
    return product_cols, discount_cols


# One round trip: a page of promotions with their product and discount lines joined on.
_WITH_LINES = (
    "SELECT page.*, pp.productid, pp.upccode, d.id AS discountid, d.value, d.type,"
    " d.description AS discountdescription"
    " FROM page"
    " LEFT JOIN promotion_product pp ON pp.promotionid = page.id"
    " LEFT JOIN promotion_discount d"
    "  ON d.promotionid = pp.promotionid AND d.productid = pp.productid"
    " ORDER BY page.id, pp.position, d.position"
)


def assemble(rows: list[asyncpg.Record]) -> list[Promotion]:
    """Promotions from joined rows (one row per discount, or per product, or per promotion)."""
    headers: dict[int, asyncpg.Record] = {}
    products: dict[int, dict[int, tuple[str, list[Discount]]]] = {}
    for row in rows:
        pid = row["id"]
        if pid not in headers:
            headers[pid] = row
            products[pid] = {}
        if row["productid"] is None:
            continue
        _, discounts = products[pid].setdefault(row["productid"], (row["upccode"], []))
        if row["discountid"] is not None:
            discounts.append(
                Discount(
                    id=row["discountid"],
                    value=row["value"],
                    type=row["type"],
                    description=row["discountdescription"],
                )
            )
    return [
        Promotion(
            id=pid,
            name=row["name"],
            description=row["description"],
            valid_from=row["validfrom"],
            valid_thru=row["validthru"],
            active=row["active"],
            customer_id=row["customerid"],
            approval_status=row["approvalstatus"],
            prev_approval_status=row["prevapprovalstatus"],
            products=tuple(
                Product(id=product_id, upc_code=upc, discounts=tuple(discounts))
                for product_id, (upc, discounts) in products[pid].items()
            ),
        )
        for pid, row in headers.items()
    ]


class PromotionRepository:
    """Reads and writes promotions and their lines on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, promotion_id: int, *, for_update: bool = False) -> Promotion | None:
        if for_update:
            # Lock the header first; lines are read after, under that lock.
            await self._conn.execute(
                "SELECT 1 FROM promotion WHERE id = $1 FOR UPDATE", promotion_id
            )
        rows = await self._conn.fetch(
            f"WITH page AS (SELECT {_COLUMNS} FROM promotion WHERE id = $1) {_WITH_LINES}",
            promotion_id,
        )
        found = assemble(rows)
        return found[0] if found else None

    async def search(self, query: PromotionQuery) -> tuple[list[Promotion], bool]:
        sql, args = build_search(query)
        promotions = assemble(await self._conn.fetch(f"WITH page AS ({sql}) {_WITH_LINES}", *args))
        return promotions[: query.limit], len(promotions) > query.limit

    async def insert(self, draft: PromotionDraft) -> Promotion:
        promotion_id = await self._conn.fetchval(
            "INSERT INTO promotion (name, description, validfrom, validthru, active, customerid,"
            " approvalstatus, prevapprovalstatus) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING id",
            draft.name,
            draft.description,
            draft.valid_from,
            draft.valid_thru,
            draft.active,
            draft.customer_id,
            draft.approval_status,
            draft.prev_approval_status,
        )
        await self._write_lines(promotion_id, draft.products)
        stored = await self.get(promotion_id)
        assert stored is not None
        return stored

    async def update(self, draft: PromotionDraft) -> Promotion | None:
        """Updates the header and replaces every line with the draft's."""
        status = await self._conn.execute(
            "UPDATE promotion SET name = $2, description = $3, validfrom = $4, validthru = $5,"
            " active = $6, customerid = $7, approvalstatus = $8, prevapprovalstatus = $9,"
            " updatedate = now() WHERE id = $1",
            draft.id,
            draft.name,
            draft.description,
            draft.valid_from,
            draft.valid_thru,
            draft.active,
            draft.customer_id,
            draft.approval_status,
            draft.prev_approval_status,
        )
        if status.endswith(" 0"):
            return None
        await self._conn.execute("DELETE FROM promotion_product WHERE promotionid = $1", draft.id)
        await self._write_lines(draft.id, draft.products)
        return await self.get(draft.id)

    async def delete(self, promotion_id: int) -> int:
        status = await self._conn.execute("DELETE FROM promotion WHERE id = $1", promotion_id)
        return int(status.rsplit(" ", 1)[-1])

    async def _write_lines(self, promotion_id: int, products: list[Product]) -> None:
        if not products:
            return
        product_cols, discount_cols = line_columns(products)
        await self._conn.execute(
            "INSERT INTO promotion_product (promotionid, productid, upccode, position)"
            " SELECT $1, t.productid, t.upccode, t.position"
            " FROM unnest($2::bigint[], $3::text[], $4::int[]) AS t(productid, upccode, position)",
            promotion_id,
            *product_cols,
        )
        if discount_cols[0]:
            await self._conn.execute(
                "INSERT INTO promotion_discount"
                " (promotionid, productid, id, value, type, description, position)"
                " SELECT $1, t.productid, CASE WHEN t.id = 0 THEN next_id() ELSE t.id END,"
                " t.value, t.type, t.description, t.position"
                " FROM unnest($2::bigint[], $3::bigint[], $4::float8[], $5::int[], $6::text[],"
                " $7::int[]) AS t(productid, id, value, type, description, position)",
                promotion_id,
                *discount_cols,
            )
