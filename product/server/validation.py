"""The product rules: pure functions returning every failure.

Limits: name 100 characters; hierarchy_level 50; extra_fields a JSON object of at most 16 KiB
as JSON.
"""

from __future__ import annotations

from global_errors import Failure, MessageKey, NotFound
from global_utils.rules.validation import (
    Refusal,
    check_json_object,
    check_page_size,
    check_required,
    check_text,
    check_validity_range,
)
from product.server.models import Product, ProductDraft, ProductQuery

ENTITY = "product"
MAX_NAME_CHARS = 100
MAX_HIERARCHY_LEVEL_CHARS = 50
MAX_EXTRA_FIELDS_BYTES = 16 * 1024


def validate_draft(draft: ProductDraft, *, creating: bool) -> list[Failure]:
    failures = list(draft.invalid)
    if not creating and draft.id <= 0:
        failures.append(Failure("id", MessageKey.FIELD_REQUIRED))
    check_required("name", draft.name, failures)
    check_text("name", draft.name, MAX_NAME_CHARS, failures)
    check_text("hierarchy_level", draft.hierarchy_level, MAX_HIERARCHY_LEVEL_CHARS, failures)
    check_validity_range(draft.valid_from, draft.valid_thru, draft.invalid, failures)
    check_json_object("extra_fields", draft.extra_fields, MAX_EXTRA_FIELDS_BYTES, failures)
    return failures


def validate_query(query: ProductQuery) -> list[Failure]:
    failures = list(query.invalid)
    if query.id < 0:
        failures.append(Failure("id", MessageKey.FIELD_NOT_POSITIVE))
    check_text("name", query.name, MAX_NAME_CHARS, failures)
    check_page_size(query.limit, failures)
    return failures


def not_found(product_id: int) -> NotFound:
    return NotFound(MessageKey.RECORD_NOT_FOUND, entity=ENTITY, id=product_id)


def deletable(product_id: int, product: Product | None) -> Product | Refusal:
    """The product found for product_id if a delete may remove it, else why not (for
    DeleteProduct and BeforeDeleteProduct alike). Add the service's own delete guards here."""
    if product is None:
        return Refusal("id", not_found(product_id))
    return product
