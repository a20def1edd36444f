"""Every promotion RPC through a real channel, authenticated through the user service."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2
from tests.helpers import new_promotion

SEED_CUSTOMER = 3308341401806443521


async def create(stub, auth, **fields: object) -> promotion_pb2.Promotion:
    return (await stub.CreatePromotion(new_promotion(**fields), metadata=auth)).promotion


def lines(promotion: promotion_pb2.Promotion) -> list[tuple]:
    return [
        (p.id, p.upc_code, [(d.value, d.type, d.description) for d in p.discount])
        for p in promotion.product
    ]


async def test_products_and_discounts_round_trip_exactly(promotion_stub, auth) -> None:
    sent = new_promotion()
    made = (await promotion_stub.CreatePromotion(sent, metadata=auth)).promotion
    got = await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert got == made
    assert lines(got) == lines(sent)
    first = got.product[0].discount
    assert first[1].id == 77 and first[0].id > 0 and first[0].id != 77
    assert (got.name, got.customer_id, got.active) == (sent.name, sent.customer_id, True)
    assert got.valid_from == sent.valid_from and got.valid_thru == sent.valid_thru


async def test_get_unknown_promotion_is_not_found(promotion_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=999), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "promotion 999 not found"


async def test_seed_promotions_are_there(promotion_stub, auth) -> None:
    reply = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(customer_id=SEED_CUSTOMER), metadata=auth
    )
    names = [p.name for p in reply.promotion]
    assert names[:2] == ["Promo1", "Promo2"]
    promo1 = reply.promotion[0]
    assert lines(promo1) == [(1001, "012345678905", [(50.0, 1, "half price")])]
    other = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(name="Promo3"), metadata=auth
    )
    assert [p.customer_id for p in other.promotion] == [4308341401806443521]


async def test_search_by_each_parameter(promotion_stub, auth) -> None:
    made = await create(
        promotion_stub,
        auth,
        customer_id=555,
        product=[promotion_pb2.Product(id=987654, upc_code="x")],
        valid_from=to_timestamp(datetime(1999, 1, 1, tzinfo=UTC)),
        valid_thru=to_timestamp(datetime(1999, 12, 31, tzinfo=UTC)),
    )
    for params in (
        promotion_pb2.SearchParams(id=made.id),
        promotion_pb2.SearchParams(name=made.name),
        promotion_pb2.SearchParams(customer_id=555),
        promotion_pb2.SearchParams(product_id=987654),
        promotion_pb2.SearchParams(
            customer_id=555, valid_date=to_timestamp(datetime(1999, 6, 1, tzinfo=UTC))
        ),
    ):
        reply = await promotion_stub.GetPromotions(params, metadata=auth)
        assert [p.id for p in reply.promotion] == [made.id], params
    none = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(customer_id=555, valid_date=to_timestamp(datetime.now(UTC))),
        metadata=auth,
    )
    assert list(none.promotion) == []


async def test_search_pages(promotion_stub, auth) -> None:
    ids = [(await create(promotion_stub, auth, customer_id=777)).id for _ in range(3)]
    first = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(customer_id=777, page_size=2), metadata=auth
    )
    second = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(customer_id=777, page_size=2, page_token=first.next_page_token),
        metadata=auth,
    )
    assert [p.id for p in first.promotion] + [p.id for p in second.promotion] == sorted(ids)
    assert second.next_page_token == ""


async def test_update_replaces_the_lines(promotion_stub, auth) -> None:
    made = await create(promotion_stub, auth)
    change = promotion_pb2.Promotion()
    change.CopyFrom(made)
    change.name = "Renamed"
    del change.product[:]
    change.product.append(
        promotion_pb2.Product(
            id=3001, upc_code="new", discount=[promotion_pb2.Discount(value=1, type=2)]
        )
    )
    updated = (await promotion_stub.UpdatePromotion(change, metadata=auth)).promotion
    assert updated.name == "Renamed"
    assert lines(updated) == [(3001, "new", [(1.0, 2, "")])]
    got = await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert got == updated
    gone = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(product_id=2001, id=made.id), metadata=auth
    )
    assert list(gone.promotion) == []


async def test_update_keeps_discount_ids_it_is_given(promotion_stub, auth) -> None:
    made = await create(promotion_stub, auth)
    updated = (await promotion_stub.UpdatePromotion(made, metadata=auth)).promotion
    assert lines(updated) == lines(made)
    assert [d.id for p in updated.product for d in p.discount] == [
        d.id for p in made.product for d in p.discount
    ]


async def test_failed_update_leaves_the_lines_alone(promotion_stub, auth) -> None:
    made = await create(promotion_stub, auth)
    change = promotion_pb2.Promotion()
    change.CopyFrom(made)
    change.product.append(promotion_pb2.Product(id=2001))  # duplicate product id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.UpdatePromotion(change, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "product[2].id repeats a value" in err.value.details()
    got = await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert got == made


async def test_update_unknown_is_not_found(promotion_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.UpdatePromotion(new_promotion(id=424242), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_removes_promotion_and_lines(promotion_stub, auth) -> None:
    made = await create(promotion_stub, auth, product=[promotion_pb2.Product(id=4242)])
    reply = await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert reply.affected_count == 1 and reply.promotion == made
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    left = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(product_id=4242), metadata=auth
    )
    assert list(left.promotion) == []


async def test_delete_after_approval_is_failed_precondition(promotion_stub, auth) -> None:
    made = await create(promotion_stub, auth, approval_status=1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    still = await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=auth)
    assert still.id == made.id


async def test_delete_unknown_is_not_found(promotion_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=31337), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_create_reports_every_failure(promotion_stub, auth) -> None:
    bad = promotion_pb2.Promotion(
        valid_from=to_timestamp(datetime(2020, 1, 2, tzinfo=UTC)),
        valid_thru=to_timestamp(datetime(2020, 1, 1, tzinfo=UTC)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.CreatePromotion(bad, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in ("name is required", "customer_id is required", "must be after valid_from"):
        assert text in err.value.details()


async def test_dry_runs_change_nothing(promotion_stub, auth) -> None:
    draft = new_promotion(customer_id=888)
    assert (
        list((await promotion_stub.BeforeCreatePromotion(draft, metadata=auth)).failure_desc) == []
    )
    draft.name = ""
    reply = await promotion_stub.BeforeCreatePromotion(draft, metadata=auth)
    assert list(reply.failure_desc) == ["name is required"]
    update = await promotion_stub.BeforeUpdatePromotion(new_promotion(), metadata=auth)
    assert list(update.failure_desc) == ["id is required"]
    approved = await create(promotion_stub, auth, approval_status=2)
    refused = await promotion_stub.BeforeDeletePromotion(
        promotion_pb2.Promotion(id=approved.id), metadata=auth
    )
    assert len(refused.failure_desc) == 1 and "cannot be deleted" in refused.failure_desc[0]
    found = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(customer_id=888), metadata=auth
    )
    assert list(found.promotion) == []
