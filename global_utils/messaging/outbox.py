"""Transactional outbox: audit events are stored with the change that produced them, then a
relay publishes them to JetStream and marks them sent once JetStream has acknowledged them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from nats.js.client import JetStreamContext
from nats.js.errors import NoStreamResponseError
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, use_span

from global_utils.data.database import Database, run_changes
from global_utils.events.audit_event import AUDIT_STREAM, AuditEvent, Subject
from global_utils.events.envelope import (
    DEFAULT_ENVELOPE_EVENTS,
    EMPTY_ENVELOPE_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_ENVELOPE_EVENTS,
    encode,
    envelope_headers,
    event_size,
    header_block,
)
from global_utils.events.signing import EventSigner, in_published_order
from global_utils.messaging.broker import Broker
from global_utils.observability.propagation import (
    TRACEPARENT,
    context_from_traceparent,
    current_traceparent,
    span_or_nothing,
)
from global_utils.runtime.backoff import Backoff
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "audit_outbox"
_AUDIT = Subject.AUDIT.value
_PURGE_EVERY_SECONDS = 60.0
# Sent rows are kept this long for inspection, then purged.
_KEEP_SENT = "1 hour"


class OutboxAuditEmitter:
    """AuditEmitter writing events into the producing service's own database, in the
    transaction of the change; nothing is committed without its event. Each event is signed
    here, so the row holds exactly what the relay publishes and the audit service verifies.
    With tracing on, the write is a span, and its traceparent is stored with the rows (in the
    same transaction) for the relay to continue the trace from."""

    def __init__(
        self, signer: EventSigner, relay: OutboxRelay | None = None, *, tracer: Tracer | None = None
    ) -> None:
        self._signer = signer
        self._relay = relay
        self._tracer = tracer

    async def record(
        self,
        conn: asyncpg.Connection,
        events: Sequence[AuditEvent],
        changes: Sequence[str] = (),
        args: Sequence[Any] = (),
    ) -> None:
        if not events:
            await run_changes(conn, changes, args)
            return
        with span_or_nothing(
            self._tracer, "audit outbox write", attributes={"gotemp.audit.events": len(events)}
        ):
            traceparent = current_traceparent() if self._tracer is not None else None
            n = len(args)
            # One round trip: the caller's changes, the rows, and a NOTIFY that is delivered at
            # commit and wakes relays in other instances too (only a hint: they poll anyway).
            # It names this process's relay, which committed() wakes and the NOTIFY need not
            # wake again.
            stored = (
                "stored AS (INSERT INTO audit_outbox"
                " (eventid, subject, headers, payload, traceparent) SELECT * FROM"
                f" unnest(${n + 1}::uuid[], ${n + 2}::text[], ${n + 3}::jsonb[],"
                f" ${n + 4}::bytea[], ${n + 5}::text[]))"
            )
            await conn.execute(
                f"WITH {', '.join([*changes, stored])}"
                f" SELECT pg_notify('{NOTIFY_CHANNEL}', ${n + 6})",
                *args,
                [e.event_id for e in events],
                [Subject.AUDIT.value] * len(events),
                [json.dumps(self._signer.sign(e.headers(), e.payload)) for e in events],
                [e.payload for e in events],
                [traceparent] * len(events),
                self._relay.notice if self._relay is not None else "",
            )

    def committed(self, events: Sequence[AuditEvent]) -> None:
        if events and self._relay is not None:
            self._relay.wake()


@dataclass(frozen=True)
class Backlog:
    """Unsent outbox rows when last counted."""

    pending: int
    oldest_age_seconds: float  # 0 with nothing pending


def _outbox_order(row: asyncpg.Record) -> tuple[Any, Any]:
    """The order rows were committed in (and the pending index's), events of one object
    among them: Python orders UUIDs as PostgreSQL does, by their bytes."""
    return row["createdat"], row["eventid"]


def _failure_text(exc: Exception) -> str:
    """A publish failure in words; a missing stream is a deployment step left out."""
    if isinstance(exc, NoStreamResponseError):
        return (
            f"no stream on NATS for the outbox's subjects (the {AUDIT_STREAM} stream, the"
            " REVOCATIONS bucket): provisioning makes them (python -m provision), rows stay"
            " in the outbox until then"
        )
    return str(exc) or type(exc).__name__


class _Envelope:
    """Audit events gathered for one envelope message (global_utils/events/envelope.py)."""

    def __init__(self) -> None:
        self._event_ids: list[Any] = []
        self._headers: dict[str, str] = {}  # the first event's, sent alone if it stays alone
        self._events: list[tuple[bytes, bytes]] = []
        self._size = EMPTY_ENVELOPE_BYTES

    def fits(self, block: bytes, payload: bytes, max_events: int) -> bool:
        return (
            len(self._events) < max_events
            and self._size + event_size(block, payload) <= MAX_ENVELOPE_BYTES
        )

    def add(self, event_id: Any, headers: dict[str, str], block: bytes, payload: bytes) -> None:
        if not self._events:
            self._headers = headers
        self._event_ids.append(event_id)
        self._events.append((block, payload))
        self._size += event_size(block, payload)

    def take(self, js: JetStreamContext, timeout: float) -> list[tuple[list[Any], Awaitable[Any]]]:
        """The publish of what was gathered (none, or one message: an envelope of one is that
        event's own message), leaving the envelope empty."""
        event_ids, events, headers = self._event_ids, self._events, self._headers
        self._event_ids, self._events, self._size = [], [], EMPTY_ENVELOPE_BYTES
        if not events:
            return []
        if len(events) == 1:
            payload = events[0][1]
            return [(event_ids, js.publish(_AUDIT, payload, timeout=timeout, headers=headers))]
        # The same events make the same id: JetStream drops an envelope re-sent whole after a
        # relay crash (one made up differently is left to the audit table's unique key).
        digest = hashlib.blake2b(
            b"".join(str(event_id).encode() for event_id in event_ids), digest_size=16
        ).hexdigest()
        body = encode(events)
        headers = envelope_headers(f"envelope-{digest}")
        return [(event_ids, js.publish(_AUDIT, body, timeout=timeout, headers=headers))]


class OutboxRelay:
    """Publishes pending outbox rows to JetStream. Rows are claimed with a lease (FOR UPDATE SKIP
    LOCKED while claiming), so several instances share the work; a row is marked sent only after
    JetStream acknowledged the message holding it. Audit events travel in envelopes of up to
    envelope_events (global_utils/events/envelope.py; Nats-Msg-Id derived from the events' ids),
    an envelope of one, and every event with envelope_events=1, as a message of its own
    (Nats-Msg-Id = event id): JetStream drops a re-publish after a crash as a duplicate, the
    audit table's unique key any copy that gets past it. Wakes on LISTEN/NOTIFY and on local
    commits, and polls anyway. A row's stored traceparent goes out in the event's `traceparent`
    header: with tracing on, that of a PRODUCER span (one per event) continuing the change's
    trace; with it off, as stored."""

    def __init__(
        self,
        database: Database,
        broker: Broker,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        envelope_events: int = DEFAULT_ENVELOPE_EVENTS,
        tracer: Tracer | None = None,
    ) -> None:
        if not 1 <= envelope_events <= MAX_ENVELOPE_EVENTS:
            raise ValueError(f"envelope_events must be 1 to {MAX_ENVELOPE_EVENTS}")
        self._envelope_events = envelope_events
        self._db = database
        self._tracer = tracer
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        # Long enough to outlast every publish of a batch (they run at once, each within
        # publish_timeout); short enough that a relay stopped mid-batch delays little.
        self._lease = timedelta(seconds=max(15.0, 3 * publish_timeout))
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_purge = 0.0
        self.published = 0  # events this instance published and marked sent
        # The NOTIFY payload of commits made in this process (OutboxAuditEmitter): they wake
        # this relay through committed(), and their notification is not a second wake-up (a
        # pass that would find nothing: three round trips per change).
        self.notice = uuid.uuid4().hex
        self.backlog: Backlog | None = None  # set by check_backlog()

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="outbox-relay"),
            asyncio.create_task(self._listen(), name="outbox-listen"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def relay_once(self) -> int:
        """Publishes one batch of pending rows; returns how many were claimed. Two round trips
        besides the publish, no transaction held while JetStream answers: the claim leases
        the rows (any relay may take them again once the lease has run out), the mark sets
        the acknowledged ones sent and gives the others back. A row whose mark is lost (the
        relay stopped first) is published again when its lease ends: JetStream drops the copy
        within its duplicate window, and the audit table's unique key after it."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "UPDATE audit_outbox o SET leaseuntil = clock_timestamp() + $2::interval"
                " FROM (SELECT eventid FROM audit_outbox WHERE sentat IS NULL"
                " AND (leaseuntil IS NULL OR leaseuntil < clock_timestamp())"
                " ORDER BY createdat, eventid LIMIT $1 FOR UPDATE SKIP LOCKED) claimed"
                " WHERE o.eventid = claimed.eventid"
                " RETURNING o.eventid, o.createdat, o.subject, o.headers, o.payload,"
                " o.traceparent",
                self._batch_size,
                self._lease,
            )
            if not rows:
                return 0
            rows.sort(key=_outbox_order)  # RETURNING keeps no order
            acked, error = await self._publish(rows)
            await self._mark(conn, acked, [row["eventid"] for row in rows] if error else [])
        self.published += len(acked)
        if error is not None:
            raise error
        return len(rows)

    async def check_backlog(self) -> Backlog:
        """Counts the unsent rows of every instance (one query on the pending index) and keeps
        the result in self.backlog for metrics."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS pending,"
                " coalesce(extract(epoch FROM clock_timestamp() - min(createdat)), 0) AS age"
                " FROM audit_outbox WHERE sentat IS NULL"
            )
        assert row is not None  # an aggregate always answers one row
        self.backlog = Backlog(row["pending"], max(0.0, float(row["age"])))
        return self.backlog

    async def _publish(self, rows: list[asyncpg.Record]) -> tuple[list[Any], BaseException | None]:
        """Publishes rows in their order: audit events in envelopes of up to envelope_events
        (and MAX_ENVELOPE_BYTES), an envelope of one as that event's own message, anything else
        (revocations) one message a row. Returns the event ids JetStream acknowledged and the
        first failure."""
        js = self._broker.client.jetstream()
        sends: list[tuple[list[Any], Awaitable[Any]]] = []
        spans: list[tuple[Any, Span]] = []  # the traced events', ended once answered
        envelope = _Envelope()
        for row in rows:
            headers = in_published_order(json.loads(row["headers"]))
            traceparent = row["traceparent"]
            span = self._producer_span(row)
            if span is not None:
                spans.append((row["eventid"], span))
                with use_span(span, end_on_exit=False):
                    traceparent = current_traceparent() or traceparent
            if traceparent:
                headers[TRACEPARENT] = traceparent
            if self._envelope_events > 1 and row["subject"] == _AUDIT:
                block = header_block(headers)
                if envelope.fits(block, row["payload"], self._envelope_events):
                    envelope.add(row["eventid"], headers, block, row["payload"])
                    continue
                sends += envelope.take(js, self._publish_timeout)
                if envelope.fits(block, row["payload"], self._envelope_events):
                    envelope.add(row["eventid"], headers, block, row["payload"])
                    continue
            # on its own: not an audit event, envelopes off, or too large for one
            sends += envelope.take(js, self._publish_timeout)
            sends.append(
                (
                    [row["eventid"]],
                    js.publish(
                        row["subject"],
                        row["payload"],
                        timeout=self._publish_timeout,
                        headers=headers,
                    ),
                )
            )
        sends += envelope.take(js, self._publish_timeout)
        results = await asyncio.gather(*(send for _, send in sends), return_exceptions=True)
        acked = [
            event_id
            for (event_ids, _), result in zip(sends, results, strict=True)
            if not isinstance(result, BaseException)
            for event_id in event_ids
        ]
        if spans:
            failed = {
                event_id
                for (event_ids, _), result in zip(sends, results, strict=True)
                if isinstance(result, BaseException)
                for event_id in event_ids
            }
            for event_id, span in spans:
                if event_id in failed:
                    span.set_status(Status(StatusCode.ERROR, "not acknowledged"))
                span.end()
        errors = [r for r in results if isinstance(r, BaseException)]
        return acked, errors[0] if errors else None

    def _producer_span(self, row: asyncpg.Record) -> Span | None:
        """A PRODUCER span continuing the change's trace from the row's traceparent, when
        tracing is on and the row has one."""
        parent = context_from_traceparent(row["traceparent"]) if self._tracer is not None else None
        if parent is None or self._tracer is None:
            return None
        subject = row["subject"]
        return self._tracer.start_span(
            f"{subject} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": subject,
                "messaging.message.id": str(row["eventid"]),
            },
        )

    async def _mark(self, conn: asyncpg.Connection, acked: list[Any], claimed: list[Any]) -> None:
        """Sets the acknowledged rows sent; after a failed publish (claimed: every row of the
        batch) gives the rest back at once instead of when their lease ends."""
        if claimed:
            await conn.execute(
                "UPDATE audit_outbox SET leaseuntil = NULL,"
                " sentat = CASE WHEN eventid = ANY($1::uuid[]) THEN now() END"
                " WHERE eventid = ANY($2::uuid[])",
                acked,
                claimed,
            )
        elif acked:
            await conn.execute(
                "UPDATE audit_outbox SET sentat = now() WHERE eventid = ANY($1::uuid[])", acked
            )

    async def _run(self) -> None:
        await self._db.wait_ready()
        await self._broker.wait_connected()
        delays = Backoff(initial=0.2, maximum=5.0).delays()
        failing = False
        while True:
            try:
                claimed = await self.relay_once()
                await self._purge_sent()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "audit outbox relay cannot publish (%s); retrying", _failure_text(exc)
                    )
                failing = True
                await asyncio.sleep(next(delays))
                continue
            if failing:
                logger.info("audit outbox relay publishing again")
                failing = False
                delays = Backoff(initial=0.2, maximum=5.0).delays()
            if claimed >= self._batch_size:
                continue  # more are waiting
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as it times out, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _purge_sent(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < _PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        async with self._db.connection() as conn:
            await conn.execute(
                f"DELETE FROM audit_outbox WHERE sentat < now() - interval '{_KEEP_SENT}'"
            )

    def notified(self, payload: str) -> bool:
        """A NOTIFY on the outbox's channel: wakes the relay (True) unless the commit was this
        process's own, which committed() has woken it for."""
        if payload == self.notice:
            return False
        self._wakeup.set()
        return True

    async def _listen(self) -> None:
        """Keeps a LISTEN connection open (reconnecting) so commits elsewhere wake the relay."""
        await self._db.wait_ready()
        delays = Backoff(initial=0.5, maximum=10.0).delays()
        while True:
            closed = asyncio.Event()
            try:
                conn = await self._db.connect()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(next(delays))
                continue
            try:
                conn.add_termination_listener(lambda _conn, ended=closed: ended.set())
                await conn.add_listener(NOTIFY_CHANNEL, lambda *n: self.notified(n[3]))
                self._wakeup.set()  # catch up on anything committed while not listening
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(next(delays))
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await conn.close()
