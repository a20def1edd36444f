"""Promotion validation, search building and line flattening, as pure functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from global_errors import Failure, MessageKey
from promotion.server.models import Discount, Product, PromotionDraft, PromotionQuery
from promotion.server.repository import build_search, line_columns
from promotion.server.validation import (
    MAX_DISCOUNTS,
    MAX_PRODUCTS,
    validate_draft,
    validate_query,
)

T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2021, 1, 1, tzinfo=UTC)


def draft(**fields: object) -> PromotionDraft:
    values: dict[str, Any] = {
        "name": "Promo",
        "customer_id": 5,
        "valid_from": T0,
        "valid_thru": T1,
        "products": [Product(1, "upc", (Discount(0, 10, 1, "ten"),))],
    }
    values.update(fields)
    return PromotionDraft(**values)


def keyed(failures: list[Failure]) -> list[tuple[str, MessageKey]]:
    return [(f.field, f.key) for f in failures]


def test_valid_draft_passes() -> None:
    assert validate_draft(draft(), creating=True) == []


def test_required_fields_all_reported() -> None:
    failures = validate_draft(PromotionDraft(), creating=False)
    assert [f.field for f in failures] == ["id", "name", "customer_id", "valid_from", "valid_thru"]


def test_valid_thru_after_valid_from() -> None:
    assert keyed(validate_draft(draft(valid_thru=T0), creating=True)) == [
        ("valid_thru", MessageKey.VALID_THRU_NOT_AFTER_FROM)
    ]


def test_negative_numbers() -> None:
    failures = validate_draft(draft(customer_id=-1, approval_status=-2), creating=True)
    assert keyed(failures) == [
        ("customer_id", MessageKey.FIELD_NOT_POSITIVE),
        ("approval_status", MessageKey.FIELD_OUT_OF_RANGE),
    ]


@pytest.mark.parametrize(
    ("discount", "field", "key"),
    [
        (Discount(0, math.nan, 1, ""), "value", MessageKey.FIELD_NOT_NUMBER),
        (Discount(0, math.inf, 2, ""), "value", MessageKey.FIELD_NOT_NUMBER),
        (Discount(0, -math.inf, 2, ""), "value", MessageKey.FIELD_NOT_NUMBER),
        (Discount(0, 0, 2, ""), "value", MessageKey.FIELD_OUT_OF_RANGE),
        (Discount(0, -5, 2, ""), "value", MessageKey.FIELD_OUT_OF_RANGE),
        (Discount(0, 100.5, 1, ""), "value", MessageKey.FIELD_OUT_OF_RANGE),
        (Discount(0, 10, 3, ""), "type", MessageKey.FIELD_NOT_ALLOWED),
        (Discount(0, 10, 0, ""), "type", MessageKey.FIELD_NOT_ALLOWED),
        (Discount(-1, 10, 1, ""), "id", MessageKey.FIELD_NOT_POSITIVE),
        (Discount(0, 10, 1, "x" * 201), "description", MessageKey.FIELD_TOO_LONG),
    ],
)
def test_bad_discounts(discount: Discount, field: str, key: MessageKey) -> None:
    failures = validate_draft(draft(products=[Product(1, "u", (discount,))]), creating=True)
    assert keyed(failures) == [(f"product[0].discount[0].{field}", key)]


def test_amounts_may_exceed_a_hundred() -> None:
    assert (
        validate_draft(draft(products=[Product(1, "u", (Discount(0, 250, 2, ""),))]), creating=True)
        == []
    )


def test_product_rules() -> None:
    products = [Product(0, "u"), Product(7, "x" * 65), Product(7, "u")]
    assert keyed(validate_draft(draft(products=products), creating=True)) == [
        ("product[0].id", MessageKey.FIELD_NOT_POSITIVE),
        ("product[1].upc_code", MessageKey.FIELD_TOO_LONG),
        ("product[2].id", MessageKey.FIELD_DUPLICATE),
    ]


def test_duplicate_discount_ids_within_a_product() -> None:
    product = Product(
        1,
        "u",
        (
            Discount(9, 1, 2, ""),
            Discount(9, 2, 2, ""),
            Discount(0, 1, 2, ""),
            Discount(0, 1, 2, ""),
        ),
    )
    assert keyed(validate_draft(draft(products=[product]), creating=True)) == [
        ("product[0].discount[1].id", MessageKey.FIELD_DUPLICATE)
    ]


def test_too_many_lines_is_one_clear_failure() -> None:
    many = [Product(i + 1, "u") for i in range(5000)]
    assert keyed(validate_draft(draft(products=many), creating=True)) == [
        ("product", MessageKey.TOO_MANY_ITEMS)
    ]
    exactly = [Product(i + 1, "u") for i in range(MAX_PRODUCTS)]
    assert validate_draft(draft(products=exactly), creating=True) == []
    discounts = tuple(Discount(0, 1, 2, "") for _ in range(MAX_DISCOUNTS + 1))
    assert keyed(validate_draft(draft(products=[Product(1, "u", discounts)]), creating=True)) == [
        ("product[0].discount", MessageKey.TOO_MANY_ITEMS)
    ]


def test_query_rules() -> None:
    assert validate_query(PromotionQuery()) == []
    failures = validate_query(PromotionQuery(id=-1, product_id=-2, customer_id=-3, limit=-1))
    assert [f.field for f in failures] == ["id", "product_id", "customer_id", "page_size"]


def test_search_includes_product_filter_as_a_parameter() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    sql, args = build_search(
        PromotionQuery(name="P", customer_id=3, product_id=42, valid_date=day, limit=5)
    )
    assert args == ["P", 3, 42, day, 6]
    assert "name = $1" in sql and "customerid = $2" in sql
    assert "pp.productid = $3" in sql and "EXISTS" in sql
    assert "validfrom <= $4" in sql and "validthru >= $4" in sql
    assert sql.endswith("ORDER BY id LIMIT $5")
    evil = "'; DROP TABLE promotion; --"
    sql, args = build_search(PromotionQuery(name=evil))
    assert evil not in sql and args[0] == evil


def test_lines_become_ordered_columns() -> None:
    products = [
        Product(10, "a", (Discount(0, 5, 1, "five"), Discount(3, 7.5, 2, "seven"))),
        Product(20, "b", ()),
        Product(30, "c", (Discount(0, 1, 2, ""),)),
    ]
    product_cols, discount_cols = line_columns(products)
    assert product_cols == [[10, 20, 30], ["a", "b", "c"], [0, 1, 2]]
    assert discount_cols == [
        [10, 10, 30],
        [0, 3, 0],
        [5, 7.5, 1],
        [1, 2, 2],
        ["five", "seven", ""],
        [0, 1, 0],
    ]
    assert line_columns([]) == ([[], [], []], [[], [], [], [], [], []])


def test_joined_rows_assemble_into_promotions_in_order() -> None:
    from promotion.server.repository import assemble

    header = {
        "name": "P",
        "description": "",
        "validfrom": T0,
        "validthru": T1,
        "active": True,
        "customerid": 5,
        "approvalstatus": 0,
        "prevapprovalstatus": 0,
    }

    def joined(pid: int, product: int | None, upc: str | None, discount: int | None) -> dict:
        return header | {
            "id": pid,
            "productid": product,
            "upccode": upc,
            "discountid": discount,
            "value": 1.5 if discount else None,
            "type": 2 if discount else None,
            "discountdescription": f"d{discount}" if discount else None,
        }

    promotions = assemble(
        [
            joined(1, 20, "b", 7),
            joined(1, 20, "b", 3),
            joined(1, 10, "a", None),
            joined(2, None, None, None),
        ]
    )
    assert [p.id for p in promotions] == [1, 2]
    first, second = promotions
    assert [(p.id, p.upc_code, [d.id for d in p.discounts]) for p in first.products] == [
        (20, "b", [7, 3]),
        (10, "a", []),
    ]
    assert first.products[0].discounts[0] == Discount(7, 1.5, 2, "d7")
    assert second.products == ()
