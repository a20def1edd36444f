"""product.ProductSrv: converts between protobuf messages and the domain, nothing more."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from google.protobuf.json_format import MessageToDict

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
from product.proto import product_pb2, product_pb2_grpc
from product.server.models import Product, ProductDraft, ProductQuery
from product.server.service import ProductService

Context: TypeAlias = grpc.aio.ServicerContext
PAGE_KIND = "product"


def product_to_proto(product: Product) -> product_pb2.Product:
    message = product_pb2.Product(
        id=product.id,
        name=product.name,
        hierarchy_level=product.hierarchy_level,
        validity_dates=product_pb2.ValidityDates(
            valid_from=to_timestamp(product.valid_from),
            valid_thru=to_timestamp(product.valid_thru),
        ),
        modifications=product_pb2.Modifications(
            create_date=to_timestamp(product.create_date),
            update_date=to_timestamp(product.update_date),
            modified_by=product.modified_by,
        ),
    )
    message.extra_fields.update(product.extra_fields)
    return message


def draft_from_proto(msg: product_pb2.Product) -> ProductDraft:
    draft = ProductDraft(
        id=msg.id,
        name=msg.name,
        hierarchy_level=msg.hierarchy_level,
        extra_fields=MessageToDict(msg.extra_fields),
    )
    draft.valid_from = read_time(msg.validity_dates, "valid_from", draft.invalid)
    draft.valid_thru = read_time(msg.validity_dates, "valid_thru", draft.invalid)
    return draft


def query_from_proto(msg: product_pb2.SearchParams) -> ProductQuery:
    query = ProductQuery(id=msg.id, name=msg.name, limit=page_limit(msg.page_size))
    query.valid_date = read_time(msg, "valid_date", query.invalid)
    query.after_id = decode_page_token(PAGE_KIND, msg.page_token, query.invalid, parse_id) or 0
    return query


def products_to_proto(products: list[Product], more: bool) -> product_pb2.Products:
    reply = product_pb2.Products(product=[product_to_proto(c) for c in products])
    if more and products:
        reply.next_page_token = encode_page_token(PAGE_KIND, products[-1].id)
    return reply


def validation_reply(failures: list[Failure], language: Language) -> product_pb2.ValidationErr:
    return product_pb2.ValidationErr(failure_desc=failure_texts(failures, language))


class ProductServicer(product_pb2_grpc.ProductSrvServicer):
    def __init__(self, service: ProductService, language: Language) -> None:
        self._service = service
        self._language = language

    async def GetProductById(
        self, request: product_pb2.SearchId, context: Context
    ) -> product_pb2.Product:
        return product_to_proto(await self._service.get(request.id))

    async def GetProducts(
        self, request: product_pb2.SearchParams, context: Context
    ) -> product_pb2.Products:
        return products_to_proto(*await self._service.search(query_from_proto(request)))

    async def CreateProduct(
        self, request: product_pb2.Product, context: Context
    ) -> product_pb2.Response:
        product = await self._service.create(draft_from_proto(request), current_principal())
        return product_pb2.Response(product=product_to_proto(product), affected_count=1)

    async def UpdateProduct(
        self, request: product_pb2.Product, context: Context
    ) -> product_pb2.Response:
        product = await self._service.update(draft_from_proto(request), current_principal())
        return product_pb2.Response(product=product_to_proto(product), affected_count=1)

    async def DeleteProduct(
        self, request: product_pb2.SearchId, context: Context
    ) -> product_pb2.Response:
        product = await self._service.delete(request.id, current_principal())
        return product_pb2.Response(product=product_to_proto(product), affected_count=1)

    async def BeforeCreateProduct(
        self, request: product_pb2.Product, context: Context
    ) -> product_pb2.ValidationErr:
        failures = await self._service.check_create(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeUpdateProduct(
        self, request: product_pb2.Product, context: Context
    ) -> product_pb2.ValidationErr:
        failures = await self._service.check_update(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeDeleteProduct(
        self, request: product_pb2.Product, context: Context
    ) -> product_pb2.ValidationErr:
        failures = await self._service.check_delete(request.id, current_principal())
        return validation_reply(failures, self._language)
