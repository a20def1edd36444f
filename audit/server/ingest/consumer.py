"""The audit consumer: the durable JetStream pull consumer's loop (subscribe, and again after a
loss; batches in flight side by side, each handed to the BatchHandler; the consumer's lag)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import Tracer

from audit.server.events.authenticity import EventAuthenticator, RejectKind
from audit.server.ingest.batch import BatchHandler
from audit.server.ingest.pull import Delivery, PullSubscription
from audit.server.ingest.raw_client import RawClient
from global_utils.data.database import Database
from global_utils.events.audit_event import AUDIT_CONSUMER, AUDIT_STREAM
from global_utils.events.envelope import event_count
from global_utils.messaging.broker import Broker
from global_utils.runtime.backoff import Backoff
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# Wait this long for work before checking on the consumer; a lone event is handed over as soon
# as it arrives, a burst in batches of whatever arrived while the previous batch was stored.
IDLE_WAIT_SECONDS = 1.0
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


def _events_in(delivery: Delivery) -> int:
    """A delivery's events: an envelope's count, 1 for a message of one event."""
    return event_count(delivery.headers, delivery.data)


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
        self._db = database
        self._broker = broker
        self._batches = BatchHandler(database, authenticator, tracer=tracer)
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self._pull: PullSubscription | None = None
        self.resubscriptions = 0  # times the subscription had to be made again
        self.lag: ConsumerLag | None = None  # set by check_lag()

    @property
    def stored(self) -> int:
        """Rows this instance inserted (a redelivery adds none)."""
        return self._batches.stored

    @property
    def rejected(self) -> Counter[RejectKind]:
        """Events this instance rejected, by kind (an envelope it could not read counts once)."""
        return self._batches.rejected

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
                    weigh=_events_in,
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
        """Stores a batch on the current subscription: commit first, then ack (or term the
        unreadable ones)."""
        assert self._pull is not None
        await self._batches.handle(deliveries, self._pull)
