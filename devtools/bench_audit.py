"""Audit ingest benchmark (`make bench-audit`): the audit service as its own process on
embedded PostgreSQL and NATS, fed by the real outbox relays of the user and promotion services
(their processes, with their keys and NATS users), measured against a bulk COPY into the same
table in the same run.

1. COPY ceiling: the best of three COPYs of N audit rows (rows/s), each followed by a drain (2).
2. Relayed backlog, three times (the run of median rate reported, every run's rate printed): N
   events written into the user and promotion services' outboxes by the services' outbox
   emitter in units of work (signed with each service's key), published by the services' own
   relays while the audit consumer is paused; then the consumer resumes and the backlog is
   drained (events/s, the headline `ingest_events_per_s`). CPU per event of each relay (its
   service process), NATS and PostgreSQL while publishing; of audit, NATS and PostgreSQL while
   draining.
3. Relayed burst: N more events committed into both outboxes at once with the consumer running:
   both relays publish while audit consumes (events/s from the commit to the last row stored,
   CPU per event of every process).
4. Lag: changes committed through the user service's outbox at a steady rate, relayed by the
   service's relay; for each, change committed -> audit row stored (p50/p99).
5. Per-event cost of event authentication and the hash chain, in this process: signing (the
   producer), parsing with the MAC input built, verifying the MAC, hashing into the chain.

Before this bench published through the relays, `ingest_events_per_s` was a burst of hand-made
protocol frames in the signer's header order, a path relayed events took only from the relays'
header-order fix (cd0bc6b) on; `make bench-compare` against a revision from before this bench
compares that with the relayed backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from nats.js.api import RawStreamMsg

import nats
from audit.server.events.authenticity import EventAuthenticator, ProducerKey
from audit.server.events.chain import GENESIS, chained
from audit.server.events.wire import COLUMNS, header_block, parse_delivery, parse_header_block
from devtools.databases import provision_databases, runtime_dsn, runtime_password
from devtools.dev_secrets import (
    NatsKeys,
    development_keys,
    make_nats_keys,
)
from devtools.nats_stack import start_nats
from devtools.processes import ServiceProcess
from devtools.run import plan, start_services, stop_all
from devtools.stack import (
    REPO_ROOT,
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
)
from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import (
    AUDIT_CONSUMER,
    AUDIT_STREAM,
    ActionType,
    AuditEvent,
    AuditHeader,
    Subject,
)
from global_utils.events.envelope import decode as decode_envelope
from global_utils.events.signing import EventSigner
from global_utils.messaging.broker import Broker
from global_utils.messaging.outbox import OutboxAuditEmitter, OutboxRelay
from promotion.proto import promotion_pb2
from user.proto import user_pb2

PAYLOAD = user_pb2.User(
    id=1, firstname="Bench", lastname="Mark", email="b@m.co"
).SerializeToString()


def make_event(tag: str) -> AuditEvent:
    return AuditEvent(
        # A producer the audit service knows (it checks the key's service against this).
        service="user",
        action_func="AfterCreateUser",
        action_type=ActionType.INSERT,
        object_name="bench",
        object_id=tag,
        performed_by="1",
        payload_type="user.User",
        payload=PAYLOAD,
    )


async def copy_ceiling(
    dsn: str,
    n: int,
    postgres_pid: int | None = None,
    events: Sequence[AuditEvent] | None = None,
) -> dict[str, float]:
    """Rows/s of one bulk COPY of n audit rows (events' rows when given), and the CPU per row
    (µs) of the copying client and of PostgreSQL."""
    rows = [
        (
            uuid.uuid4(),
            e.action_time,
            "Audit",
            e.service,
            e.action_func,
            e.action_type.value,
            "bench-copy",
            e.object_id,
            e.performed_by,
            e.payload,
            e.payload_type,
            None,  # traceid: an untraced event
        )
        for e in (events if events is not None else [make_event(str(i)) for i in range(n)])
    ]
    conn = await asyncpg.connect(dsn)
    try:
        meter = CpuMeter({"postgres": postgres_pid, "client": os.getpid()})
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "audit",
            records=rows,
            columns=COLUMNS,
        )
        rate = len(rows) / (time.perf_counter() - started)
        cpu = meter.used()
    finally:
        await conn.close()
    return {
        "rate": rate,
        **{f"{k}_cpu_us_per_row": v / len(rows) * 1e6 for k, v in cpu.items()},
    }


async def best_copy(
    dsn: str, n: int, producers: Sequence[str], postgres_pid: int | None, tries: int = 3
) -> dict[str, float]:
    """The best of tries COPYs of n rows like the relayed events (the producers' kinds, in
    equal shares), each a fresh set of event ids: its rows/s and CPU per row."""
    runs = []
    for _ in range(tries):
        events = [
            producer_event(name, "bench-copy", str(i))
            for name, share in zip(producers, split(n, producers), strict=True)
            for i in range(share)
        ]
        runs.append(await copy_ceiling(dsn, n, postgres_pid, events))
    return max(runs, key=lambda run: run["rate"])


async def count(dsn: str, object_name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM audit WHERE objectname = $1", object_name)
        )
    finally:
        await conn.close()


async def wait_count(dsn: str, object_name: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while (got := await count(dsn, object_name)) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {got} of {n} rows stored")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def development_signer(service: str = "user") -> EventSigner:
    """service's development key (secrets/dev/), which `make run`'s audit knows."""
    keys = development_keys()
    return EventSigner(keys.key_id(service), keys.key(service).encode())


def per_event_costs(signer: EventSigner, key: bytes, n: int) -> dict[str, float]:
    """µs per event of signing, parsing (with the MAC input), verifying and chaining."""
    events = [make_event(str(i)) for i in range(n)]
    headers = [e.headers() for e in events]
    started = time.perf_counter()
    signed = [signer.sign(h, e.payload) for h, e in zip(headers, events, strict=True)]
    sign = time.perf_counter() - started
    blocks = [header_block(h) for h in signed]
    started = time.perf_counter()
    parsed = [parse_delivery(b, e.payload) for b, e in zip(blocks, events, strict=True)]
    parse = time.perf_counter() - started
    check = EventAuthenticator({signer.key_id: ProducerKey("user", key)}).check
    started = time.perf_counter()
    refused = [r for event, seal in parsed if (r := check(event, seal)) is not None]
    verify = time.perf_counter() - started
    assert not refused, refused[:1]
    started = time.perf_counter()
    chained([event for event, _ in parsed], 1, 0, GENESIS, datetime.now(UTC))
    chain = time.perf_counter() - started
    return {
        "sign_us_per_event": sign / n * 1e6,
        "parse_us_per_event": parse / n * 1e6,
        "verify_us_per_event": verify / n * 1e6,
        "chain_hash_us_per_event": chain / n * 1e6,
    }


PRODUCERS = ("user", "promotion")
SERVICES = (*PRODUCERS, "audit")
PROMOTION = promotion_pb2.Promotion(
    id=1,
    name="Bench promo",
    customer_id=3308341401806443521,
    active=True,
    product=[
        promotion_pb2.Product(
            id=7001,
            upc_code="036000291452",
            discount=[promotion_pb2.Discount(value=10, description="10% off")],
        )
    ],
).SerializeToString()
# Events per unit of work when a backlog is written: about a relay's batch (it claims 500).
CHANGES_PER_UNIT = 500


def producer_event(service: str, object_name: str, tag: str) -> AuditEvent:
    """An update event of the kind service writes for a change (its payload type and size)."""
    payload, payload_type = (
        (PAYLOAD, "user.User") if service == "user" else (PROMOTION, "promotion.Promotion")
    )
    return AuditEvent(
        service=service,
        action_func="AfterUpdateUser" if service == "user" else "AfterUpdatePromotion",
        action_type=ActionType.UPDATE,
        object_name=object_name,
        object_id=tag,
        performed_by="1",
        payload_type=payload_type,
        payload=payload,
    )


@dataclass(frozen=True)
class Producer:
    """A running producing service: its database (as its runtime role), the signer it uses
    (its key), and its process, whose outbox relay publishes what lands in its outbox."""

    name: str
    dsn: str
    password: str
    signer: EventSigner
    pid: int

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, password=self.password)


@dataclass(frozen=True)
class Relayed:
    """What the relay-driven phases run against."""

    producers: tuple[Producer, ...]
    audit_dsn: str
    audit_pid: int
    nats_address: str
    nats_pid: int | None
    postgres_pid: int | None
    nats_keys: NatsKeys

    def pids(self, *names: str) -> dict[str, int | None]:
        every: dict[str, int | None] = {
            "audit": self.audit_pid,
            "nats": self.nats_pid,
            "postgres": self.postgres_pid,
            **{f"{p.name}_relay": p.pid for p in self.producers},
        }
        return {name: every[name] for name in names}


def split(n: int, among: Sequence[object]) -> list[int]:
    """n events shared out among the producers as evenly as they go."""
    return [n // len(among) + (i < n % len(among)) for i in range(len(among))]


async def write_outbox(
    producer: Producer, object_name: str, n: int, per_unit: int, *, commit_times: list[float]
) -> None:
    """n events of producer written into its outbox by its outbox emitter, per_unit events per
    unit of work (each commit wakes the service's relay); the time each commit starts (the
    events' insert, then COMMIT) goes into commit_times."""
    database = Database(producer.dsn, password=producer.password, min_size=1, max_size=1)
    await database.start()
    await database.wait_ready()
    emitter = OutboxAuditEmitter(producer.signer)  # no relay here: the service's publishes
    try:
        for first in range(0, n, per_unit):
            events = [
                producer_event(producer.name, object_name, f"{producer.name}-{i}")
                for i in range(first, min(n, first + per_unit))
            ]
            async with UnitOfWork(database, emitter) as uow:
                for event in events:
                    uow.emit(event)
                commit_times.append(time.time())
                await uow.commit()
    finally:
        await database.stop()


async def wait_relayed(producers: Sequence[Producer], timeout: float) -> float:
    """Waits until every producer's relay has marked its whole outbox sent; returns when."""
    deadline = time.monotonic() + timeout
    for producer in producers:
        conn = await producer.connect()  # one for all the looks: a login costs PostgreSQL CPU
        try:
            while left := await conn.fetchval(
                "SELECT count(*) FROM audit_outbox WHERE sentat IS NULL"
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{producer.name}'s relay left {left} events unsent")
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
    return time.time()


class AdminNats:
    """The NATS admin's connection (the provisioning credential): pauses and resumes the audit
    service's durable consumer, reads the stream."""

    def __init__(self, address: str, keys: NatsKeys) -> None:
        self._address = address
        self._keys = keys
        self._client: nats.NATS | None = None

    async def __aenter__(self) -> AdminNats:
        self._client = await nats.connect(
            f"nats://{self._address}",
            name="bench-admin",
            allow_reconnect=False,
            **self._keys.access("admin").connect_options(),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def client(self) -> nats.NATS:
        assert self._client is not None, "not connected"
        return self._client

    async def pause_consumer(self, until: datetime | None) -> None:
        """Pauses the audit consumer until then (None: resumes it now)."""
        body = {"pause_until": until.isoformat().replace("+00:00", "Z")} if until else {}
        reply = await self.client.request(
            f"$JS.API.CONSUMER.PAUSE.{AUDIT_STREAM}.{AUDIT_CONSUMER}",
            json.dumps(body).encode(),
            timeout=5,
        )
        answer = json.loads(reply.data)
        if "error" in answer:
            raise RuntimeError(f"NATS refused to pause the audit consumer: {answer['error']}")

    async def last_event_id(self) -> str:
        """The event id of the last event in the stream (the last of an envelope's)."""
        message = await self.client.jetstream().get_last_msg(AUDIT_STREAM, Subject.AUDIT.value)
        return str(event_headers(message)[-1][AuditHeader.EVENT_ID.value])

    async def key_ids(self, samples: int) -> dict[str, list[str]]:
        """The keyId headers of up to samples messages spread over the stream, per service
        header: {service: [keyId, ...]} (each keyId once)."""
        js = self.client.jetstream()
        state = (await js.stream_info(AUDIT_STREAM)).state
        step = max(1, (state.last_seq - state.first_seq + 1) // samples)
        seen: dict[str, list[str]] = {}
        for seq in range(state.first_seq, state.last_seq + 1, step):
            for headers in event_headers(await js.get_msg(AUDIT_STREAM, seq)):
                ids = seen.setdefault(headers.get(AuditHeader.SERVICE.value, ""), [])
                if (key_id := headers.get(AuditHeader.KEY_ID.value, "")) not in ids:
                    ids.append(key_id)
        return seen

    async def messages(self) -> int:
        """The messages in the stream (an envelope counts once)."""
        return int((await self.client.jetstream().stream_info(AUDIT_STREAM)).state.messages)


def event_headers(message: RawStreamMsg) -> list[dict[str, str]]:
    """The headers of each event a stream message holds: an envelope's events', else its own."""
    headers = message.headers or {}
    if AuditHeader.ENVELOPE.value not in headers:
        return [dict(headers)]
    return [parse_header_block(block) for block, _ in decode_envelope(message.data or b"")]


async def wait_stored(audit_dsn: str, event_id: str, timeout: float) -> None:
    """Waits until the event is in the audit table (one index probe per look)."""
    conn = await asyncpg.connect(audit_dsn)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE eventid = $1::uuid)", event_id
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"event {event_id} not stored within {timeout} s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def wait_any_stored(audit_dsn: str, object_name: str, timeout: float) -> None:
    """Waits until a first row of object_name is in the audit table."""
    conn = await asyncpg.connect(audit_dsn)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE objectname = $1)", object_name
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {object_name} row stored within {timeout} s")
            await asyncio.sleep(0.005)
    finally:
        await conn.close()


async def stored_batches(audit_dsn: str, object_name: str) -> tuple[float, float, int]:
    """When the first and the last batch of object_name's rows were stored (their inserts'
    starts, epoch s: a batch's rows share it), and how many rows the first batch held."""
    conn = await asyncpg.connect(audit_dsn)
    try:
        row = await conn.fetchrow(
            "WITH rows AS (SELECT recordedtime FROM audit WHERE objectname = $1)"
            " SELECT extract(epoch FROM min(recordedtime)) AS first,"
            " extract(epoch FROM max(recordedtime)) AS last,"
            " count(*) FILTER (WHERE recordedtime = (SELECT min(recordedtime) FROM rows))"
            " AS in_first FROM rows",
            object_name,
        )
        assert row is not None  # an aggregate always answers one row
        return float(row["first"]), float(row["last"]), int(row["in_first"])
    finally:
        await conn.close()


def relay_cpu_per_event(cpu: Mapping[str, float], shares: Mapping[str, int]) -> dict[str, float]:
    """Each relay's CPU per event it published (its process's CPU over its share)."""
    return {
        f"{name}_cpu_us_per_event": cpu[name] / max(share, 1) * 1e6
        for name, share in shares.items()
    }


def per_event(cpu: Mapping[str, float], n: int, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{name}_cpu_us_per_event": s / n * 1e6 for name, s in cpu.items()}


async def relayed_backlog(
    setup: Relayed, n: int, timeout: float = 300, object_name: str = "bench-backlog"
) -> dict[str, float]:
    """The audit consumer paused, n events written into the producers' outboxes and published
    by their relays; then the consumer resumed and the backlog drained. Returns the drain's
    events/s (from its first batch stored until its last) with the CPU per event of
    audit, NATS and PostgreSQL meanwhile, and the publishing's events/s with the CPU per event
    of each relay, NATS and PostgreSQL (outbox writes included)."""
    producers = setup.producers
    async with AdminNats(setup.nats_address, setup.nats_keys) as admin:
        await admin.pause_consumer(datetime.now(UTC) + timedelta(hours=1))
        try:
            messages_before = await admin.messages()
            relays = [f"{p.name}_relay" for p in producers]
            meter = CpuMeter(setup.pids(*relays, "nats", "postgres"))
            commits: list[float] = []
            await asyncio.gather(
                *(
                    write_outbox(p, object_name, share, CHANGES_PER_UNIT, commit_times=commits)
                    for p, share in zip(producers, split(n, producers), strict=True)
                )
            )
            relayed_at = await wait_relayed(producers, timeout)
            publish_cpu = meter.used()
            last = await admin.last_event_id()
            messages = await admin.messages() - messages_before
        finally:
            # Resumed also when something failed, or the consumer stays paused for an hour.
            await admin.pause_consumer(None)
    # A resumed consumer serves the pull requests it held while paused only when a message
    # arrives (else once they expire, the audit service's after 5 s): one more change, relayed
    # like the rest, starts the drain. The drain is timed from its first stored batch: the
    # rows after that batch over the time from its insert to the last one's.
    await write_outbox(producers[0], "bench-nudge", 1, 1, commit_times=[])
    await wait_any_stored(setup.audit_dsn, object_name, timeout)
    meter = CpuMeter(setup.pids("audit", "nats", "postgres"))
    await wait_stored(setup.audit_dsn, last, timeout)
    drain_cpu = meter.used()
    seen_last = time.time()
    await wait_count(setup.audit_dsn, object_name, n, timeout=timeout)
    first, until, in_first = await stored_batches(setup.audit_dsn, object_name)
    after_first = n - in_first
    # A backlog that fits in the first batch (tiny runs) is timed until the bench saw it all.
    drain = (
        (after_first, until - first) if after_first and until > first else (n, seen_last - first)
    )
    shares = dict(zip(relays, split(n, producers), strict=True))
    return {
        "rate": drain[0] / drain[1],
        **per_event(drain_cpu, drain[0]),
        "publish_events_per_s": n / (relayed_at - min(commits)),
        # how many JetStream messages carried the backlog (envelopes: fewer than events)
        "publish_messages": messages,
        **relay_cpu_per_event(publish_cpu, shares),
        **per_event({k: publish_cpu[k] for k in ("nats", "postgres")}, n, "publish_"),
    }


async def relayed_burst(setup: Relayed, n: int, timeout: float = 300) -> dict[str, float]:
    """n events committed at once into the producers' outboxes (one unit of work each) with
    the audit consumer running: both relays publish while audit consumes. Returns events/s
    from the first commit until the last batch was stored, and the CPU per event of every
    process meanwhile (each relay's per event it published)."""
    object_name = "bench-burst"
    producers = setup.producers
    relays = [f"{p.name}_relay" for p in producers]
    commits: list[float] = []
    meter = CpuMeter(setup.pids("audit", "nats", "postgres", *relays))
    shares = split(n, producers)
    await asyncio.gather(
        *(
            write_outbox(p, object_name, share, max(share, 1), commit_times=commits)
            for p, share in zip(producers, shares, strict=True)
        )
    )
    await wait_relayed(producers, timeout)
    async with AdminNats(setup.nats_address, setup.nats_keys) as admin:
        last = await admin.last_event_id()
    await wait_stored(setup.audit_dsn, last, timeout)
    cpu = meter.used()
    await wait_count(setup.audit_dsn, object_name, n, timeout=timeout)
    first, until, _ = await stored_batches(setup.audit_dsn, object_name)
    return {
        "rate": n / (until - min(commits)),
        "first_batch_ms": (first - min(commits)) * 1000,
        **per_event({k: cpu[k] for k in ("audit", "nats", "postgres")}, n),
        **relay_cpu_per_event(cpu, dict(zip(relays, shares, strict=True))),
    }


async def relay_evidence(setup: Relayed) -> dict[str, object]:
    """That the events went through the relays: per producer its outbox rows sent and unsent,
    and how many of the sent ones the audit table holds; the keyId headers of messages
    sampled over the stream, per service."""
    evidence: dict[str, object] = {}
    audit = await asyncpg.connect(setup.audit_dsn)
    try:
        for producer in setup.producers:
            conn = await producer.connect()
            try:
                sent = [
                    r["eventid"]
                    for r in await conn.fetch(
                        "SELECT eventid FROM audit_outbox WHERE sentat IS NOT NULL"
                    )
                ]
                pending = await conn.fetchval(
                    "SELECT count(*) FROM audit_outbox WHERE sentat IS NULL"
                )
            finally:
                await conn.close()
            stored = await audit.fetchval(
                "SELECT count(*) FROM audit WHERE eventid = ANY($1::uuid[]) AND service = $2",
                sent,
                producer.name,
            )
            evidence[producer.name] = {
                "outbox_sent": len(sent),
                "outbox_unsent": int(pending),
                "sent_and_stored": int(stored),
                "key_id": producer.signer.key_id,
            }
    finally:
        await audit.close()
    async with AdminNats(setup.nats_address, setup.nats_keys) as admin:
        evidence["stream_key_ids"] = await admin.key_ids(samples=50)
    return evidence


class CpuMeter:
    """CPU seconds (user + system) that named processes and their children use from now."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._processes = {
            name: psutil.Process(pid) for name, pid in pids.items() if pid is not None
        }
        self._start = {name: self._seconds(p) for name, p in self._processes.items()}

    def used(self) -> dict[str, float]:
        return {name: self._seconds(p) - self._start[name] for name, p in self._processes.items()}

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        total = 0.0
        for each in [process, *process.children(recursive=True)]:
            try:
                times = each.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total


async def lag_at_rate(
    user_dsn: str,
    audit_dsn: str,
    nats_address: str,
    rate: int,
    seconds: float,
    signer: EventSigner | None = None,
    *,
    nats_keys: NatsKeys,
    own_relay: bool = True,
    user_password: str | None = None,
) -> dict[str, float]:
    """Changes committed at rate for seconds into the user service's outbox (user_dsn), relayed
    by a relay of this process (own_relay) or else by the running user service's; for each,
    change committed (its commit's start) -> audit row stored (its insert's start)."""
    # Connections made before the clock starts (a runtime role's password exchange takes
    # milliseconds); under load a change waits for a free one as long as it takes.
    database = Database(
        user_dsn, password=user_password, min_size=20, max_size=20, acquire_timeout=60
    )
    parts: list[Database | Broker | OutboxRelay] = [database]
    relay = None
    if own_relay:
        broker = Broker(f"nats://{nats_address}", name="bench", access=nats_keys.access("user"))
        relay = OutboxRelay(database, broker)
        parts += [broker, relay]
    emitter = OutboxAuditEmitter(signer or development_signer(), relay)
    for part in parts:
        await part.start()
    await database.wait_ready()
    if own_relay:
        await broker.wait_connected()
    committed: dict[str, float] = {}
    total = int(rate * seconds)
    interval = 1.0 / rate
    started = time.perf_counter()

    async def change(i: int) -> None:
        tag = f"lag-{i}"
        async with UnitOfWork(database, emitter) as uow:
            uow.emit(make_event(tag).model_copy(update={"object_name": "bench-lag"}))
            # From the commit's start: a relay in another process may store the event before
            # this coroutine runs again after COMMIT, which made lags of a loaded machine
            # negative; the commit's own round trip counts instead.
            committed[tag] = time.time()
            await uow.commit()

    tasks = []
    for i in range(total):
        delay = started + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(change(i)))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - started)
    await wait_count(audit_dsn, "bench-lag", total, timeout=120)
    conn = await asyncpg.connect(audit_dsn)
    try:
        rows = await conn.fetch(
            "SELECT objectid, extract(epoch FROM recordedtime) AS stored FROM audit"
            " WHERE objectname = 'bench-lag'"
        )
    finally:
        await conn.close()
    lags = sorted(float(r["stored"]) - committed[r["objectid"]] for r in rows)
    for part in reversed(parts):
        await part.stop()
    return {
        "offered_per_s": rate,
        "achieved_per_s": achieved,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000,
    }


@contextmanager
def running_producers_and_audit(folder: Path) -> Iterator[Relayed]:
    """PostgreSQL and NATS provisioned, and the user, promotion and audit services as `make
    run` starts them (development keys, each its NATS user and runtime database role)."""
    pg = EmbeddedPostgres(folder / "pg").start()
    processes: list[ServiceProcess] = []
    broker: EmbeddedNats | None = None
    try:
        provision_databases(pg)
        nats_keys = make_nats_keys(folder / "nats-keys")
        broker = start_nats(folder / "nats", nats_keys)
        env = {
            "LOG_LEVEL": "WARNING",
            "MDNS_SERVICE_TYPE": f"_gtba-{uuid.uuid4().hex[:8]}._tcp.local.",
        }
        # Ports of their own: never the suite's defaults, which a `make run` may hold.
        os.environ.update({f"{name.upper()}_PORT": str(free_port()) for name in SERVICES})
        services = [s for s in plan(pg, broker, env, nats_keys) if s.name in SERVICES]
        processes = asyncio.run(start_services(services, folder / "logs"))
        pids = {s.name: p.proc.pid for s, p in zip(services, processes, strict=True)}
        yield Relayed(
            producers=tuple(
                Producer(
                    name,
                    runtime_dsn(pg, name),
                    runtime_password(name),
                    development_signer(name),  # the key plan() gives the service
                    pids[name],
                )
                for name in PRODUCERS
            ),
            audit_dsn=pg.dsn("audit"),
            audit_pid=pids["audit"],
            nats_address=broker.address,
            nats_pid=broker.pid,
            postgres_pid=pg.pid,
            nats_keys=nats_keys,
        )
    finally:
        stop_all(processes)
        if broker is not None:
            broker.stop()
        pg.stop()


# One drain swung 0.35-0.50 of COPY between runs of the same tree: the COPYs and the drains
# take turns this many times.
DRAIN_ROUNDS = 3


async def measure_relayed(
    setup: Relayed, n: int, postgres_pid: int | None, rounds: int = DRAIN_ROUNDS
) -> dict[str, Any]:
    """The COPY ceiling, the relayed backlog's drain and the relayed burst, in one run. A COPY
    and a drain take turns `rounds` times: the ceiling is the best COPY, the drain the run of
    median rate (`runs_rate`: every run's)."""
    copies, drains = [], []
    for turn in range(rounds):
        copies.append(await best_copy(setup.audit_dsn, n, PRODUCERS, postgres_pid, tries=1))
        drains.append(await relayed_backlog(setup, n, object_name=f"bench-backlog-{turn}"))
    copy = max(copies, key=lambda run: run["rate"])
    median: dict[str, Any] = sorted(drains, key=lambda run: run["rate"])[len(drains) // 2]
    backlog = {**median, "runs_rate": [round(run["rate"]) for run in drains]}
    burst = await relayed_burst(setup, n)
    return {"copy": copy, "backlog": backlog, "burst": burst}


def relayed_results(measured: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The flat keys bench-audit writes (and bench-compare reads) from measure_relayed's."""
    copy, backlog, burst = measured["copy"], measured["backlog"], measured["burst"]
    return {
        "copy_rows_per_s": round(copy["rate"]),
        "ingest_events_per_s": round(backlog["rate"]),
        "ingest_vs_copy": round(backlog["rate"] / copy["rate"], 3),
        "burst_events_per_s": round(burst["rate"]),
        "burst_vs_copy": round(burst["rate"] / copy["rate"], 3),
        **{k: round(v, 1) for k, v in copy.items() if k != "rate"},
        **{k: round(v, 1) for k, v in backlog.items() if k not in ("rate", "runs_rate")},
        "ingest_runs_events_per_s": backlog["runs_rate"],
        **{f"burst_{k}": round(v, 1) for k, v in burst.items() if k != "rate"},
    }


def main(n: int, rate: int, seconds: float, out: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gotemp-bench-audit-") as tmp:
        folder = Path(tmp)
        keys = development_keys()
        signing_key = keys.key("user").encode()
        costs = per_event_costs(EventSigner(keys.key_id("user"), signing_key), signing_key, n)
        with running_producers_and_audit(folder) as setup:
            measured = asyncio.run(measure_relayed(setup, n, setup.postgres_pid))
            user = setup.producers[0]
            lag = asyncio.run(
                lag_at_rate(
                    user.dsn,
                    setup.audit_dsn,
                    setup.nats_address,
                    rate,
                    seconds,
                    user.signer,
                    nats_keys=setup.nats_keys,
                    own_relay=False,
                    user_password=user.password,
                )
            )
            evidence = asyncio.run(relay_evidence(setup))
    result = {
        "events": n,
        "ingest_source": "relays",
        **relayed_results(measured),
        **{k: round(v, 1) for k, v in lag.items()},
        **{k: round(v, 2) for k, v in costs.items()},
        "relayed": evidence,
        "cpus": os.cpu_count(),
    }
    print_table(result, rate)
    if out is not None:
        write_json(out, result)


def print_table(result: Mapping[str, Any], rate: int) -> None:
    relays = [
        (f"  CPU per event: {p}'s relay (µs)", f"{p}_relay_cpu_us_per_event") for p in PRODUCERS
    ]
    burst_relays = [(label, f"burst_{key}") for label, key in relays]
    print(f"{'measure':<52} {'value':>12}")
    for label, key in (
        (f"bulk COPY ceiling, best of {DRAIN_ROUNDS} (rows/s)", "copy_rows_per_s"),
        ("  CPU per row: copying client (µs)", "client_cpu_us_per_row"),
        ("  CPU per row: PostgreSQL (µs)", "postgres_cpu_us_per_row"),
        ("relays publish the backlog, audit paused (events/s)", "publish_events_per_s"),
        ("  JetStream messages carrying the backlog", "publish_messages"),
        *relays,
        ("  CPU per event: NATS server (µs)", "publish_nats_cpu_us_per_event"),
        (
            "  CPU per event: PostgreSQL, outbox writes too (µs)",
            "publish_postgres_cpu_us_per_event",
        ),
        ("audit drains the backlog, median run (events/s)", "ingest_events_per_s"),
        ("  every run (events/s)", "ingest_runs_events_per_s"),
        ("  CPU per event: audit service (µs)", "audit_cpu_us_per_event"),
        ("  CPU per event: NATS server (µs)", "nats_cpu_us_per_event"),
        ("  CPU per event: PostgreSQL (µs)", "postgres_cpu_us_per_event"),
        ("drain / COPY", "ingest_vs_copy"),
        ("burst: relays publish, audit consumes (events/s)", "burst_events_per_s"),
        ("  CPU per event: audit service (µs)", "burst_audit_cpu_us_per_event"),
        ("  CPU per event: NATS server (µs)", "burst_nats_cpu_us_per_event"),
        ("  CPU per event: PostgreSQL, outbox writes too (µs)", "burst_postgres_cpu_us_per_event"),
        *burst_relays,
        ("burst / COPY", "burst_vs_copy"),
        (f"changes achieved at {rate}/s offered", "achieved_per_s"),
        ("change -> row lag p50 (ms)", "lag_p50_ms"),
        ("change -> row lag p99 (ms)", "lag_p99_ms"),
        ("per event: sign, producer (µs)", "sign_us_per_event"),
        ("per event: parse + MAC input (µs)", "parse_us_per_event"),
        ("per event: verify MAC (µs)", "verify_us_per_event"),
        ("per event: chain hash (µs)", "chain_hash_us_per_event"),
    ):
        value = result[key]
        print(f"{label:<52} {str(value) if isinstance(value, list) else value:>12}")


def write_json(path: Path, data: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)  # as make bench
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "audit-results.json")
    args = parser.parse_args()
    # A TERM (a timeout, kill) unwinds like Ctrl-C, so the servers and services stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main(args.events, args.rate, args.seconds, args.out)
