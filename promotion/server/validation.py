"""The promotion rules: pure functions returning every failure.

Limits (documented in docs/architecture.md): name 100 characters, description 1000, upc_code 64,
discount description 200, at most 100 products per promotion and 20 discounts per product.
"""

from __future__ import annotations

from global_errors import FailedPrecondition, Failure, MessageKey, NotFound
from global_utils.rules.validation import (
    Refusal,
    check_finite,
    check_page_size,
    check_required,
    check_text,
    check_validity_range,
)
from promotion.server.models import (
    DiscountType,
    Product,
    Promotion,
    PromotionDraft,
    PromotionQuery,
)

MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 1000
MAX_UPC_CHARS = 64
MAX_DISCOUNT_DESCRIPTION_CHARS = 200
MAX_PRODUCTS = 100
MAX_DISCOUNTS = 20
MAX_PERCENTAGE = 100.0
MAX_AMOUNT = 1e12


def validate_draft(draft: PromotionDraft, *, creating: bool) -> list[Failure]:
    failures = list(draft.invalid)
    if not creating and draft.id <= 0:
        failures.append(Failure("id", MessageKey.FIELD_REQUIRED))
    check_required("name", draft.name, failures)
    check_text("name", draft.name, MAX_NAME_CHARS, failures)
    check_text("description", draft.description, MAX_DESCRIPTION_CHARS, failures)
    if draft.customer_id < 0:
        failures.append(Failure("customer_id", MessageKey.FIELD_NOT_POSITIVE))
    else:
        check_required("customer_id", draft.customer_id, failures)
    for name, status in (
        ("approval_status", draft.approval_status),
        ("prev_approval_status", draft.prev_approval_status),
    ):
        if status < 0:
            failures.append(Failure(name, MessageKey.FIELD_OUT_OF_RANGE))
    check_validity_range(draft.valid_from, draft.valid_thru, draft.invalid, failures)
    failures += validate_products(draft.products)
    return failures


def validate_products(products: list[Product]) -> list[Failure]:
    if len(products) > MAX_PRODUCTS:
        return [Failure("product", MessageKey.TOO_MANY_ITEMS, {"max": MAX_PRODUCTS})]
    failures: list[Failure] = []
    seen: set[int] = set()
    for i, product in enumerate(products):
        where = f"product[{i}]"
        if product.id <= 0:
            failures.append(Failure(f"{where}.id", MessageKey.FIELD_NOT_POSITIVE))
        elif product.id in seen:
            failures.append(Failure(f"{where}.id", MessageKey.FIELD_DUPLICATE))
        seen.add(product.id)
        check_text(f"{where}.upc_code", product.upc_code, MAX_UPC_CHARS, failures)
        if len(product.discounts) > MAX_DISCOUNTS:
            failures.append(
                Failure(f"{where}.discount", MessageKey.TOO_MANY_ITEMS, {"max": MAX_DISCOUNTS})
            )
            continue
        discount_ids: set[int] = set()
        for j, discount in enumerate(product.discounts):
            at = f"{where}.discount[{j}]"
            if discount.id < 0:
                failures.append(Failure(f"{at}.id", MessageKey.FIELD_NOT_POSITIVE))
            elif discount.id and discount.id in discount_ids:
                failures.append(Failure(f"{at}.id", MessageKey.FIELD_DUPLICATE))
            discount_ids.add(discount.id)
            if discount.type not in tuple(DiscountType):
                failures.append(Failure(f"{at}.type", MessageKey.FIELD_NOT_ALLOWED))
            if check_finite(f"{at}.value", discount.value, failures):
                limit = MAX_PERCENTAGE if discount.type == DiscountType.PERCENTAGE else MAX_AMOUNT
                if not 0 < discount.value <= limit:
                    failures.append(Failure(f"{at}.value", MessageKey.FIELD_OUT_OF_RANGE))
            check_text(
                f"{at}.description", discount.description, MAX_DISCOUNT_DESCRIPTION_CHARS, failures
            )
    return failures


def validate_query(query: PromotionQuery) -> list[Failure]:
    failures = list(query.invalid)
    for name, value in (
        ("id", query.id),
        ("product_id", query.product_id),
        ("customer_id", query.customer_id),
    ):
        if value < 0:
            failures.append(Failure(name, MessageKey.FIELD_NOT_POSITIVE))
    check_text("name", query.name, MAX_NAME_CHARS, failures)
    check_page_size(query.limit, failures)
    return failures


def not_found(promotion_id: int) -> NotFound:
    return NotFound(MessageKey.RECORD_NOT_FOUND, entity="promotion", id=promotion_id)


def deletable(promotion_id: int, promotion: Promotion | None) -> Promotion | Refusal:
    """The promotion found for promotion_id if a delete may remove it, else why not
    (DeletePromotion and BeforeDeletePromotion alike): it does not exist, or it is past its
    initial approval status."""
    if promotion is None:
        return Refusal("id", not_found(promotion_id))
    if promotion.approval_status > 0:
        return Refusal(
            "approval_status",
            FailedPrecondition(MessageKey.PROMOTION_APPROVED_CANNOT_DELETE, id=promotion_id),
        )
    return promotion
