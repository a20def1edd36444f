"""Authenticated events and tamper evidence: forged, altered and wrong-service events are never
stored, genuine ones exactly once; a row edited or deleted in SQL is named by
VerifyAuditHistory, an untouched history verifies."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from nats.aio.client import Client

from audit.proto import audit_pb2, audit_pb2_grpc
from audit.server import repository as repository_module
from audit.server.events.chain import row_hash_v1
from audit.server.events.wire import ReceivedEvent
from audit.server.ingest.consumer import AuditConsumer
from audit.server.models import ChainBreak
from audit.server.repository import AuditRepository
from devtools.dev_secrets import AuditKeys
from devtools.stack import AUDIT_DATABASE, EmbeddedPostgres
from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.events.signing import EventSigner
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.messaging.outbox import OutboxAuditEmitter
from provision.migrations import VERSIONS
from tests.helpers import eventually
from tests.previous_release import PREVIOUS_TIMESCALE_INIT
from user.proto import user_pb2, user_pb2_grpc

AUDIT_VERSIONS = VERSIONS / "audit"


@pytest.fixture
async def audit_db(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's audit database."""
    conn = await asyncpg.connect(postgres.dsn(AUDIT_DATABASE))
    yield conn
    await conn.close()


def signer(keys: AuditKeys, service: str) -> EventSigner:
    return EventSigner(keys.key_id(service), keys.key(service).encode())


def event(object_name: str, object_id: str, service: str = "user") -> AuditEvent:
    return AuditEvent(
        service=service,
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name=object_name,
        object_id=object_id,
        performed_by="1",
        payload_type="user.User",
        payload=b"\x08\x01",
    )


async def publish(nats_client: Client, headers: dict[str, str], payload: bytes) -> None:
    js = nats_client.jetstream()
    await js.publish("Audit", payload, headers=headers)


def consumer_of(host: ServiceHost) -> AuditConsumer:
    (consumer,) = [c for c in host._started if isinstance(c, AuditConsumer)]
    return consumer


async def test_forged_altered_and_wrong_service_events_are_never_stored(
    audit_host: ServiceHost,
    audit_keys: AuditKeys,
    nats_client: Client,
    audit_db: asyncpg.Connection,
) -> None:
    name = f"integrity-{uuid.uuid4().hex[:8]}"
    user, promotion = signer(audit_keys, "user"), signer(audit_keys, "promotion")
    consumer = consumer_of(audit_host)
    before = dict(consumer.rejected)

    unsigned = event(name, "unsigned")
    altered = event(name, "altered")
    altered_headers = user.sign(altered.headers(), altered.payload)
    wrong = event(name, "wrong-service", service="user")
    stranger = EventSigner("user-9", b"s" * 32)
    unknown = event(name, "unknown-key")
    genuine = event(name, "genuine")
    attacks = [
        (unsigned.headers(), unsigned.payload),
        ({**altered_headers, "performedBy": "666"}, altered.payload),
        (user.sign(altered.headers(), altered.payload), altered.payload + b"\x00"),
        (promotion.sign(wrong.headers(), wrong.payload), wrong.payload),
        (stranger.sign(unknown.headers(), unknown.payload), unknown.payload),
    ]
    for headers, payload in attacks:
        await publish(nats_client, {**headers, "Nats-Msg-Id": uuid.uuid4().hex}, payload)
    genuine_headers = user.sign(genuine.headers(), genuine.payload)
    # The same genuine event twice past JetStream's de-duplication (a relay retry after the
    # window): stored once, the copy acked silently.
    for _ in range(2):
        await publish(
            nats_client, {**genuine_headers, "Nats-Msg-Id": uuid.uuid4().hex}, b"\x08\x01"
        )

    async def all_handled() -> bool:
        rejected = sum(consumer.rejected.values()) - sum(before.values())
        stored = await audit_db.fetchval(
            "SELECT count(*) FROM audit WHERE objectname = $1 AND objectid = 'genuine'", name
        )
        return rejected == len(attacks) and stored == 1

    await eventually(all_handled, timeout=15, what="the attacks rejected and the event stored")
    stored = await audit_db.fetch("SELECT objectid FROM audit WHERE objectname = $1", name)
    assert [r["objectid"] for r in stored] == ["genuine"]
    kinds = {str(kind): consumer.rejected[kind] - before.get(kind, 0) for kind in consumer.rejected}
    assert kinds == {"unauthenticated": 2, "altered": 2, "wrong-service": 1}
    counted = await audit_db.fetch(
        "SELECT kind, count(*) AS n FROM audit_rejects WHERE headers->>'objectName' = $1"
        " GROUP BY kind",
        name,
    )
    assert {r["kind"]: r["n"] for r in counted} == kinds


async def store_events(
    nats_client: Client, keys: AuditKeys, audit_db: asyncpg.Connection, name: str, n: int
) -> list[asyncpg.Record]:
    user = signer(keys, "user")
    for i in range(n):
        each = event(name, str(i))
        await publish(nats_client, user.sign(each.headers(), each.payload), each.payload)

    async def stored() -> bool:
        count = await audit_db.fetchval("SELECT count(*) FROM audit WHERE objectname = $1", name)
        return bool(count == n)

    await eventually(stored, timeout=15, what=f"{n} events stored")
    return await audit_db.fetch(
        "SELECT * FROM audit WHERE objectname = $1 ORDER BY chainid, chainseq", name
    )


async def verify(
    stub: audit_pb2_grpc.AuditSrvStub, auth: tuple[tuple[str, str], ...], since: datetime
) -> audit_pb2.VerifyResult:
    params = audit_pb2.VerifyParams()
    params.from_time.FromDatetime(since)
    params.thru_time.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
    return await stub.VerifyAuditHistory(params, metadata=auth)


async def test_an_untouched_history_verifies_and_an_edited_row_is_named(
    audit_stub: audit_pb2_grpc.AuditSrvStub,
    auth: tuple[tuple[str, str], ...],
    audit_keys: AuditKeys,
    nats_client: Client,
    audit_db: asyncpg.Connection,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    name = f"tamper-{uuid.uuid4().hex[:8]}"
    rows = await store_events(nats_client, audit_keys, audit_db, name, 5)
    assert all(r["chainid"] is not None and len(r["chainhash"]) == 32 for r in rows)
    intact = await verify(audit_stub, auth, since)
    assert intact.intact and intact.rows_checked >= 5 and not intact.reason

    victim = rows[2]
    await audit_db.execute(
        "UPDATE audit SET performedby = 'mallory' WHERE eventid = $1", victim["eventid"]
    )
    try:
        found = await verify(audit_stub, auth, since)
        assert not found.intact
        assert found.first_bad_event_id == str(victim["eventid"])
        assert found.reason == "content or link does not match its hash"
    finally:
        await audit_db.execute(
            "UPDATE audit SET performedby = $2 WHERE eventid = $1",
            victim["eventid"],
            victim["performedby"],
        )
    assert (await verify(audit_stub, auth, since)).intact


async def test_a_deleted_row_breaks_the_link_of_the_next(
    audit_stub: audit_pb2_grpc.AuditSrvStub,
    auth: tuple[tuple[str, str], ...],
    audit_keys: AuditKeys,
    nats_client: Client,
    audit_db: asyncpg.Connection,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    name = f"tamper-{uuid.uuid4().hex[:8]}"
    rows = await store_events(nats_client, audit_keys, audit_db, name, 4)
    # a row with a successor in its chain
    victim, successor = next(
        (a, b)
        for a, b in zip(rows, rows[1:], strict=False)
        if a["chainid"] == b["chainid"] and b["chainseq"] == a["chainseq"] + 1
    )
    await audit_db.execute("DELETE FROM audit WHERE eventid = $1", victim["eventid"])
    try:
        found = await verify(audit_stub, auth, since)
        assert not found.intact
        assert found.first_bad_event_id == str(successor["eventid"])
        assert found.reason.startswith("link broken")
    finally:
        columns = list(victim.keys())
        await audit_db.execute(
            f"INSERT INTO audit ({', '.join(columns)})"
            f" VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            *victim.values(),
        )
    assert (await verify(audit_stub, auth, since)).intact


async def test_verify_is_for_admins_with_a_sane_range(
    audit_stub: audit_pb2_grpc.AuditSrvStub,
    auth: tuple[tuple[str, str], ...],
    user_stub: user_pb2_grpc.UserSrvStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await audit_stub.VerifyAuditHistory(audit_pb2.VerifyParams())
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    member = (await user_stub.Auth(user_pb2.User(email="ant@mymail.com", pwd="1234"))).token
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await audit_stub.VerifyAuditHistory(
            audit_pb2.VerifyParams(), metadata=bearer_metadata(member)
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    params = audit_pb2.VerifyParams()
    params.from_time.FromDatetime(datetime(2030, 1, 1, tzinfo=UTC))
    params.thru_time.FromDatetime(datetime(2029, 1, 1, tzinfo=UTC))
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await audit_stub.VerifyAuditHistory(params, metadata=auth)
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def run_verify_cli(audit_host: ServiceHost, token: str, since: datetime) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "audit.client",
        "verify",
        "--token",
        token,
        "--from",
        since.isoformat(),
        env={**os.environ, "SERVERADDRESS": f"127.0.0.1:{audit_host.port}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_the_verify_command_names_an_edited_row(
    audit_host: ServiceHost,
    duck_token: str,
    audit_keys: AuditKeys,
    nats_client: Client,
    audit_db: asyncpg.Connection,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    name = f"tamper-{uuid.uuid4().hex[:8]}"
    rows = await store_events(nats_client, audit_keys, audit_db, name, 3)
    status, out = await run_verify_cli(audit_host, duck_token, since)
    assert status == 0 and out.startswith("intact: "), out
    victim = rows[1]
    await audit_db.execute(
        "UPDATE audit SET objectdetail = '\\x00'::bytea WHERE eventid = $1", victim["eventid"]
    )
    try:
        status, out = await run_verify_cli(audit_host, duck_token, since)
        assert status == 1 and f"TAMPERED: event {victim['eventid']}" in out, out
    finally:
        await audit_db.execute(
            "UPDATE audit SET objectdetail = $2 WHERE eventid = $1",
            victim["eventid"],
            victim["objectdetail"],
        )


async def test_an_audit_database_of_the_previous_schema_is_upgraded(
    postgres: EmbeddedPostgres,
) -> None:
    # The previous release's schema (01 only, with its seed rows), then the upgrade script,
    # twice: old rows stay as they were (unchained), new ones are chained, the history verifies.
    name = f"audit_upgrade_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn("postgres"))
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(postgres.dsn(name))
    try:
        await conn.execute((PREVIOUS_TIMESCALE_INIT / "01_audit.sql").read_text())
        for _ in range(2):
            await conn.execute((PREVIOUS_TIMESCALE_INIT / "02_audit_chain.sql").read_text())
        # what later migrations add to the rows stored here (the trace id)
        await conn.execute((AUDIT_VERSIONS / "0003_audit_trace_id.sql").read_text())
        rows = [
            ReceivedEvent.from_headers(e.headers(), e.payload)
            for e in (event("upgraded", str(i)) for i in range(3))
        ]
        assert await AuditRepository(conn).insert_events(rows) == 3
        assert await AuditRepository(conn).insert_events(rows[:1]) == 0  # a redelivery
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            check = await AuditRepository(conn).check_history(
                datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(minutes=1)
            )
        assert check.first_break is None
        assert (check.rows_checked, check.rows_unchained) == (6, 3)
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()


async def test_an_event_signed_into_the_outbox_by_the_previous_release_is_stored(
    audit_host: ServiceHost,
    audit_keys: AuditKeys,
    postgres: EmbeddedPostgres,
    audit_db: asyncpg.Connection,
) -> None:
    """An upgrade finds outbox rows (and stream messages) signed with the first release's MAC
    encoding: the relay publishes them as stored and the audit service still accepts them."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    previous = EventSigner(
        audit_keys.key_id("user"), audit_keys.key("user").encode(), mac_version=1
    )
    database = Database(postgres.dsn("appuser"))
    await database.start()
    try:
        await database.wait_ready()
        emitted = event(name, "signed-v1")
        async with UnitOfWork(database, OutboxAuditEmitter(previous)) as uow:
            uow.emit(emitted)
            await uow.commit()
        async with database.connection() as conn:
            headers = json.loads(
                await conn.fetchval(
                    "SELECT headers FROM audit_outbox WHERE eventid = $1", emitted.event_id
                )
            )
    finally:
        await database.stop()
    assert all(c in "0123456789abcdef" for c in headers["mac"])  # the first release's form

    async def stored() -> bool:
        found = await audit_db.fetchval(
            "SELECT count(*) FROM audit WHERE objectname = $1 AND chainid IS NOT NULL", name
        )
        return bool(found == 1)

    # the session's user service relays it (its relay polls and listens)
    await eventually(stored, timeout=15, what="the first release's event stored")


def _chained_v1(
    rows: Sequence[ReceivedEvent], chain_id: int, seq: int, previous: bytes, recorded: datetime
) -> tuple[list[tuple[Any, ...]], int, bytes]:
    """How the first release chained a batch (its row hash, version 1)."""
    records = []
    for row in rows:
        seq += 1
        previous = row_hash_v1(
            previous,
            chain_id,
            seq,
            row.event_id,
            row.action_time,
            row.topic,
            row.service,
            row.action_func,
            row.action_type.value,
            row.object_name,
            row.object_id,
            row.performed_by,
            recorded,
            row.payload,
            row.payload_type,
        )
        records.append((*row, chain_id, seq, previous))
    return records, seq, previous


async def test_rows_chained_by_the_previous_release_verify_beside_new_ones(
    postgres: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain the first release started (version 1 hashes) goes on with version 2 rows after
    the upgrade; the history verifies, and an edit to an old or a new row is named."""
    name = f"audit_chain_v1_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn("postgres"))
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(postgres.dsn(name))
    since = datetime(2000, 1, 1, tzinfo=UTC)

    async def first_break() -> ChainBreak | None:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            check = await AuditRepository(conn).check_history(
                since, datetime.now(UTC) + timedelta(minutes=1)
            )
        # the 3 seed rows of 01_audit.sql are unchained
        assert (check.rows_checked, check.rows_unchained) == (9, 3)
        return check.first_break

    try:
        for script in ("01_audit.sql", "02_audit_chain.sql"):
            await conn.execute((PREVIOUS_TIMESCALE_INIT / script).read_text())
        await conn.execute((AUDIT_VERSIONS / "0003_audit_trace_id.sql").read_text())
        rows = [
            ReceivedEvent.from_headers(e.headers(), e.payload)
            for e in (event("chained", str(i)) for i in range(6))
        ]
        with monkeypatch.context() as old_release:
            old_release.setattr(repository_module, "chained", _chained_v1)
            assert await AuditRepository(conn).insert_events(rows[:3]) == 3
        assert await AuditRepository(conn).insert_events(rows[3:]) == 3
        stored = await conn.fetch(
            "SELECT * FROM audit WHERE chainid IS NOT NULL ORDER BY chainid, chainseq"
        )
        assert [r["chainseq"] for r in stored] == [1, 2, 3, 4, 5, 6]  # one chain, both kinds
        assert await first_break() is None
        for victim in (stored[1], stored[4]):  # a version 1 row, then a version 2 row
            await conn.execute(
                "UPDATE audit SET objectid = 'x' WHERE eventid = $1", victim["eventid"]
            )
            found = await first_break()
            assert found is not None and found.event_id == victim["eventid"]
            await conn.execute(
                "UPDATE audit SET objectid = $2 WHERE eventid = $1",
                victim["eventid"],
                victim["objectid"],
            )
        assert await first_break() is None
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()
