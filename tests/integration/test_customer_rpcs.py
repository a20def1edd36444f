"""Every customer RPC through a real channel, authenticated with the user service's tokens, its
changes audited through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from audit.proto import audit_pb2
from customer.proto import customer_pb2, customer_pb2_grpc
from customer.server.bootstrap import build
from customer.server.settings import CustomerSettings
from devtools.databases import service_db_settings
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.grpc.host import ServiceHost
from global_utils.runtime.timeutil import to_timestamp
from tests.helpers import eventually, started
from tests.integration.conftest import factory

SERVICE = "customer"


@pytest.fixture(scope="module")
def customer_settings_factory(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    audit_keys: AuditKeys,
) -> Callable[..., CustomerSettings]:
    """Builds customer settings pointing at the session's servers."""
    return factory(
        CustomerSettings,
        nats_server,
        **service_db_settings(postgres, SERVICE),
        **nats_keys.client_settings(SERVICE),
        **audit_keys.producer_settings(SERVICE),
    )


@pytest.fixture(scope="module")
async def stub(
    user_host: ServiceHost, customer_settings_factory: Callable[..., CustomerSettings]
) -> AsyncIterator[customer_pb2_grpc.CustomerSrvStub]:
    """A CustomerSrv stub on a channel to the in-process customer service."""
    host = await started(build(customer_settings_factory()))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield customer_pb2_grpc.CustomerSrvStub(channel)
    await host.stop()


def new_customer(**overrides: Any) -> customer_pb2.Customer:
    now = datetime.now(UTC).replace(microsecond=0)
    message = customer_pb2.Customer(
        name=str(overrides.pop("name", f"Customer-{uuid.uuid4().hex[:8]}")),
        validity_dates=customer_pb2.ValidityDates(
            valid_from=to_timestamp(now - timedelta(days=1)),
            valid_thru=to_timestamp(now + timedelta(days=30)),
        ),
        **overrides,
    )
    message.extra_fields.update({"segment": "retail", "score": 7.5})
    return message


async def test_create_get_update_delete_round_trip(stub, auth, duck_token) -> None:
    sent = new_customer()
    made = (await stub.CreateCustomer(sent, metadata=auth)).customer
    assert made.id > 0 and made.name == sent.name
    assert made.validity_dates == sent.validity_dates
    assert made.extra_fields == sent.extra_fields
    assert made.modifications.modified_by != ""
    got = await stub.GetCustomerById(customer_pb2.SearchId(id=made.id), metadata=auth)
    assert got == made
    change = customer_pb2.Customer()
    change.CopyFrom(got)
    change.name = got.name + " (renamed)"
    change.extra_fields.update({"score": 9})
    updated = (await stub.UpdateCustomer(change, metadata=auth)).customer
    assert updated.name == change.name
    assert updated.extra_fields["score"] == 9
    assert (
        updated.modifications.update_date.ToDatetime() >= got.modifications.update_date.ToDatetime()
    )
    deleted = await stub.DeleteCustomer(customer_pb2.SearchId(id=made.id), metadata=auth)
    assert deleted.affected_count == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCustomerById(customer_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == f"customer {made.id} not found"


async def test_search_by_name_and_valid_date_with_paging(stub, auth) -> None:
    name = f"Paged-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        await stub.CreateCustomer(new_customer(name=name), metadata=auth)
    first = await stub.GetCustomers(
        customer_pb2.SearchParams(name=name, page_size=2), metadata=auth
    )
    assert len(first.customer) == 2 and first.next_page_token
    rest = await stub.GetCustomers(
        customer_pb2.SearchParams(name=name, page_size=2, page_token=first.next_page_token),
        metadata=auth,
    )
    assert len(rest.customer) == 1 and not rest.next_page_token
    ids = [c.id for c in first.customer] + [c.id for c in rest.customer]
    assert ids == sorted(ids) and len(set(ids)) == 3
    far_future = to_timestamp(datetime(2199, 1, 1, tzinfo=UTC))
    none = await stub.GetCustomers(
        customer_pb2.SearchParams(name=name, valid_date=far_future), metadata=auth
    )
    assert list(none.customer) == []


async def test_invalid_customer_gets_every_failure(stub, auth) -> None:
    bad = customer_pb2.Customer(name="")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateCustomer(bad, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in ("name is required", "valid_from is required", "valid_thru is required"):
        assert text in err.value.details()
    dry = await stub.BeforeCreateCustomer(bad, metadata=auth)
    assert len(dry.failure_desc) == 3


async def test_calls_without_a_token_are_unauthenticated(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCustomers(customer_pb2.SearchParams())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_before_delete_reports_an_unknown_customer(stub, auth) -> None:
    dry = await stub.BeforeDeleteCustomer(customer_pb2.Customer(id=424242), metadata=auth)
    assert list(dry.failure_desc) == ["customer 424242 not found"]


async def test_each_change_is_audited_once_with_its_record(stub, auth, audit_stub) -> None:
    made = (await stub.CreateCustomer(new_customer(), metadata=auth)).customer
    await stub.DeleteCustomer(customer_pb2.SearchId(id=made.id), metadata=auth)
    query = audit_pb2.SearchParams(object_name="customer", object_id=str(made.id))
    records: list[audit_pb2.AuditRecord] = []

    async def both_stored() -> bool:
        records[:] = (await audit_stub.GetAuditRecords(query, metadata=auth)).record
        return len(records) >= 2

    await eventually(both_stored, what="the customer's two audit records")
    assert sorted(r.action_type for r in records) == ["delete", "insert"]
    assert {r.service for r in records} == {"customer"}
    assert {r.payload_type for r in records} == {"customer.Customer"}
    assert {r.performed_by for r in records} == {made.modifications.modified_by}
    assert '"extraFields"' in records[0].object_detail_json
