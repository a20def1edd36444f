"""The promotion use cases: queries, validated writes with their lines, audit events."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from global_errors import Failure, ValidationFailed
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.identity.principal import Principal
from global_utils.rules.validation import Refusal, id_failures, require_valid_id
from promotion.server import authorization
from promotion.server.models import Promotion, PromotionDraft, PromotionQuery
from promotion.server.unit_of_work import PromotionStorage
from promotion.server.validation import deletable, not_found, validate_draft, validate_query

SERVICE_NAME = "promotion"
OBJECT_NAME = "promotion"


class PromotionService:
    def __init__(
        self,
        storage: PromotionStorage,
        to_record: Callable[[Promotion], Message],
    ) -> None:
        self._storage = storage
        # The audit payload is the protobuf record (the servicer owns that conversion).
        self._to_record = to_record

    # queries
    async def get(self, promotion_id: int) -> Promotion:
        require_valid_id(promotion_id)
        async with self._storage.reading() as promotions:
            promotion = await promotions.get(promotion_id)
        if promotion is None:
            raise not_found(promotion_id)
        return promotion

    async def search(self, query: PromotionQuery) -> tuple[list[Promotion], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.reading() as promotions:
            return await promotions.search(query)

    # dry runs: refused to whoever the change itself would be refused to
    async def check_create(self, draft: PromotionDraft, actor: Principal) -> list[Failure]:
        authorization.check_promotion_write(actor, "create")
        return validate_draft(draft, creating=True)

    async def check_update(self, draft: PromotionDraft, actor: Principal) -> list[Failure]:
        authorization.check_promotion_write(actor, "update")
        return validate_draft(draft, creating=False)

    async def check_delete(self, promotion_id: int, actor: Principal) -> list[Failure]:
        authorization.check_promotion_write(actor, "delete")
        if failures := id_failures(promotion_id):
            return failures
        async with self._storage.reading() as promotions:
            found = deletable(promotion_id, await promotions.get(promotion_id))
        return [found.failure()] if isinstance(found, Refusal) else []

    # writes
    async def create(self, draft: PromotionDraft, actor: Principal) -> Promotion:
        failures = await self.check_create(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            promotion = await uow.promotions.insert(draft)
            uow.emit(self._event(promotion, ActionType.INSERT, "AfterCreatePromotion", actor))
            await uow.commit()
        return promotion

    async def update(self, draft: PromotionDraft, actor: Principal) -> Promotion:
        failures = await self.check_update(draft, actor)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.unit_of_work() as uow:
            promotion = await uow.promotions.update(draft)
            if promotion is None:
                raise not_found(draft.id)
            uow.emit(self._event(promotion, ActionType.UPDATE, "AfterUpdatePromotion", actor))
            await uow.commit()
        return promotion

    async def delete(self, promotion_id: int, actor: Principal) -> Promotion:
        authorization.check_promotion_write(actor, "delete")
        require_valid_id(promotion_id)
        async with self._storage.unit_of_work() as uow:
            promotion = deletable(
                promotion_id, await uow.promotions.get(promotion_id, for_update=True)
            )
            if isinstance(promotion, Refusal):
                raise promotion.error
            await uow.promotions.delete(promotion_id)
            uow.emit(self._event(promotion, ActionType.DELETE, "AfterDeletePromotion", actor))
            await uow.commit()
        return promotion

    def _event(
        self, promotion: Promotion, action: ActionType, action_func: str, actor: Principal
    ) -> AuditEvent:
        return AuditEvent.for_record(
            service=SERVICE_NAME,
            action_func=action_func,
            action_type=action,
            object_name=OBJECT_NAME,
            object_id=promotion.id,
            performed_by=actor.user_id,
            record=self._to_record(promotion),
        )
