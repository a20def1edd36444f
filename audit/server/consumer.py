"""The audit consumer: a durable JetStream pull consumer storing each batch in one transaction
and acknowledging only after commit; malformed messages are kept aside and terminated."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from audit.server.repository import AuditRepository
from global_errors import Unavailable
from global_utils.audit import (
    AUDIT_CONSUMER,
    AUDIT_STREAM,
    AuditEvent,
    Subject,
    ensure_audit_stream,
)
from global_utils.backoff import Backoff
from global_utils.broker import Broker
from global_utils.db import Database
from global_utils.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# A fetch first waits (up to IDLE_WAIT_SECONDS) for one event, then takes whatever else is
# there within TOP_UP_SECONDS: a lone event is stored at once, a burst in full batches.
IDLE_WAIT_SECONDS = 1.0
TOP_UP_SECONDS = 0.02
# While idle, check this often that the consumer still exists on the server (a restarted
# server without its store, or a deleted consumer, would otherwise leave fetches silent).
IDLE_CHECK_SECONDS = 15.0


class AuditConsumer:
    def __init__(
        self,
        database: Database,
        broker: Broker,
        *,
        batch_size: int = 500,
        ack_wait_seconds: float = 30.0,
    ) -> None:
        self._db = database
        self._broker = broker
        self._batch_size = batch_size
        self._ack_wait = ack_wait_seconds
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self.stored = 0  # rows this instance inserted (a redelivery adds none)
        self.resubscriptions = 0  # times the subscription had to be made again

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-consumer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        # Unacked messages of a batch in progress are simply redelivered later.
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # stop() never raises
                logger.debug("unsubscribe failed: %s", exc)

    async def _run(self) -> None:
        await self._db.wait_ready()
        await self._report_table_kind()
        await self._broker.wait_connected()
        delays = Backoff(initial=0.2, maximum=5.0).delays()
        failing = False
        while True:
            try:
                await self._unsubscribe()
                subscription = self._subscription = await self._subscribe()
                if failing:
                    logger.info("audit consumer subscribed again")
                    failing = False
                    delays = Backoff(initial=0.2, maximum=5.0).delays()
                await self._consume(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "audit consumer lost its subscription (%r); retrying", exc, exc_info=True
                    )
                failing = True
                self.resubscriptions += 1
                await asyncio.sleep(next(delays))

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = self._broker.client.jetstream()
        await ensure_audit_stream(js)
        return await js.pull_subscribe(
            Subject.AUDIT.value,
            durable=AUDIT_CONSUMER,
            stream=AUDIT_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait,
                max_deliver=-1,  # a database outage must not use up an event's deliveries
                max_ack_pending=20 * self._batch_size,
            ),
        )

    async def _consume(self, subscription: JetStreamContext.PullSubscription) -> None:
        idle_since = time.monotonic()
        while True:
            try:
                messages = await subscription.fetch(1, timeout=IDLE_WAIT_SECONDS)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's: no work
                # No work. Now and then make sure the consumer is still there.
                if time.monotonic() - idle_since > IDLE_CHECK_SECONDS:
                    await subscription.consumer_info()
                    idle_since = time.monotonic()
                continue
            idle_since = time.monotonic()
            if self._batch_size > 1:
                try:
                    messages += await subscription.fetch(
                        self._batch_size - 1, timeout=TOP_UP_SECONDS
                    )
                except TimeoutError:
                    pass  # nothing more right now: store what we have
            await self.handle(messages)

    async def handle(self, messages: Sequence[Msg]) -> None:
        """Stores a fetched batch: commit first, then ack (or term the unreadable ones)."""
        events: list[tuple[Msg, AuditEvent]] = []
        rejects: list[tuple[Msg, str]] = []
        for msg in messages:
            try:
                events.append((msg, AuditEvent.from_message(dict(msg.headers or {}), msg.data)))
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                rejects.append((msg, f"not an audit event: {exc}"))
        try:
            rejects += await self._store(events, rejects)
        except Unavailable:
            logger.warning(
                "audit database unavailable; %d events will be redelivered", len(messages)
            )
            for msg in messages:
                await msg.nak(delay=2)
            await asyncio.sleep(1)
            return
        rejected = {id(msg) for msg, _ in rejects}
        for msg in messages:
            if id(msg) in rejected:
                await msg.term()
            else:
                await msg.ack()

    async def _store(
        self, events: list[tuple[Msg, AuditEvent]], rejects: list[tuple[Msg, str]]
    ) -> list[tuple[Msg, str]]:
        """Inserts events and records rejects in one transaction; returns events the database
        itself refused (now rejects too)."""
        refused: list[tuple[Msg, str]] = []
        async with self._db.connection() as conn, conn.transaction():
            repo = AuditRepository(conn)
            try:
                async with conn.transaction():
                    self.stored += await repo.insert_events([e for _, e in events])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.PostgresConnectionError):
                    raise
                # One bad row spoils the batch: store them one at a time, keep the bad apart.
                for msg, event in events:
                    try:
                        async with conn.transaction():
                            self.stored += await repo.insert_events([event])
                    except asyncpg.PostgresError as row_exc:
                        if isinstance(row_exc, asyncpg.PostgresConnectionError):
                            raise
                        refused.append((msg, f"database refused it: {row_exc}"))
            for msg, reason in rejects + refused:
                logger.warning("audit message rejected: %s", reason)
                await repo.insert_reject(
                    msg.subject, dict(msg.headers or {}), msg.data or b"", reason
                )
        return refused

    async def _report_table_kind(self) -> None:
        try:
            async with self._db.connection() as conn:
                hypertable = await AuditRepository(conn).has_timescaledb()
        except Unavailable:
            return
        if not hypertable:
            logger.info("timescaledb extension not present: audit is an ordinary table")
