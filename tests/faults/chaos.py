"""Fault injection against the running suite: the faults, the workload, the invariants, the report.

Everything a fault run needs except the settings it runs with lives here, so the same faults and
the same checks can run again against another Stack (TLS, a clustered broker)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import psutil

import nats
from audit.proto import audit_pb2, audit_pb2_grpc
from devtools.processes import ServiceProcess
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.events.audit_event import AUDIT_STREAM, AuditHeader, Subject
from global_utils.events.envelope import decode as decode_envelope
from global_utils.events.envelope import envelope_version, header_block
from global_utils.identity.principal import bearer_metadata
from global_utils.messaging.broker import BrokerAccess
from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from user.proto import user_pb2, user_pb2_grpc

SUITE_APP = "fault-suite"  # application_name of the suite's own PostgreSQL sessions
SEED_EMAIL, SEED_PASSWORD = "duck@mymail.com", "1234"
CALL_TIMEOUT = 3.0  # each workload call's deadline
RECOVERY_BOUND = 30.0  # every service serves again within this after a fault is over
SETTLE_BOUND = 45.0  # the audit history catches up within this
RESOURCE_BOUND = 15.0  # connections and descriptors are back within this
FD_TOLERANCE = 3  # descriptors a process may hold beyond its baseline (timers, a reconnect)
SERVICE_DATABASES = {"user": "appuser", "promotion": "promotion", "audit": "audit"}
# Connections a service may hold besides its pool: the outbox relay's LISTEN session.
EXTRA_CONNECTIONS = {"user": 1, "promotion": 1, "audit": 0}
# Answers that leave a change's outcome unknown to the caller.
UNSURE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
ALLOWED = UNSURE | {"OK"}


class Fault(StrEnum):
    PG_IMMEDIATE_RESTART = "postgres immediate stop + start"
    PG_TERMINATE_BACKENDS = "pg_terminate_backend of services"
    PG_PAUSE = "postgres paused (SIGSTOP/SIGCONT)"
    NATS_KILL = "nats SIGKILL + restart"
    AUDIT_KILL = "audit SIGKILL + restart"
    USER_KILL = "user SIGKILL + restart"


@dataclass
class Stack:
    """PostgreSQL, NATS and the three service processes of one fault run."""

    pg: EmbeddedPostgres
    nats: EmbeddedNats
    envs: dict[str, dict[str, str]]
    log_dir: Path
    pool_max: int
    # The provisioning credential, for reading the stream (what travelled) at the end.
    nats_admin: BrokerAccess | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    launches: Counter[str] = field(default_factory=Counter)

    def address(self, service: str) -> str:
        return self.envs[service]["MICRO_SERVER_ADDRESS"]

    def launch(self, service: str) -> ServiceProcess:
        self.launches[service] += 1
        process = ServiceProcess(
            f"{service}.server",
            self.envs[service],
            self.log_dir / f"{service}-{self.launches[service]}.log",
        )
        self.processes[service] = process
        return process

    def kill(self, service: str) -> None:
        process = self.processes[service]
        process.proc.kill()
        process.proc.wait()
        process.terminate()  # closes its log

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate(timeout=10)

    def errors(self, limit: int = 3) -> str:
        """The last tracebacks the services logged (what an INTERNAL answer hides)."""
        found: list[str] = []
        for path in sorted(self.log_dir.glob("*.log")):
            for block in path.read_text(errors="replace").split("Traceback")[1:]:
                found.append(f"{path.name}: Traceback{block[:2500]}")
        return "\n".join(found[-limit:])

    def pg_pids(self) -> list[int]:
        assert self.pg.pid is not None
        postmaster = psutil.Process(self.pg.pid)
        return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]


# The faults. Each runs in a thread, ends with the fault over (what it stopped runs again),
# and draws every choice from rng so a seed replays the same schedule.


def _postgres_immediate_restart(stack: Stack, rng: random.Random) -> None:
    assert stack.pg.pid is not None
    os.kill(stack.pg.pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, sessions cut
    stack.pg.stop()  # reaps it
    time.sleep(rng.uniform(0.3, 1.5))  # down for a while (part of the fault, not a wait)
    stack.pg.start()


def _postgres_terminate_backends(stack: Stack, rng: random.Random) -> None:
    import psycopg

    # A burst: every session the services hold, again and again for a while, so that some
    # die in the middle of a transaction or of its COMMIT.
    ends = time.monotonic() + rng.uniform(0.3, 1.0)
    with psycopg.connect(stack.pg.dsn(), application_name=SUITE_APP, autocommit=True) as conn:
        while time.monotonic() < ends:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND application_name <> %s"
                " AND datname = ANY(%s)",
                (SUITE_APP, list(SERVICE_DATABASES.values())),
            )
            time.sleep(rng.uniform(0.005, 0.05))  # the burst's rhythm


def _postgres_pause(stack: Stack, rng: random.Random) -> None:
    pids = stack.pg_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        # Longer than a call's deadline and the pool's acquire timeout: both trip.
        time.sleep(rng.uniform(CALL_TIMEOUT + 0.5, 6.0))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _nats_kill(stack: Stack, rng: random.Random) -> None:
    assert stack.nats.pid is not None
    os.kill(stack.nats.pid, signal.SIGKILL)
    stack.nats.stop()  # reaps it
    time.sleep(rng.uniform(0.2, 1.5))
    stack.nats.start()


def _service_kill(service: str) -> Callable[[Stack, random.Random], None]:
    def kill_and_restart(stack: Stack, rng: random.Random) -> None:
        stack.kill(service)
        time.sleep(rng.uniform(0.2, 1.0))
        stack.launch(service)

    return kill_and_restart


INJECT: dict[Fault, Callable[[Stack, random.Random], None]] = {
    Fault.PG_IMMEDIATE_RESTART: _postgres_immediate_restart,
    Fault.PG_TERMINATE_BACKENDS: _postgres_terminate_backends,
    Fault.PG_PAUSE: _postgres_pause,
    Fault.NATS_KILL: _nats_kill,
    Fault.AUDIT_KILL: _service_kill("audit"),
    Fault.USER_KILL: _service_kill("user"),
}


def schedule(rng: random.Random, rounds: int) -> list[tuple[Fault, float]]:
    """Each round's fault (every kind equally often, in shuffled cycles) and its instant."""
    kinds: list[Fault] = []
    while len(kinds) < rounds:
        cycle = list(Fault)
        rng.shuffle(cycle)
        kinds += cycle
    return [(kind, rng.uniform(0.3, 1.5)) for kind in kinds[:rounds]]


# The workload: changes whose every answer is recorded, on objects each owned by one worker.


@dataclass
class Op:
    action: str  # insert / update / delete
    marker: str  # the value it writes (lastname or description); the state for a delete
    products: int = 0
    code: str = ""


@dataclass
class Tracked:
    """One user or promotion and every change asked of it, in order. After an answer that
    leaves the outcome unknown the object gets no further change (its state stays decidable)."""

    object_name: str  # user / promotion
    key: str  # email / name
    record: Any = None
    ops: list[Op] = field(default_factory=list)

    @property
    def retired(self) -> bool:
        return any(op.code != "OK" for op in self.ops)

    @property
    def live(self) -> bool:
        return not self.retired and bool(self.ops) and self.ops[-1].action != "delete"


@dataclass
class Ledger:
    seed: int
    objects: list[Tracked] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    logins: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    sequence: int = 0

    def marker(self) -> str:
        self.sequence += 1
        return f"m{self.sequence}"


def _code(exc: BaseException | None) -> str:
    if exc is None:
        return "OK"
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return f"client error {type(exc).__name__}"


class Workload:
    """A steady, bounded stream of changes and logins from a few workers."""

    def __init__(
        self, stack: Stack, ledger: Ledger, token: str, *, workers: int = 8, pace: float = 0.02
    ) -> None:
        self._stack = stack
        self._ledger = ledger
        self._metadata = bearer_metadata(token)
        self._workers = workers
        self._pace = pace
        self._owned: list[list[Tracked]] = [[] for _ in range(workers)]
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = grpc.aio.insecure_channel(self._stack.address(service))
        return self._channels[service]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def run(self, until: Callable[[], bool], rng: random.Random) -> None:
        seeds = [rng.getrandbits(32) for _ in range(self._workers)]
        await asyncio.gather(
            *(self._worker(i, until, random.Random(seeds[i])) for i in range(self._workers))
        )

    async def _worker(self, index: int, until: Callable[[], bool], rng: random.Random) -> None:
        while not until():
            live = [t for t in self._owned[index] if t.live]
            users = [t for t in live if t.object_name == "user"]
            promotions = [t for t in live if t.object_name == "promotion"]
            choice = rng.choices(
                ["user+", "user~", "user-", "promotion+", "promotion~", "login"],
                weights=[3, 3 if users else 0, 1 if users else 0, 2, 3 if promotions else 0, 2],
            )[0]
            if choice == "user+":
                await self._create_user(index)
            elif choice == "user~":
                await self._update_user(rng.choice(users))
            elif choice == "user-":
                await self._delete_user(rng.choice(users))
            elif choice == "promotion+":
                await self._create_promotion(index, rng)
            elif choice == "promotion~":
                await self._update_promotion(rng.choice(promotions), rng)
            else:
                await self._login(rng)
            await asyncio.sleep(self._pace)  # pacing: the stream stays steady and bounded

    async def _call(self, tracked: Tracked, op: Op, call: Awaitable[Any]) -> Any:
        tracked.ops.append(op)
        reply, error = None, None
        try:
            reply = await call
        except Exception as exc:
            error = exc
        op.code = _code(error)
        self._ledger.codes[op.code] += 1
        if op.code not in ALLOWED:
            details = error.details() if isinstance(error, grpc.aio.AioRpcError) else repr(error)
            self._ledger.unexpected.append(
                f"{tracked.object_name} {tracked.key} {op.action} {op.marker}: {op.code} {details}"
            )
        return reply

    def _user_stub(self) -> user_pb2_grpc.UserSrvStub:
        return user_pb2_grpc.UserSrvStub(self.channel("user"))

    def _promotion_stub(self) -> promotion_pb2_grpc.PromotionSrvStub:
        return promotion_pb2_grpc.PromotionSrvStub(self.channel("promotion"))

    async def _create_user(self, index: int) -> None:
        marker = self._ledger.marker()
        now = datetime.now(UTC).replace(microsecond=0)
        record = user_pb2.User(
            firstname="Fault",
            lastname=marker,
            email=f"fault-{self._ledger.seed}-{marker}@example.com",
            pwd="fault-pw-1",
            company="FaultCo",
            active=False,
            valid_from=to_timestamp(now - timedelta(days=1)),
            valid_thru=to_timestamp(now + timedelta(days=30)),
        )
        tracked = Tracked("user", record.email)
        self._ledger.objects.append(tracked)
        self._owned[index].append(tracked)
        call = self._user_stub().CreateUser(record, metadata=self._metadata, timeout=CALL_TIMEOUT)
        reply = await self._call(tracked, Op("insert", marker), call)
        if reply is not None:
            tracked.record = reply.user

    async def _update_user(self, tracked: Tracked) -> None:
        marker = self._ledger.marker()
        record = user_pb2.User()
        record.CopyFrom(tracked.record)
        record.lastname = marker
        call = self._user_stub().UpdateUser(record, metadata=self._metadata, timeout=CALL_TIMEOUT)
        await self._call(tracked, Op("update", marker), call)

    async def _delete_user(self, tracked: Tracked) -> None:
        call = self._user_stub().DeleteUser(
            user_pb2.SearchId(id=tracked.record.id), metadata=self._metadata, timeout=CALL_TIMEOUT
        )
        await self._call(tracked, Op("delete", tracked.ops[-1].marker), call)

    async def _create_promotion(self, index: int, rng: random.Random) -> None:
        marker = self._ledger.marker()
        now = datetime.now(UTC).replace(microsecond=0)
        products = rng.randint(1, 3)
        record = promotion_pb2.Promotion(
            name=f"fault-{self._ledger.seed}-{marker}",
            description=marker,
            customer_id=3308341401806443521,
            active=True,
            valid_from=to_timestamp(now - timedelta(days=1)),
            valid_thru=to_timestamp(now + timedelta(days=30)),
            product=_products(products, marker),
        )
        tracked = Tracked("promotion", record.name)
        self._ledger.objects.append(tracked)
        self._owned[index].append(tracked)
        call = self._promotion_stub().CreatePromotion(
            record, metadata=self._metadata, timeout=CALL_TIMEOUT
        )
        reply = await self._call(tracked, Op("insert", marker, products), call)
        if reply is not None:
            tracked.record = reply.promotion

    async def _update_promotion(self, tracked: Tracked, rng: random.Random) -> None:
        marker = self._ledger.marker()
        products = rng.randint(1, 3)
        record = promotion_pb2.Promotion()
        record.CopyFrom(tracked.record)
        record.description = marker
        del record.product[:]
        record.product.extend(_products(products, marker))
        call = self._promotion_stub().UpdatePromotion(
            record, metadata=self._metadata, timeout=CALL_TIMEOUT
        )
        await self._call(tracked, Op("update", marker, products), call)

    async def _login(self, rng: random.Random) -> None:
        wrong = rng.random() < 0.3
        password = "not-the-password" if wrong else SEED_PASSWORD
        try:
            await self._user_stub().Auth(
                user_pb2.User(email=SEED_EMAIL, pwd=password), timeout=CALL_TIMEOUT
            )
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        self._ledger.logins[code] += 1
        self._ledger.codes[code] += 1
        expected = UNSURE | ({"UNAUTHENTICATED"} if wrong else {"OK"})
        if code not in expected:
            self._ledger.unexpected.append(f"login (wrong password: {wrong}): {code}")


def _products(count: int, marker: str) -> list[promotion_pb2.Product]:
    return [
        promotion_pb2.Product(
            id=2001 + i,
            upc_code=f"0360002914{50 + i}",
            discount=[promotion_pb2.Discount(value=5 + i, type=1, description=f"{marker}-{i}")],
        )
        for i in range(count)
    ]


# Serving again: one call per service that needs its database (and, for promotion and audit,
# the user service to accept the token).


async def serving(workload: Workload, token: str) -> dict[str, bool]:
    metadata = bearer_metadata(token)
    calls = {
        "user": user_pb2_grpc.UserSrvStub(workload.channel("user")).GetUsers(
            user_pb2.SearchParams(email=SEED_EMAIL), metadata=metadata, timeout=1
        ),
        "promotion": promotion_pb2_grpc.PromotionSrvStub(
            workload.channel("promotion")
        ).GetPromotions(promotion_pb2.SearchParams(page_size=1), metadata=metadata, timeout=1),
        "audit": audit_pb2_grpc.AuditSrvStub(workload.channel("audit")).GetAuditRecords(
            audit_pb2.SearchParams(object_name="user", page_size=1), metadata=metadata, timeout=1
        ),
    }
    names = list(calls)
    results = await asyncio.gather(*calls.values(), return_exceptions=True)
    return {name: not isinstance(r, BaseException) for name, r in zip(names, results, strict=True)}


async def time_to_serve(workload: Workload, token: str, since: float) -> float:
    """Seconds from since until every service has answered once; AssertionError past the
    bound."""
    pending = set(SERVICE_DATABASES)
    while pending:
        answered = await serving(workload, token)
        pending -= {name for name, ok in answered.items() if ok}
        if pending and time.monotonic() - since > RECOVERY_BOUND:
            raise AssertionError(
                f"{sorted(pending)} not serving {RECOVERY_BOUND:.0f} s after the fault"
            )
        if pending:
            await asyncio.sleep(0.1)
    return time.monotonic() - since


# The invariants.


async def _fetch(
    pg: EmbeddedPostgres, database: str, sql: str, *args: object
) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(
        pg.dsn(database), server_settings={"application_name": SUITE_APP}, timeout=5
    )
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _applied(tracked: Tracked, state: tuple[str, int] | None) -> list[Op]:
    """The changes in effect: every OK one, and the last (unsure) one if the database shows
    it applied."""
    applied = [op for op in tracked.ops if op.code == "OK"]
    last = tracked.ops[-1]
    if last.code in UNSURE:
        took = {
            "insert": state is not None,
            "update": state is not None and state[0] == last.marker,
            "delete": state is None and bool(applied),
        }[last.action]
        if took:
            applied.append(last)
    return applied


def _audit_key(op: Op) -> tuple[str, str]:
    return (op.action, op.marker)


async def check_changes(pg: EmbeddedPostgres, ledger: Ledger) -> tuple[list[str], bool]:
    """Problems found (each an invariant broken) and whether audit events are still missing
    (the history may yet catch up)."""
    users = await _fetch(
        pg, "appuser", "SELECT id, email, lastname FROM appuser WHERE email LIKE 'fault-%'"
    )
    promotions = await _fetch(
        pg,
        "promotion",
        "SELECT p.id, p.name, p.description, (SELECT count(*) FROM promotion_product pp"
        " WHERE pp.promotionid = p.id) AS products FROM promotion p WHERE name LIKE 'fault-%'",
    )
    rows = await _fetch(
        pg,
        "audit",
        "SELECT objectname, objectid, actiontype, objectdetail FROM audit"
        # (the services' own events; the seed rows came from goTemp's)
        " WHERE service IN ('user', 'promotion') AND objectname IN ('user', 'promotion')",
    )
    state: dict[tuple[str, str], tuple[str, int, int]] = {}
    for r in users:
        state[("user", r["email"])] = (r["lastname"], 0, r["id"])
    for r in promotions:
        state[("promotion", r["name"])] = (r["description"], r["products"], r["id"])
    audited: dict[tuple[str, str], Counter[tuple[str, str]]] = {}
    for r in rows:
        if r["objectname"] == "user":
            record: Any = user_pb2.User.FromString(r["objectdetail"])
            key, marker = record.email, record.lastname
        else:
            record = promotion_pb2.Promotion.FromString(r["objectdetail"])
            key, marker = record.name, record.description
        audited.setdefault((r["objectname"], key), Counter())[(r["actiontype"], marker)] += 1

    problems: list[str] = []
    missing = False
    known = {(t.object_name, t.key) for t in ledger.objects}
    for t in ledger.objects:
        now = state.get((t.object_name, t.key))
        applied = _applied(t, (now[0], now[1]) if now else None)
        expected = Counter(_audit_key(op) for op in applied)
        name = f"{t.object_name} {t.key}"
        last = applied[-1] if applied else None
        if last is None or last.action == "delete":
            if now is not None:
                problems.append(f"{name}: in the database, but no change that made it holds")
        elif now is None:
            problems.append(f"{name}: {last.action} {last.marker} answered/applied, row missing")
        elif now[0] != last.marker:
            problems.append(
                f"{name}: holds {now[0]}, the last change in effect wrote {last.marker}"
            )
        elif t.object_name == "promotion" and now[1] != last.products:
            problems.append(f"{name}: {now[1]} products, {last.marker} wrote {last.products}")
        got = audited.get((t.object_name, t.key), Counter())
        for audit_key, count in got.items():
            if count > expected[audit_key]:
                problems.append(
                    f"{name}: {count} audit rows for {audit_key}, {expected[audit_key]} expected"
                )
        if any(got[k] < n for k, n in expected.items()):
            missing = True
    for key in set(audited) - known:
        problems.append(f"audit rows for {key}, which the workload never changed")
    return problems, missing


async def settled_changes(pg: EmbeddedPostgres, ledger: Ledger) -> list[str]:
    """The change invariants once the audit history has caught up (or the bound passed)."""
    deadline = time.monotonic() + SETTLE_BOUND
    while True:
        try:
            problems, missing = await check_changes(pg, ledger)
        except (OSError, asyncpg.PostgresError) as exc:  # the database restarting
            problems, missing = [f"database not reachable: {exc!r}"], True
        if problems and not missing:
            return problems
        if not missing:
            return []
        if time.monotonic() > deadline:
            return problems or ["audit events still missing after the bound"]
        await asyncio.sleep(0.25)


# What travelled: every event of the AUDIT stream, alone or in an envelope, stored once.


@dataclass
class Travelled:
    """The AUDIT stream's messages as the relays sent them, counted by the events they hold."""

    messages: int = 0
    envelopes: int = 0
    events_in_envelopes: int = 0
    # each event id, as often as it travelled (more than once: re-sent after a crash)
    event_ids: Counter[str] = field(default_factory=Counter)


async def travelled(stack: Stack) -> Travelled:
    """Reads the whole AUDIT stream (an ordered consumer of the admin's)."""
    assert stack.nats_admin is not None, "the stack has no NATS admin credential"
    client = await nats.connect(
        f"nats://{stack.nats.address}", allow_reconnect=False, **stack.nats_admin.connect_options()
    )
    seen = Travelled()
    try:
        js = client.jetstream()
        last = (await js.stream_info(AUDIT_STREAM)).state.last_seq
        subscription = await js.subscribe(
            Subject.AUDIT.value, stream=AUDIT_STREAM, ordered_consumer=True
        )
        sequence = 0
        while sequence < last:
            message = await subscription.next_msg(timeout=10)
            sequence = message.metadata.sequence.stream
            seen.messages += 1
            headers = message.headers or {}
            if envelope_version(header_block(headers)) is None:
                seen.event_ids[headers.get(AuditHeader.EVENT_ID.value, "")] += 1
                continue
            events = decode_envelope(message.data)
            seen.envelopes += 1
            seen.events_in_envelopes += len(events)
            for block, _ in events:
                seen.event_ids[_header_value(block, AuditHeader.EVENT_ID.value)] += 1
        await subscription.unsubscribe()
    finally:
        await client.close()
    return seen


def _header_value(block: bytes, name: str) -> str:
    for line in block.decode().split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""


async def stored_once(pg: EmbeddedPostgres, seen: Travelled) -> list[str]:
    """Every event that travelled (alone, in an envelope, re-sent) is one audit row, and
    envelopes carried some (else the run proved nothing of them)."""
    rows = await _fetch(
        pg,
        "audit",
        "SELECT eventid::text AS eventid, count(*) AS n FROM audit"
        " WHERE eventid = ANY($1::uuid[]) GROUP BY eventid",
        list(seen.event_ids),
    )
    stored = {r["eventid"]: r["n"] for r in rows}
    problems = [
        f"event {event_id} travelled {times}x, stored {stored.get(event_id, 0)}x"
        for event_id, times in seen.event_ids.items()
        if stored.get(event_id, 0) != 1
    ]
    if not seen.envelopes:
        problems.append(f"no envelope among the {seen.messages} messages of the stream")
    return problems[:20]


# Resources: PostgreSQL sessions and file descriptors of each service process.


def _pg_sockets(process: psutil.Process, pg_port: int) -> int:
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == pg_port and c.status == psutil.CONN_ESTABLISHED
    )


@dataclass
class Resources:
    """Per service: sessions PostgreSQL holds for it, sockets it holds to PostgreSQL, and its
    other descriptors."""

    sessions: dict[str, int]
    sockets: dict[str, int]
    other_fds: dict[str, int]
    pids: dict[str, int]
    nats_connections: int


async def measure(stack: Stack) -> Resources:
    rows = await _fetch(
        stack.pg,
        "postgres",
        "SELECT datname, count(*) AS n FROM pg_stat_activity"
        f" WHERE backend_type = 'client backend' AND application_name <> '{SUITE_APP}'"
        " GROUP BY datname",
    )
    by_database = {r["datname"]: r["n"] for r in rows}
    sessions, sockets, other, pids = {}, {}, {}, {}
    for service, database in SERVICE_DATABASES.items():
        process = psutil.Process(stack.processes[service].proc.pid)
        pids[service] = process.pid
        sessions[service] = by_database.get(database, 0)
        sockets[service] = _pg_sockets(process, stack.pg.port)
        other[service] = process.num_fds() - sockets[service]
    return Resources(sessions, sockets, other, pids, _nats_connections(stack.nats))


def _nats_connections(nats: EmbeddedNats) -> int:
    url = f"http://127.0.0.1:{nats.monitor_port}/connz"
    with urllib.request.urlopen(url, timeout=2) as reply:  # loopback monitor port
        return int(json.load(reply)["num_connections"])


def resource_problems(now: Resources, baseline: Resources, pool_max: int) -> list[str]:
    problems = []
    for service in SERVICE_DATABASES:
        ceiling = pool_max + EXTRA_CONNECTIONS[service]
        if now.sessions[service] != now.sockets[service]:
            problems.append(
                f"{service}: PostgreSQL holds {now.sessions[service]} sessions, the process"
                f" {now.sockets[service]} sockets"
            )
        if now.sessions[service] > ceiling:
            problems.append(f"{service}: {now.sessions[service]} sessions, at most {ceiling}")
        if (
            now.pids[service] == baseline.pids[service]
            and now.other_fds[service] > baseline.other_fds[service] + FD_TOLERANCE
        ):
            problems.append(
                f"{service}: {now.other_fds[service]} descriptors besides PostgreSQL sockets,"
                f" baseline {baseline.other_fds[service]}"
            )
    if now.nats_connections != len(SERVICE_DATABASES):
        problems.append(f"NATS has {now.nats_connections} client connections, 3 expected")
    return problems


async def settled_resources(stack: Stack, baseline: Resources) -> tuple[list[str], Resources]:
    deadline = time.monotonic() + RESOURCE_BOUND
    while True:
        try:
            now = await measure(stack)
            problems = resource_problems(now, baseline, stack.pool_max)
        except (OSError, asyncpg.PostgresError, psutil.Error) as exc:
            problems, now = [f"cannot measure: {exc!r}"], baseline
        if not problems or time.monotonic() > deadline:
            return problems, now
        await asyncio.sleep(0.25)


def rebase(baseline: Resources, now: Resources) -> Resources:
    """A restarted process gets its own baseline (its first settled measure)."""
    other = dict(baseline.other_fds)
    pids = dict(baseline.pids)
    for service, pid in now.pids.items():
        if pid != baseline.pids[service]:
            other[service], pids[service] = now.other_fds[service], pid
    return Resources(baseline.sessions, baseline.sockets, other, pids, baseline.nats_connections)


# The report.


def report(
    seed: int,
    injected: Counter[Fault],
    recoveries: dict[Fault, list[float]],
    ledger: Ledger,
    seconds: float,
    rounds: int,
    seen: Travelled | None = None,
) -> str:
    lines = [
        f"fault suite: seed {seed} (FAULT_SEED={seed} replays the schedule), {rounds} rounds,"
        f" {seconds:.0f} s",
        "",
        "| fault | injected | recovery p50 s | recovery max s |",
        "|---|---|---|---|",
    ]
    for fault in Fault:
        times = recoveries.get(fault, [])
        p50 = f"{statistics.median(times):.2f}" if times else "-"
        worst = f"{max(times):.2f}" if times else "-"
        lines.append(f"| {fault.value} | {injected[fault]} | {p50} | {worst} |")
    changes = sum(len(t.ops) for t in ledger.objects)
    logins = sum(ledger.logins.values())
    lines += [
        "",
        f"calls: {changes} changes on {len(ledger.objects)} objects, {logins} logins",
        "",
        "| answer | calls |",
        "|---|---|",
    ]
    lines += [f"| {code} | {n} |" for code, n in ledger.codes.most_common()]
    if seen is not None:
        resent = sum(1 for times in seen.event_ids.values() if times > 1)
        lines += [
            "",
            f"stream: {len(seen.event_ids)} events in {seen.messages} messages;"
            f" {seen.events_in_envelopes} of them in {seen.envelopes} envelopes;"
            f" {resent} events travelled more than once (re-sent), each stored once",
        ]
    return "\n".join(lines)


def new_seed() -> int:
    given = os.environ.get("FAULT_SEED", "")
    return int(given) if given else uuid.uuid4().int % 1_000_000_000


def wait_ready(process: ServiceProcess, service: str, timeout: float = 30) -> None:
    process.wait_for_line(f"{service} ready", timeout)
