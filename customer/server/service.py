"""The customer use cases: queries, validated writes, audit events."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from customer.server import authorization
from customer.server.models import Customer, CustomerDraft, CustomerQuery
from customer.server.unit_of_work import CustomerStorage
from customer.server.validation import deletable, not_found, validate_draft, validate_query
from global_errors import Failure, ValidationFailed
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.identity.principal import Principal
from global_utils.rules.validation import Refusal, id_failures, require_valid_id

SERVICE_NAME = "customer"
OBJECT_NAME = "customer"


class CustomerService:
    def __init__(self, storage: CustomerStorage, to_record: Callable[[Customer], Message]) -> None:
        self._storage = storage
        # The audit payload is the protobuf record (the servicer owns that conversion).
        self._to_record = to_record

    # queries
    async def get(self, customer_id: int) -> Customer:
        require_valid_id(customer_id)
        async with self._storage.reading() as customers:
            customer = await customers.get(customer_id)
        if customer is None:
            raise not_found(customer_id)
        return customer

    async def search(self, query: CustomerQuery) -> tuple[list[Customer], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.reading() as customers:
            return await customers.search(query)

    # dry runs: refused to whoever the change itself would be refused to
    async def check_create(self, draft: CustomerDraft, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "create")
        return validate_draft(draft, creating=True)

    async def check_update(self, draft: CustomerDraft, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "update")
        return validate_draft(draft, creating=False)

    async def check_delete(self, customer_id: int, actor: Principal) -> list[Failure]:
        authorization.check_write(actor, "delete")
        if failures := id_failures(customer_id):
            return failures
        async with self._storage.reading() as customers:
            found = deletable(customer_id, await customers.get(customer_id))
        return [found.failure()] if isinstance(found, Refusal) else []

    # writes
    async def create(self, draft: CustomerDraft, actor: Principal) -> Customer:
        failures = await self.check_create(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            customer = await uow.customers.insert(draft, actor.user_id)
            uow.emit(self._event(customer, ActionType.INSERT, "AfterCreateCustomer", actor))
            await uow.commit()
        return customer

    async def update(self, draft: CustomerDraft, actor: Principal) -> Customer:
        failures = await self.check_update(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            customer = await uow.customers.update(draft, actor.user_id)
            if customer is None:
                raise not_found(draft.id)
            uow.emit(self._event(customer, ActionType.UPDATE, "AfterUpdateCustomer", actor))
            await uow.commit()
        return customer

    async def delete(self, customer_id: int, actor: Principal) -> Customer:
        authorization.check_write(actor, "delete")
        require_valid_id(customer_id)
        async with self._storage.unit_of_work() as uow:
            customer = deletable(customer_id, await uow.customers.get(customer_id, for_update=True))
            if isinstance(customer, Refusal):
                raise customer.error
            await uow.customers.delete(customer_id)
            uow.emit(self._event(customer, ActionType.DELETE, "AfterDeleteCustomer", actor))
            await uow.commit()
        return customer

    def _event(
        self, customer: Customer, action: ActionType, action_func: str, actor: Principal
    ) -> AuditEvent:
        return AuditEvent.for_record(
            service=SERVICE_NAME,
            action_func=action_func,
            action_type=action,
            object_name=OBJECT_NAME,
            object_id=customer.id,
            performed_by=actor.user_id,
            record=self._to_record(customer),
        )
