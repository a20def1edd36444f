"""A batch of deliveries (messages of one event, and envelopes of several): each event parsed,
authenticated and (when traced) given its span, then all stored in one transaction and
acknowledged only after commit. A malformed or unauthenticated event is kept aside
(audit_rejects, with its kind): a message of its own is terminated, an envelope's event is
rejected alone and the rest of the envelope stored; an envelope that cannot be read (an
unknown version, a broken body) is kept aside and terminated whole."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import NamedTuple

import asyncpg
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)

from audit.server.events.authenticity import EventAuthenticator, RejectKind
from audit.server.events.wire import (
    ReceivedEvent,
    parse_delivery,
    parse_header_block,
    traceparent_header,
)
from audit.server.ingest.pull import Delivery, PullSubscription
from audit.server.repository import AuditRepository
from global_errors import Unavailable
from global_utils.data.database import CONNECTION_ERRORS, Database
from global_utils.events.audit_event import Subject
from global_utils.events.envelope import ENVELOPE_VERSION, EnvelopeError, envelope_version
from global_utils.events.envelope import decode as decode_envelope
from global_utils.observability.propagation import context_from_traceparent, span_or_nothing

logger = logging.getLogger(__name__)

# What a refused row raises: the server's errors, or asyncpg's own (a ValueError) for a value
# it cannot encode. Connection errors among them are re-raised: the batch is retried later.
_REFUSED = (asyncpg.PostgresError, ValueError)


class Reject(NamedTuple):
    """A message, or one event of an envelope, set aside: the delivery it came in, why (the
    kind operators count), the reason logged and kept, and what is kept (the event's header
    block and payload; a whole message's own). whole: the delivery itself is refused and
    terminated; an envelope's rejected event is kept apart while the rest of it is stored and
    the envelope acknowledged."""

    delivery: Delivery
    kind: RejectKind
    reason: str
    block: bytes | None
    data: bytes
    whole: bool


class _Checked(NamedTuple):
    """An authentic event, with what a refusal by the database would keep (as Reject)."""

    delivery: Delivery
    block: bytes | None
    whole: bool
    event: ReceivedEvent


class BatchHandler:
    """Handles the consumer's batches, several at a time, and counts what they stored and
    rejected."""

    def __init__(
        self,
        database: Database,
        authenticator: EventAuthenticator,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer
        self._db = database
        self._authenticator = authenticator
        self.stored = 0  # rows this instance inserted (a redelivery adds none)
        self.rejected: Counter[RejectKind] = Counter()  # events (or unread envelopes) rejected

    async def handle(self, deliveries: list[Delivery], pull: PullSubscription) -> None:
        """Stores a batch: commit first, then ack (or term the unreadable ones) on pull."""
        events: list[_Checked] = []
        rejects: list[Reject] = []
        links: list[Link] = []  # the traced events' spans, for the insert's span
        for delivery in deliveries:
            version = envelope_version(delivery.headers)
            if version is None:  # a message of one event
                self._check(delivery, delivery.headers, delivery.data, True, events, rejects, links)
                continue
            try:
                if version != ENVELOPE_VERSION:
                    raise EnvelopeError(
                        f"envelope version {version[:20]!r} unknown (this consumer reads"
                        f" {ENVELOPE_VERSION})"
                    )
                contents = decode_envelope(delivery.data)
            except EnvelopeError as exc:
                # Refused whole: nothing of an envelope this consumer cannot read is stored.
                rejects.append(
                    Reject(
                        delivery,
                        RejectKind.MALFORMED,
                        f"not an audit envelope: {exc}",
                        delivery.headers,
                        delivery.data,
                        True,
                    )
                )
                continue
            for block, data in contents:
                self._check(delivery, block, data, False, events, rejects, links)
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
            await pull.nak(deliveries, delay_seconds=2)
            await asyncio.sleep(1)
            return
        terminated = {id(reject.delivery) for reject in rejects if reject.whole}
        if terminated:
            await pull.term([d for d in deliveries if id(d) in terminated])
            await pull.ack([d for d in deliveries if id(d) not in terminated])
        else:
            await pull.ack(deliveries)

    def _check(
        self,
        delivery: Delivery,
        block: bytes | None,
        data: bytes,
        whole: bool,
        events: list[_Checked],
        rejects: list[Reject],
        links: list[Link],
    ) -> None:
        """Parses and authenticates one event (a message of its own when whole, else one of
        an envelope's) into events or rejects."""
        try:
            event, seal = parse_delivery(block, data)
        except ValueError as exc:
            rejects.append(
                Reject(
                    delivery, RejectKind.MALFORMED, f"not an audit event: {exc}", block, data, whole
                )
            )
            return
        refusal = self._authenticator.check(event, seal)
        if self._tracer is not None and event.trace_id is not None:
            self._event_span(self._tracer, delivery, block, event, refusal, links)
        if refusal is None:
            events.append(_Checked(delivery, block, whole, event))
        else:
            rejects.append(Reject(delivery, *refusal, block, data, whole))

    @staticmethod
    def _event_span(
        tracer: Tracer,
        delivery: Delivery,
        block: bytes | None,
        event: ReceivedEvent,
        refusal: tuple[RejectKind, str] | None,
        links: list[Link],
    ) -> None:
        """One short CONSUMER span for a traced event, a child of its producer's context
        (from its traceparent header); an event refused here is an error span. A sampled
        span becomes one of links."""
        span = tracer.start_span(
            f"{delivery.subject.decode(errors='replace')} process",
            context=context_from_traceparent(traceparent_header(block)),
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

    async def _store(self, events: list[_Checked], rejects: list[Reject]) -> list[Reject]:
        """Inserts events and records rejects atomically; returns events the database itself
        refused (now rejects too). An event already stored (a redelivery, a re-sent envelope)
        is skipped, not refused."""
        rows = [checked.event for checked in events]
        async with self._db.connection() as conn:
            repo = AuditRepository(conn)
            if not rejects and await self._insert(repo, rows) is None:
                return []  # the usual batch: one atomic insert, no transaction around it
            refused: list[Reject] = []
            async with conn.transaction():
                if not rejects or await self._insert(repo, rows) is not None:
                    # One bad row spoils the batch: store them one at a time, keep the bad apart.
                    for delivery, block, whole, row in events:
                        reason = await self._insert(repo, [row])
                        if reason is not None:
                            refused.append(
                                Reject(
                                    delivery,
                                    RejectKind.REFUSED,
                                    f"database refused it: {reason}",
                                    block,
                                    row.payload,
                                    whole,
                                )
                            )
                for reject in rejects + refused:
                    await repo.insert_reject(
                        reject.delivery.subject.decode(errors="replace"),
                        parse_header_block(reject.block),
                        reject.data,
                        reject.reason,
                        reject.kind.value,
                    )
        # Logged and counted once stored (a retried batch would otherwise count twice).
        for reject in rejects + refused:
            logger.warning("audit message rejected (%s): %s", reject.kind.value, reject.reason)
            self.rejected[reject.kind] += 1
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
