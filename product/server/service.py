"""The product use cases: queries, validated writes, audit events."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from global_errors import Failure, ValidationFailed
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.identity.principal import Principal
from global_utils.rules.validation import Refusal, id_failures, require_valid_id
from product.server import authorization
from product.server.models import Product, ProductDraft, ProductQuery
from product.server.unit_of_work import ProductStorage
from product.server.validation import deletable, not_found, validate_draft, validate_query

SERVICE_NAME = "product"
OBJECT_NAME = "product"


class ProductService:
    def __init__(self, storage: ProductStorage, to_record: Callable[[Product], Message]) -> None:
        self._storage = storage
        # The audit payload is the protobuf record (the servicer owns that conversion).
        self._to_record = to_record

    # queries
    async def get(self, product_id: int) -> Product:
        require_valid_id(product_id)
        async with self._storage.reading() as products:
            product = await products.get(product_id)
        if product is None:
            raise not_found(product_id)
        return product

    async def search(self, query: ProductQuery) -> tuple[list[Product], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.reading() as products:
            return await products.search(query)

    # dry runs: refused to whoever the change itself would be refused to
    async def check_create(self, draft: ProductDraft, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "create")
        return validate_draft(draft, creating=True)

    async def check_update(self, draft: ProductDraft, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "update")
        return validate_draft(draft, creating=False)

    async def check_delete(self, product_id: int, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "delete")
        if failures := id_failures(product_id):
            return failures
        async with self._storage.reading() as products:
            found = deletable(product_id, await products.get(product_id))
        return [found.failure()] if isinstance(found, Refusal) else []

    # writes
    async def create(self, draft: ProductDraft, actor: Principal) -> Product:
        failures = await self.check_create(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            product = await uow.products.insert(draft, actor.user_id)
            uow.emit(self._event(product, ActionType.INSERT, "AfterCreateProduct", actor))
            await uow.commit()
        return product

    async def update(self, draft: ProductDraft, actor: Principal) -> Product:
        failures = await self.check_update(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            product = await uow.products.update(draft, actor.user_id)
            if product is None:
                raise not_found(draft.id)
            uow.emit(self._event(product, ActionType.UPDATE, "AfterUpdateProduct", actor))
            await uow.commit()
        return product

    async def delete(self, product_id: int, actor: Principal) -> Product:
        authorization.check_write(actor, "delete")
        require_valid_id(product_id)
        async with self._storage.unit_of_work() as uow:
            product = deletable(product_id, await uow.products.get(product_id, for_update=True))
            if isinstance(product, Refusal):
                raise product.error
            await uow.products.delete(product_id)
            uow.emit(self._event(product, ActionType.DELETE, "AfterDeleteProduct", actor))
            await uow.commit()
        return product

    def _event(
        self, product: Product, action: ActionType, action_func: str, actor: Principal
    ) -> AuditEvent:
        return AuditEvent.for_record(
            service=SERVICE_NAME,
            action_func=action_func,
            action_type=action,
            object_name=OBJECT_NAME,
            object_id=product.id,
            performed_by=actor.user_id,
            record=self._to_record(product),
        )
