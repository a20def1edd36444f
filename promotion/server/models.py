"""Promotion domain models: stored promotions with their lines, drafts and queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from global_errors import Failure


class DiscountType(IntEnum):
    """promotion.DiscountType's numbers (its 0, unspecified, is no type at all)."""

    PERCENTAGE = 1
    AMOUNT = 2


@dataclass(frozen=True)
class Discount:
    id: int
    value: float
    type: int
    description: str


@dataclass(frozen=True)
class Product:
    id: int
    upc_code: str
    discounts: tuple[Discount, ...] = ()


@dataclass(frozen=True)
class Promotion:
    id: int
    name: str
    description: str
    valid_from: datetime
    valid_thru: datetime
    active: bool
    customer_id: int
    approval_status: int
    prev_approval_status: int
    products: tuple[Product, ...] = ()


@dataclass
class PromotionDraft:
    """What a caller asks to store; `invalid` holds failures found while reading the request."""

    id: int = 0
    name: str = ""
    description: str = ""
    valid_from: datetime | None = None
    valid_thru: datetime | None = None
    active: bool = False
    customer_id: int = 0
    approval_status: int = 0
    prev_approval_status: int = 0
    products: list[Product] = field(default_factory=list)
    invalid: list[Failure] = field(default_factory=list)


@dataclass
class PromotionQuery:
    id: int = 0
    name: str = ""
    product_id: int = 0
    customer_id: int = 0
    valid_date: datetime | None = None
    limit: int = 200
    after_id: int = 0
    invalid: list[Failure] = field(default_factory=list)
