"""customer.CustomerSrv: converts between protobuf messages and the domain, nothing more."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from google.protobuf.json_format import MessageToDict

from customer.proto import customer_pb2, customer_pb2_grpc
from customer.server.models import Customer, CustomerDraft, CustomerQuery
from customer.server.service import CustomerService
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

Context: TypeAlias = grpc.aio.ServicerContext
PAGE_KIND = "customer"


def customer_to_proto(customer: Customer) -> customer_pb2.Customer:
    message = customer_pb2.Customer(
        id=customer.id,
        name=customer.name,
        validity_dates=customer_pb2.ValidityDates(
            valid_from=to_timestamp(customer.valid_from),
            valid_thru=to_timestamp(customer.valid_thru),
        ),
        modifications=customer_pb2.Modifications(
            create_date=to_timestamp(customer.create_date),
            update_date=to_timestamp(customer.update_date),
            modified_by=customer.modified_by,
        ),
    )
    message.extra_fields.update(customer.extra_fields)
    return message


def draft_from_proto(msg: customer_pb2.Customer) -> CustomerDraft:
    draft = CustomerDraft(id=msg.id, name=msg.name, extra_fields=MessageToDict(msg.extra_fields))
    draft.valid_from = read_time(msg.validity_dates, "valid_from", draft.invalid)
    draft.valid_thru = read_time(msg.validity_dates, "valid_thru", draft.invalid)
    return draft


def query_from_proto(msg: customer_pb2.SearchParams) -> CustomerQuery:
    query = CustomerQuery(id=msg.id, name=msg.name, limit=page_limit(msg.page_size))
    query.valid_date = read_time(msg, "valid_date", query.invalid)
    query.after_id = decode_page_token(PAGE_KIND, msg.page_token, query.invalid, parse_id) or 0
    return query


def customers_to_proto(customers: list[Customer], more: bool) -> customer_pb2.Customers:
    reply = customer_pb2.Customers(customer=[customer_to_proto(c) for c in customers])
    if more and customers:
        reply.next_page_token = encode_page_token(PAGE_KIND, customers[-1].id)
    return reply


def validation_reply(failures: list[Failure], language: Language) -> customer_pb2.ValidationErr:
    return customer_pb2.ValidationErr(failure_desc=failure_texts(failures, language))


class CustomerServicer(customer_pb2_grpc.CustomerSrvServicer):
    def __init__(self, service: CustomerService, language: Language) -> None:
        self._service = service
        self._language = language

    async def GetCustomerById(
        self, request: customer_pb2.SearchId, context: Context
    ) -> customer_pb2.Customer:
        return customer_to_proto(await self._service.get(request.id))

    async def GetCustomers(
        self, request: customer_pb2.SearchParams, context: Context
    ) -> customer_pb2.Customers:
        return customers_to_proto(*await self._service.search(query_from_proto(request)))

    async def CreateCustomer(
        self, request: customer_pb2.Customer, context: Context
    ) -> customer_pb2.Response:
        customer = await self._service.create(draft_from_proto(request), current_principal())
        return customer_pb2.Response(customer=customer_to_proto(customer), affected_count=1)

    async def UpdateCustomer(
        self, request: customer_pb2.Customer, context: Context
    ) -> customer_pb2.Response:
        customer = await self._service.update(draft_from_proto(request), current_principal())
        return customer_pb2.Response(customer=customer_to_proto(customer), affected_count=1)

    async def DeleteCustomer(
        self, request: customer_pb2.SearchId, context: Context
    ) -> customer_pb2.Response:
        customer = await self._service.delete(request.id, current_principal())
        return customer_pb2.Response(customer=customer_to_proto(customer), affected_count=1)

    async def BeforeCreateCustomer(
        self, request: customer_pb2.Customer, context: Context
    ) -> customer_pb2.ValidationErr:
        failures = await self._service.check_create(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeUpdateCustomer(
        self, request: customer_pb2.Customer, context: Context
    ) -> customer_pb2.ValidationErr:
        failures = await self._service.check_update(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeDeleteCustomer(
        self, request: customer_pb2.Customer, context: Context
    ) -> customer_pb2.ValidationErr:
        failures = await self._service.check_delete(request.id, current_principal())
        return validation_reply(failures, self._language)
