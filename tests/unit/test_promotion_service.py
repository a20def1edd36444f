"""The promotion rules through PromotionService on fakes (no database): delete guards and
their dry run, validation, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from global_errors import FailedPrecondition, Failure, MessageKey, NotFound, ValidationFailed
from global_utils.identity.principal import Principal, Role
from promotion.proto import promotion_pb2
from promotion.server.models import (
    Discount,
    DiscountType,
    Product,
    Promotion,
    PromotionDraft,
    PromotionQuery,
)
from promotion.server.service import PromotionService
from promotion.server.servicer import promotion_to_proto, promotions_to_proto, query_from_proto
from tests.fakes import FakePromotionRepository, FakePromotionStorage

T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2030, 1, 1, tzinfo=UTC)
ACTOR = Principal(user_id="42", role=Role.ADMIN)


def stored(promotion_id: int, *, approval_status: int = 0) -> Promotion:
    return Promotion(
        id=promotion_id,
        name=f"P{promotion_id}",
        description="",
        valid_from=T0,
        valid_thru=T1,
        active=True,
        customer_id=5,
        approval_status=approval_status,
        prev_approval_status=0,
        products=(Product(1, "upc", (Discount(9, 10, DiscountType.PERCENTAGE, "ten"),)),),
    )


def draft(**fields: object) -> PromotionDraft:
    values: dict[str, Any] = {
        "name": "Promo",
        "customer_id": 5,
        "valid_from": T0,
        "valid_thru": T1,
        "products": [Product(1, "upc", (Discount(0, 2.5, DiscountType.AMOUNT, "off"),))],
    }
    values.update(fields)
    return PromotionDraft(**values)


@pytest.fixture
def storage() -> FakePromotionStorage:
    """Promotions 1 (initial status) and 2 (approved)."""
    return FakePromotionStorage(FakePromotionRepository([stored(1), stored(2, approval_status=1)]))


@pytest.fixture
def service(storage: FakePromotionStorage) -> PromotionService:
    """A PromotionService on the fake storage."""
    return PromotionService(storage, promotion_to_proto)


# delete guards: the same rule refuses the delete and answers its dry run


async def test_an_approved_promotion_is_not_deleted(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        await service.delete(2, ACTOR)
    assert refused.value.key is MessageKey.PROMOTION_APPROVED_CANNOT_DELETE
    assert 2 in storage.promotions.rows and storage.events == []
    assert await service.check_delete(2, ACTOR) == [
        Failure("approval_status", MessageKey.PROMOTION_APPROVED_CANNOT_DELETE, {"id": 2})
    ]


async def test_a_missing_promotion_is_not_found_by_delete_and_its_dry_run(
    service: PromotionService,
) -> None:
    with pytest.raises(NotFound) as missing:
        await service.delete(99, ACTOR)
    assert missing.value.params == {"entity": "promotion", "id": 99}
    assert await service.check_delete(99, ACTOR) == [
        Failure("id", MessageKey.RECORD_NOT_FOUND, {"entity": "promotion", "id": 99})
    ]


async def test_a_promotion_in_its_initial_status_is_deleted_with_its_audit_event(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    assert await service.check_delete(1, ACTOR) == []
    assert (await service.delete(1, ACTOR)).id == 1
    assert 1 not in storage.promotions.rows
    assert [(e.action_func, e.object_id) for e in storage.events] == [("AfterDeletePromotion", "1")]


async def test_a_non_positive_id_is_invalid_for_get_delete_and_its_dry_run(
    service: PromotionService,
) -> None:
    for call in (service.get(0), service.delete(-3, ACTOR)):
        with pytest.raises(ValidationFailed):
            await call
    assert await service.check_delete(0, ACTOR) == [Failure("id", MessageKey.FIELD_NOT_POSITIVE)]


# validation


async def test_an_invalid_draft_writes_nothing(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    bad = draft(products=[Product(1, "u", (Discount(0, 150, DiscountType.PERCENTAGE, ""),))])
    expected = [Failure("product[0].discount[0].value", MessageKey.FIELD_OUT_OF_RANGE)]
    assert await service.check_create(bad, ACTOR) == expected
    with pytest.raises(ValidationFailed) as refused:
        await service.create(bad, ACTOR)
    assert refused.value.failures == expected
    assert sorted(storage.promotions.rows) == [1, 2] and storage.events == []


async def test_create_and_update_commit_with_one_event_each(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    created = await service.create(draft(), ACTOR)
    assert created.products[0].discounts[0].id > 0
    updated = await service.update(draft(id=created.id, name="Renamed"), ACTOR)
    assert updated.name == "Renamed"
    assert [e.action_func for e in storage.events] == [
        "AfterCreatePromotion",
        "AfterUpdatePromotion",
    ]
    assert all(unit.committed for unit in storage.units)


async def test_update_of_a_missing_promotion_is_not_found(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    with pytest.raises(NotFound):
        await service.update(draft(id=77), ACTOR)
    assert storage.events == []


# paging


async def test_pages_follow_each_other_through_the_page_token(
    service: PromotionService, storage: FakePromotionStorage
) -> None:
    for _ in range(3):
        await service.create(draft(), ACTOR)
    seen: list[int] = []
    token = ""
    for _ in range(10):
        query = query_from_proto(promotion_pb2.SearchParams(page_size=2, page_token=token))
        reply = promotions_to_proto(*await service.search(query))
        seen += [p.id for p in reply.promotion]
        token = reply.next_page_token
        if not token:
            break
    assert seen == sorted(storage.promotions.rows) and len(seen) == 5


async def test_a_page_token_of_another_listing_is_invalid(service: PromotionService) -> None:
    query = query_from_proto(promotion_pb2.SearchParams(page_token="dXNlcjox"))  # "user:1"
    with pytest.raises(ValidationFailed) as refused:
        await service.search(query)
    assert [f.key for f in refused.value.failures] == [MessageKey.PAGE_TOKEN_INVALID]


async def test_a_negative_page_size_is_invalid(service: PromotionService) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await service.search(PromotionQuery(limit=-1))
    assert refused.value.failures == [Failure("page_size", MessageKey.FIELD_OUT_OF_RANGE)]
