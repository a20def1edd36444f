"""Hostile promotion input: a clear INVALID_ARGUMENT, never INTERNAL."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from promotion.proto import promotion_pb2
from tests.helpers import new_promotion


async def assert_invalid(call, *texts: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    for text in texts:
        assert text in err.value.details()


def with_discount(**fields: object) -> promotion_pb2.Promotion:
    return new_promotion(
        product=[promotion_pb2.Product(id=1, discount=[promotion_pb2.Discount(**fields)])]
    )


@pytest.mark.parametrize(
    ("promotion", "text"),
    [
        (
            with_discount(value=math.nan, type=1),
            "product[0].discount[0].value must be a finite number",
        ),
        (with_discount(value=math.inf, type=2), "must be a finite number"),
        (with_discount(value=-math.inf, type=2), "must be a finite number"),
        (with_discount(value=1e308, type=2), "product[0].discount[0].value is out of range"),
        (
            with_discount(value=5, type=99),
            "product[0].discount[0].type has a value that is not allowed",
        ),
        (with_discount(value=5, type=-1), "type has a value that is not allowed"),
        (
            new_promotion(product=[promotion_pb2.Product(id=i + 1) for i in range(5000)]),
            "product may hold at most 100 items",
        ),
        (
            new_promotion(product=[promotion_pb2.Product(id=-7)]),
            "product[0].id must be a positive number",
        ),
        (new_promotion(customer_id=-(2**63)), "customer_id must be a positive number"),
        (new_promotion(name="n" * 5000), "name must be at most 100 characters"),
        (new_promotion(description="\x00"), "description contains characters that are not allowed"),
        (new_promotion(valid_from=Timestamp(seconds=-(2**62))), "valid_from is out of range"),
    ],
)
async def test_create_rejects(promotion_stub, auth, promotion, text) -> None:
    await assert_invalid(promotion_stub.CreatePromotion(promotion, metadata=auth), text)


@pytest.mark.parametrize("promotion_id", [0, -1, -(2**63)])
async def test_non_positive_ids(promotion_stub, auth, promotion_id) -> None:
    request = promotion_pb2.SearchId(id=promotion_id)
    await assert_invalid(promotion_stub.GetPromotionById(request, metadata=auth), "id")
    await assert_invalid(promotion_stub.DeletePromotion(request, metadata=auth), "id")


async def test_huge_ids_are_not_found(promotion_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=2**63 - 1), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    reply = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(product_id=2**63 - 1, customer_id=2**63 - 1), metadata=auth
    )
    assert list(reply.promotion) == []


@pytest.mark.parametrize(
    "params",
    [
        promotion_pb2.SearchParams(id=-1),
        promotion_pb2.SearchParams(product_id=-1),
        promotion_pb2.SearchParams(name="\x00"),
        promotion_pb2.SearchParams(page_token="garbage"),
        promotion_pb2.SearchParams(valid_date=Timestamp(seconds=2**61)),
    ],
)
async def test_search_garbage(promotion_stub, auth, params) -> None:
    await assert_invalid(promotion_stub.GetPromotions(params, metadata=auth))


async def test_the_limits_themselves_are_accepted(promotion_stub, auth) -> None:
    products = [
        promotion_pb2.Product(
            id=i + 1, discount=[promotion_pb2.Discount(value=1, type=2) for _ in range(20)]
        )
        for i in range(100)
    ]
    made = (
        await promotion_stub.CreatePromotion(new_promotion(product=products), metadata=auth)
    ).promotion
    assert len(made.product) == 100 and all(len(p.discount) == 20 for p in made.product)
