"""promotion.PromotionSrv: converts between protobuf messages and the domain, nothing more."""

from __future__ import annotations

from typing import TypeAlias, cast

import grpc

from global_errors import Failure, Language
from global_utils.grpc.protoconv import (
    decode_page_token,
    encode_page_token,
    failure_texts,
    page_limit,
    parse_id,
    read_time,
)
from global_utils.identity.principal import current_principal
from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.models import (
    Discount,
    Product,
    Promotion,
    PromotionDraft,
    PromotionQuery,
)
from promotion.server.service import PromotionService

Context: TypeAlias = grpc.aio.ServicerContext
PAGE_KIND = "promotion"


def discount_type_to_proto(value: int) -> promotion_pb2.DiscountType:
    """The wire enum for a discount type: promotion.DiscountType has the domain's numbers, and
    like every proto3 enum it is open (it carries any int32), so the number is the value."""
    return cast(promotion_pb2.DiscountType, value)


def promotion_to_proto(promotion: Promotion) -> promotion_pb2.Promotion:
    return promotion_pb2.Promotion(
        id=promotion.id,
        name=promotion.name,
        description=promotion.description,
        valid_from=to_timestamp(promotion.valid_from),
        valid_thru=to_timestamp(promotion.valid_thru),
        active=promotion.active,
        customer_id=promotion.customer_id,
        approval_status=promotion.approval_status,
        prev_approval_status=promotion.prev_approval_status,
        product=[
            promotion_pb2.Product(
                id=p.id,
                upc_code=p.upc_code,
                discount=[
                    promotion_pb2.Discount(
                        id=d.id,
                        value=d.value,
                        type=discount_type_to_proto(d.type),
                        description=d.description,
                    )
                    for d in p.discounts
                ],
            )
            for p in promotion.products
        ],
    )


def draft_from_proto(msg: promotion_pb2.Promotion) -> PromotionDraft:
    draft = PromotionDraft(
        id=msg.id,
        name=msg.name,
        description=msg.description,
        active=msg.active,
        customer_id=msg.customer_id,
        approval_status=msg.approval_status,
        prev_approval_status=msg.prev_approval_status,
        products=[
            Product(
                id=p.id,
                upc_code=p.upc_code,
                discounts=tuple(
                    Discount(id=d.id, value=d.value, type=d.type, description=d.description)
                    for d in p.discount
                ),
            )
            for p in msg.product
        ],
    )
    draft.valid_from = read_time(msg, "valid_from", draft.invalid)
    draft.valid_thru = read_time(msg, "valid_thru", draft.invalid)
    return draft


def query_from_proto(msg: promotion_pb2.SearchParams) -> PromotionQuery:
    query = PromotionQuery(
        id=msg.id,
        name=msg.name,
        product_id=msg.product_id,
        customer_id=msg.customer_id,
        limit=page_limit(msg.page_size),
    )
    query.valid_date = read_time(msg, "valid_date", query.invalid)
    query.after_id = decode_page_token(PAGE_KIND, msg.page_token, query.invalid, parse_id) or 0
    return query


def promotions_to_proto(promotions: list[Promotion], more: bool) -> promotion_pb2.Promotions:
    reply = promotion_pb2.Promotions(promotion=[promotion_to_proto(p) for p in promotions])
    if more and promotions:
        reply.next_page_token = encode_page_token(PAGE_KIND, promotions[-1].id)
    return reply


def validation_reply(failures: list[Failure], language: Language) -> promotion_pb2.ValidationErr:
    return promotion_pb2.ValidationErr(failure_desc=failure_texts(failures, language))


class PromotionServicer(promotion_pb2_grpc.PromotionSrvServicer):
    def __init__(self, service: PromotionService, language: Language) -> None:
        self._service = service
        self._language = language

    async def GetPromotionById(
        self, request: promotion_pb2.SearchId, context: Context
    ) -> promotion_pb2.Promotion:
        return promotion_to_proto(await self._service.get(request.id))

    async def GetPromotions(
        self, request: promotion_pb2.SearchParams, context: Context
    ) -> promotion_pb2.Promotions:
        return promotions_to_proto(*await self._service.search(query_from_proto(request)))

    async def CreatePromotion(
        self, request: promotion_pb2.Promotion, context: Context
    ) -> promotion_pb2.Response:
        promotion = await self._service.create(draft_from_proto(request), current_principal())
        return promotion_pb2.Response(promotion=promotion_to_proto(promotion), affected_count=1)

    async def UpdatePromotion(
        self, request: promotion_pb2.Promotion, context: Context
    ) -> promotion_pb2.Response:
        promotion = await self._service.update(draft_from_proto(request), current_principal())
        return promotion_pb2.Response(promotion=promotion_to_proto(promotion), affected_count=1)

    async def DeletePromotion(
        self, request: promotion_pb2.SearchId, context: Context
    ) -> promotion_pb2.Response:
        promotion = await self._service.delete(request.id, current_principal())
        return promotion_pb2.Response(promotion=promotion_to_proto(promotion), affected_count=1)

    async def BeforeCreatePromotion(
        self, request: promotion_pb2.Promotion, context: Context
    ) -> promotion_pb2.ValidationErr:
        failures = await self._service.check_create(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeUpdatePromotion(
        self, request: promotion_pb2.Promotion, context: Context
    ) -> promotion_pb2.ValidationErr:
        failures = await self._service.check_update(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeDeletePromotion(
        self, request: promotion_pb2.Promotion, context: Context
    ) -> promotion_pb2.ValidationErr:
        failures = await self._service.check_delete(request.id, current_principal())
        return validation_reply(failures, self._language)
