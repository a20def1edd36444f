"""Every product RPC through a real channel, authenticated with the user service's tokens, its
changes audited through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from audit.proto import audit_pb2
from devtools.databases import service_db_settings
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.grpc.host import ServiceHost
from global_utils.runtime.timeutil import to_timestamp
from product.proto import product_pb2, product_pb2_grpc
from product.server.bootstrap import build
from product.server.settings import ProductSettings
from tests.helpers import eventually, started
from tests.integration.conftest import factory

SERVICE = "product"


@pytest.fixture(scope="module")
def product_settings_factory(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    audit_keys: AuditKeys,
) -> Callable[..., ProductSettings]:
    """Builds product settings pointing at the session's servers."""
    return factory(
        ProductSettings,
        nats_server,
        **service_db_settings(postgres, SERVICE),
        **nats_keys.client_settings(SERVICE),
        **audit_keys.producer_settings(SERVICE),
    )


@pytest.fixture(scope="module")
async def stub(
    user_host: ServiceHost, product_settings_factory: Callable[..., ProductSettings]
) -> AsyncIterator[product_pb2_grpc.ProductSrvStub]:
    """A ProductSrv stub on a channel to the in-process product service."""
    host = await started(build(product_settings_factory()))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield product_pb2_grpc.ProductSrvStub(channel)
    await host.stop()


def new_product(**overrides: Any) -> product_pb2.Product:
    now = datetime.now(UTC).replace(microsecond=0)
    message = product_pb2.Product(
        name=str(overrides.pop("name", f"Product-{uuid.uuid4().hex[:8]}")),
        hierarchy_level="SKU",
        validity_dates=product_pb2.ValidityDates(
            valid_from=to_timestamp(now - timedelta(days=1)),
            valid_thru=to_timestamp(now + timedelta(days=30)),
        ),
        **overrides,
    )
    message.extra_fields.update({"segment": "retail", "score": 7.5})
    return message


async def test_create_get_update_delete_round_trip(stub, auth, duck_token) -> None:
    sent = new_product()
    made = (await stub.CreateProduct(sent, metadata=auth)).product
    assert made.id > 0 and made.name == sent.name
    assert made.validity_dates == sent.validity_dates
    assert made.extra_fields == sent.extra_fields
    assert made.modifications.modified_by != ""
    got = await stub.GetProductById(product_pb2.SearchId(id=made.id), metadata=auth)
    assert got == made
    change = product_pb2.Product()
    change.CopyFrom(got)
    change.name = got.name + " (renamed)"
    change.hierarchy_level = "brand"
    change.extra_fields.update({"score": 9})
    updated = (await stub.UpdateProduct(change, metadata=auth)).product
    assert updated.name == change.name
    assert (made.hierarchy_level, updated.hierarchy_level) == ("SKU", "brand")
    assert updated.extra_fields["score"] == 9
    assert (
        updated.modifications.update_date.ToDatetime() >= got.modifications.update_date.ToDatetime()
    )
    deleted = await stub.DeleteProduct(product_pb2.SearchId(id=made.id), metadata=auth)
    assert deleted.affected_count == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetProductById(product_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == f"product {made.id} not found"


async def test_search_by_name_and_valid_date_with_paging(stub, auth) -> None:
    name = f"Paged-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        await stub.CreateProduct(new_product(name=name), metadata=auth)
    first = await stub.GetProducts(product_pb2.SearchParams(name=name, page_size=2), metadata=auth)
    assert len(first.product) == 2 and first.next_page_token
    rest = await stub.GetProducts(
        product_pb2.SearchParams(name=name, page_size=2, page_token=first.next_page_token),
        metadata=auth,
    )
    assert len(rest.product) == 1 and not rest.next_page_token
    ids = [c.id for c in first.product] + [c.id for c in rest.product]
    assert ids == sorted(ids) and len(set(ids)) == 3
    far_future = to_timestamp(datetime(2199, 1, 1, tzinfo=UTC))
    none = await stub.GetProducts(
        product_pb2.SearchParams(name=name, valid_date=far_future), metadata=auth
    )
    assert list(none.product) == []


async def test_invalid_product_gets_every_failure(stub, auth) -> None:
    bad = product_pb2.Product(name="")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateProduct(bad, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in ("name is required", "valid_from is required", "valid_thru is required"):
        assert text in err.value.details()
    dry = await stub.BeforeCreateProduct(bad, metadata=auth)
    assert len(dry.failure_desc) == 3


async def test_calls_without_a_token_are_unauthenticated(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetProducts(product_pb2.SearchParams())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_before_delete_reports_an_unknown_product(stub, auth) -> None:
    dry = await stub.BeforeDeleteProduct(product_pb2.Product(id=424242), metadata=auth)
    assert list(dry.failure_desc) == ["product 424242 not found"]


async def test_each_change_is_audited_once_with_its_record(stub, auth, audit_stub) -> None:
    made = (await stub.CreateProduct(new_product(), metadata=auth)).product
    await stub.DeleteProduct(product_pb2.SearchId(id=made.id), metadata=auth)
    query = audit_pb2.SearchParams(object_name="product", object_id=str(made.id))
    records: list[audit_pb2.AuditRecord] = []

    async def both_stored() -> bool:
        records[:] = (await audit_stub.GetAuditRecords(query, metadata=auth)).record
        return len(records) >= 2

    await eventually(both_stored, what="the product's two audit records")
    assert sorted(r.action_type for r in records) == ["delete", "insert"]
    assert {r.service for r in records} == {"product"}
    assert {r.payload_type for r in records} == {"product.Product"}
    assert {r.performed_by for r in records} == {made.modifications.modified_by}
    assert '"extraFields"' in records[0].object_detail_json
