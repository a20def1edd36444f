"""Product domain models: stored products, drafts and queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from global_errors import Failure
from global_utils.rules.validation import MAX_PAGE_SIZE


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    hierarchy_level: str
    valid_from: datetime
    valid_thru: datetime
    extra_fields: dict[str, Any]
    create_date: datetime
    update_date: datetime
    modified_by: str


@dataclass
class ProductDraft:
    """What a caller asks to store; `invalid` holds failures found while reading the request."""

    id: int = 0
    name: str = ""
    hierarchy_level: str = ""
    valid_from: datetime | None = None
    valid_thru: datetime | None = None
    extra_fields: dict[str, Any] = field(default_factory=dict)
    invalid: list[Failure] = field(default_factory=list)


@dataclass
class ProductQuery:
    id: int = 0
    name: str = ""
    valid_date: datetime | None = None
    limit: int = MAX_PAGE_SIZE
    after_id: int = 0
    invalid: list[Failure] = field(default_factory=list)
