"""The audit consumer: a durable JetStream pull consumer storing each batch in one transaction
and acknowledging only after commit; malformed or unauthenticated messages are kept aside
(audit_rejects, with their kind) and terminated."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)

from audit.server.authenticity import EventAuthenticator, RejectKind
from audit.server.pull import Delivery, PullSubscription
from audit.server.raw_client import RawClient
from audit.server.repository import AuditRepository
from audit.server.wire import (
    ReceivedEvent,
    parse_delivery,
    parse_header_block,
    traceparent_header,
)
from global_errors import Unavailable
from global_utils.data.database import CONNECTION_ERRORS, Database
from global_utils.events.audit_event import AUDIT_CONSUMER, AUDIT_STREAM, Subject
from global_utils.messaging.broker import Broker
from global_utils.observability.propagation import context_from_traceparent, span_or_nothing
from global_utils.runtime.backoff import Backoff
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# Wait this long for work before checking on the consumer; a lone event is handed over as soon
# as it arrives, a burst in batches of whatever arrived while the previous batch was stored.
IDLE_WAIT_SECONDS = 1.0
# What a refused row raises: the server's errors, or asyncpg's own (a ValueError) for a value
# it cannot encode. Connection errors among them are re-raised: the batch is retried later.
_REFUSED = (asyncpg.PostgresError, ValueError)
# Batches stored at the same time, each on its own database connection and chain. A batch
# spends most of its time waiting (round trips, other batches' work on the one event loop),
# so more than two keep the process busy: `make bench-audit` took a burst 13 % faster with
# four than with two on two cores (alternating runs, medians), and no faster with six.
BATCHES_IN_FLIGHT = 4
# A pull request stays open this long on the server.
PULL_EXPIRES_SECONDS = 5.0
# While idle, check this often that the consumer still exists on the server (a restarted
# server without its store, or a deleted consumer, would otherwise leave the pulls silent).
IDLE_CHECK_SECONDS = 15.0

# A delivery set aside: why (the kind operators count) and the reason logged and kept.
Reject = tuple[Delivery, RejectKind, str]


@dataclass(frozen=True)
class ConsumerLag:
    """The durable consumer's backlog on the server when last asked."""

    pending: int  # in the stream, not yet delivered to any instance
    ack_pending: int  # delivered, not yet acknowledged


class ConsumerMissing(Exception):
    """The stream or the durable consumer is not on the server: provisioning makes them (the
    audit service may only read and use them)."""

    def __init__(self) -> None:
        super().__init__(
            f"no durable consumer {AUDIT_CONSUMER} of stream {AUDIT_STREAM} on NATS:"
            " provisioning makes them (python -m provision); events wait in the stream and the"
            " producers' outboxes until then"
        )


class AuditConsumer:
    def __init__(
        self,
        database: Database,
        broker: Broker[RawClient],
        authenticator: EventAuthenticator,
        *,
        batch_size: int = 500,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer
        self._db = database
        self._broker = broker
        self._authenticator = authenticator
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self._pull: PullSubscription | None = None
        self.stored = 0  # rows this instance inserted (a redelivery adds none)
        self.resubscriptions = 0  # times the subscription had to be made again
        self.rejected: Counter[RejectKind] = Counter()  # messages terminated, by kind
        self.lag: ConsumerLag | None = None  # set by check_lag()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-consumer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        # Unacked messages of a batch in progress are simply redelivered later.
        pull, self._pull = self._pull, None
        if pull is not None:
            try:
                await pull.close()
            except Exception as exc:  # stop() never raises
                logger.debug("unsubscribe failed: %s", exc)

    async def _run(self) -> None:
        await self._db.wait_ready()
        await self._broker.wait_connected()
        delays = Backoff(initial=0.2, maximum=5.0).delays()
        failing = False
        missing = False  # reported that provisioning has not made the consumer (yet, or again)
        while True:
            try:
                await self._unsubscribe()
                js = self._broker.client.jetstream()
                await self._check_consumer(js)
                self._pull = PullSubscription(
                    self._broker,
                    stream=AUDIT_STREAM,
                    consumer=AUDIT_CONSUMER,
                    batch_size=self._batch_size,
                    expires_seconds=PULL_EXPIRES_SECONDS,
                )
                await self._pull.open()
                if failing:
                    logger.info("audit consumer subscribed again")
                    failing = missing = False
                    delays = Backoff(initial=0.2, maximum=5.0).delays()
                await self._consume(js, self._pull)
            except asyncio.CancelledError:
                raise
            except ConsumerMissing as exc:
                if not missing:
                    logger.warning("audit consumer waiting: %s", exc)
                failing = missing = True
                await asyncio.sleep(next(delays))
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "audit consumer lost its subscription (%r); retrying", exc, exc_info=True
                    )
                failing = True
                self.resubscriptions += 1
                await asyncio.sleep(next(delays))

    async def check_lag(self) -> ConsumerLag | None:
        """Asks the server for the consumer's info (shared by every instance) and keeps the
        counts in self.lag for metrics; nothing before this instance has subscribed (the
        consumer may not exist yet)."""
        if self._pull is None:
            return None
        info = await self._broker.client.jetstream().consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
        self.lag = ConsumerLag(info.num_pending or 0, info.num_ack_pending or 0)
        return self.lag

    async def _check_consumer(self, js: JetStreamContext) -> None:
        """Raises ConsumerMissing unless the durable consumer (and so its stream) exists."""
        try:
            await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
        except NotFoundError:
            raise ConsumerMissing from None

    async def _consume(self, js: JetStreamContext, pull: PullSubscription) -> None:
        # Several batches in flight: some being stored while the next is read and parsed.
        in_flight = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        idle_since = time.monotonic()
        async with asyncio.TaskGroup() as batches:
            while True:
                await in_flight.acquire()
                deliveries = await pull.next_batch(self._batch_size, timeout=IDLE_WAIT_SECONDS)
                if deliveries:
                    idle_since = time.monotonic()
                    batches.create_task(self._handle_then_release(deliveries, in_flight))
                    continue
                in_flight.release()
                if time.monotonic() - idle_since > IDLE_CHECK_SECONDS:
                    # No work for a while: make sure the consumer is still there.
                    await self._check_consumer(js)
                    idle_since = time.monotonic()

    async def _handle_then_release(
        self, deliveries: list[Delivery], in_flight: asyncio.Semaphore
    ) -> None:
        try:
            await self.handle(deliveries)
        finally:
            in_flight.release()

    async def handle(self, deliveries: list[Delivery]) -> None:
        """Stores a batch: commit first, then ack (or term the unreadable ones)."""
        assert self._pull is not None
        events: list[tuple[Delivery, ReceivedEvent]] = []
        rejects: list[Reject] = []
        links: list[Link] = []  # the traced events' spans, for the insert's span
        check = self._authenticator.check
        for delivery in deliveries:
            try:
                event, seal = parse_delivery(delivery.headers, delivery.data)
            except ValueError as exc:
                rejects.append((delivery, RejectKind.MALFORMED, f"not an audit event: {exc}"))
                continue
            refusal = check(event, seal)
            if self._tracer is not None and event.trace_id is not None:
                self._event_span(self._tracer, delivery, event, refusal, links)
            if refusal is None:
                events.append((delivery, event))
            else:
                rejects.append((delivery, *refusal))
        try:
            # One span for the batch's storing, linked to each event it stores (a batch
            # belongs to many traces): only when some event's trace is kept. It is a child of
            # the first such event's span, so a parent-based sampler keeps it with that trace
            # (as a root it would be sampled on its own, and mostly dropped at a low ratio).
            with span_or_nothing(
                self._tracer if links else None,
                "audit insert",
                context=set_span_in_context(NonRecordingSpan(links[0].context)) if links else None,
                links=links,
                attributes={"gotemp.audit.events": len(events)},
            ):
                rejects += await self._store(events, rejects)
        except Unavailable:
            logger.warning(
                "audit database unavailable; %d events will be redelivered", len(deliveries)
            )
            await self._pull.nak(deliveries, delay_seconds=2)
            await asyncio.sleep(1)
            return
        if rejects:
            rejected = {id(delivery) for delivery, _, _ in rejects}
            await self._pull.term([delivery for delivery, _, _ in rejects])
            await self._pull.ack([d for d in deliveries if id(d) not in rejected])
        else:
            await self._pull.ack(deliveries)

    @staticmethod
    def _event_span(
        tracer: Tracer,
        delivery: Delivery,
        event: ReceivedEvent,
        refusal: tuple[RejectKind, str] | None,
        links: list[Link],
    ) -> None:
        """One short CONSUMER span for a traced event, a child of its producer's context
        (from its traceparent header); an event refused here is an error span. A sampled
        span becomes one of links."""
        span = tracer.start_span(
            f"{delivery.subject.decode(errors='replace')} process",
            context=context_from_traceparent(traceparent_header(delivery.headers)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": Subject.AUDIT.value,
                "messaging.message.id": event.event_id,
                "gotemp.audit.service": event.service,
            },
        )
        if refusal is not None:
            span.set_status(Status(StatusCode.ERROR, f"rejected: {refusal[0].value}"))
        context = span.get_span_context()
        span.end()
        if context.trace_flags.sampled:
            links.append(Link(context))

    async def _store(
        self, events: list[tuple[Delivery, ReceivedEvent]], rejects: list[Reject]
    ) -> list[Reject]:
        """Inserts events and records rejects atomically; returns events the database itself
        refused (now rejects too)."""
        rows = [row for _, row in events]
        async with self._db.connection() as conn:
            repo = AuditRepository(conn)
            if not rejects and await self._insert(repo, rows) is None:
                return []  # the usual batch: one atomic insert, no transaction around it
            refused: list[Reject] = []
            async with conn.transaction():
                if not rejects or await self._insert(repo, rows) is not None:
                    # One bad row spoils the batch: store them one at a time, keep the bad apart.
                    for delivery, row in events:
                        reason = await self._insert(repo, [row])
                        if reason is not None:
                            refused.append(
                                (delivery, RejectKind.REFUSED, f"database refused it: {reason}")
                            )
                for delivery, kind, reason in rejects + refused:
                    await repo.insert_reject(
                        delivery.subject.decode(errors="replace"),
                        parse_header_block(delivery.headers),
                        delivery.data,
                        reason,
                        kind.value,
                    )
        # Logged and counted once stored (a retried batch would otherwise count twice).
        for _, kind, reason in rejects + refused:
            logger.warning("audit message rejected (%s): %s", kind.value, reason)
            self.rejected[kind] += 1
        return refused

    async def _insert(self, repo: AuditRepository, rows: list[ReceivedEvent]) -> str | None:
        """Stores rows (in a savepoint of any transaction open); why they were refused, or
        None. A lost connection is raised: the batch is retried later."""
        try:
            stored = await repo.insert_events(rows)
        except _REFUSED as exc:
            # The server ending the session (57P01 and its kin are PostgresErrors) refused
            # nothing: the batch is retried, never set aside.
            if isinstance(exc, CONNECTION_ERRORS):
                raise
            return str(exc)
        # Counted after the await: with batches in flight side by side `self.stored += await ...`
        # would lose updates.
        self.stored += stored
        return None
