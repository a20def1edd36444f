"""The writing side of token revocations: a user's not-before time goes into the outbox in the
transaction of the change that revokes their tokens, and the outbox relay puts it in the
REVOCATIONS bucket every verifier follows (global_utils.identity.revocations). Through the
outbox, a revocation made while NATS is down is published once it is back, never lost."""

from __future__ import annotations

import json
import uuid

import asyncpg

from global_utils.identity.revocations import encode_not_before, revocation_subject
from global_utils.messaging.outbox import NOTIFY_CHANNEL
from global_utils.runtime.timeutil import now

# JetStream drops a re-published entry with the same id within the bucket's duplicate window.
_MSG_ID_HEADER = "Nats-Msg-Id"


class TokenRevocations:
    """uow.revocations: revokes every access token a user holds, in the unit of work's
    transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def revoke(self, user_id: int) -> None:
        """Tokens of user_id issued before now are refused by every verifier once this
        transaction has committed (and the relay has published it)."""
        entry_id = uuid.uuid4()
        moment = now()
        # The time is kept with the user (this service's instances read it with the caller's
        # standing) and goes to the bucket through the outbox; the NOTIFY, delivered at
        # commit, wakes the relays (as an audit event's write does).
        await self._conn.execute(
            "WITH kept AS (UPDATE appuser SET tokensnotbefore = $5 WHERE id = $6),"
            " stored AS (INSERT INTO audit_outbox (eventid, subject, headers, payload)"
            " VALUES ($1, $2, $3::jsonb, $4))"
            f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')",
            entry_id,
            revocation_subject(user_id),
            json.dumps({_MSG_ID_HEADER: str(entry_id)}),
            encode_not_before(moment.timestamp()),
            moment,
            user_id,
        )
