"""The audit pipeline on a 3-node JetStream cluster (nats-server processes routed on loopback):
the AUDIT stream provisioned at three replicas, each service with its own credential, the
stream leader SIGKILLed and restarted in the middle of a steady stream of changes, two audit
instances sharing the consumer — every committed change stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from nats.js import JetStreamContext

import nats
from audit.server.bootstrap import build as build_audit
from audit.server.ingest.consumer import AUDIT_CONSUMER, AuditConsumer
from audit.server.settings import AuditSettings
from devtools.dev_secrets import NatsKeys
from devtools.nats_stack import servers_url
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.events.audit_event import AUDIT_STREAM
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from provision.broker import provision_broker
from tests.helpers import eventually, new_user, serving, started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings

REPLICAS = 3


@pytest.fixture
def cluster(stack_dir: Path, nats_keys: NatsKeys) -> Iterator[list[EmbeddedNats]]:
    """Three routed JetStream servers of this test's own (the session's nkeys)."""
    nodes = EmbeddedNats.cluster(
        stack_dir / f"nats-cluster-{uuid.uuid4().hex[:6]}", REPLICAS, env=nats_keys.server_env()
    )
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
async def jetstream(
    cluster: list[EmbeddedNats], nats_keys: NatsKeys
) -> AsyncIterator[JetStreamContext]:
    """The cluster provisioned (stream at three replicas: provisioning waits for the meta
    leader), and an admin client of it."""
    await provision_broker(
        servers_url(cluster), nats_keys.access("admin"), replicas=REPLICAS, timeout=60
    )
    client = await nats.connect(
        servers=servers_url(cluster).split(","), **nats_keys.access("admin").connect_options()
    )
    js = client.jetstream()
    yield js
    await client.close()


async def test_leader_crash_loses_and_doubles_nothing_with_two_audit_instances(
    cluster: list[EmbeddedNats],
    jetstream: JetStreamContext,
    postgres: EmbeddedPostgres,
    user_settings_factory: Callable[..., UserSettings],
    audit_settings_factory: Callable[..., AuditSettings],
) -> None:
    servers = ",".join(node.address for node in cluster)
    audits: list[ServiceHost] = []
    for _ in range(2):
        settings = audit_settings_factory(micro_broker_address=servers, consumer_batch_size=20)
        audits.append(await started(build_audit(settings)))
    # provisioning made it on all three servers (AUDIT_STREAM_REPLICAS)
    assert (await jetstream.stream_info(AUDIT_STREAM)).config.num_replicas == REPLICAS
    try:
        user = build_user(user_settings_factory(micro_broker_address=servers))
        async with serving(user) as ch:
            stub = user_pb2_grpc.UserSrvStub(ch)
            token = (await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
            md = bearer_metadata(token)
            committed: list[str] = []
            stop = asyncio.Event()

            async def changes() -> None:
                while not stop.is_set():
                    reply = await stub.CreateUser(new_user(), metadata=md, timeout=10)
                    committed.append(str(reply.user.id))

            producer = asyncio.create_task(changes())

            async def some_committed(count: int) -> bool:
                return len(committed) >= count

            await eventually(lambda: some_committed(20), timeout=30, what="changes flowing")
            leader_name = (await jetstream.stream_info(AUDIT_STREAM)).cluster.leader
            leader = next(node for node in cluster if node.name == leader_name)
            leader.kill()
            killed = time.monotonic()

            async def new_leader() -> bool:
                try:
                    info = await jetstream.stream_info(AUDIT_STREAM)
                except Exception:
                    return False
                return info.cluster.leader not in (None, leader_name)

            await eventually(new_leader, timeout=30, what="a new stream leader")
            elected = time.monotonic() - killed
            leader.start()
            restarted_at = len(committed)
            await eventually(
                lambda: some_committed(restarted_at + 20), timeout=30, what="more changes"
            )
            stop.set()
            await producer

            conn = await asyncpg.connect(postgres.dsn("audit"))
            try:

                async def stored() -> int:
                    return int(
                        await conn.fetchval(
                            "SELECT count(*) FROM audit WHERE objectname = 'user'"
                            " AND objectid = ANY($1)",
                            committed,
                        )
                    )

                async def all_stored() -> bool:
                    return await stored() >= len(committed)

                await eventually(all_stored, timeout=60, what=f"{len(committed)} audit rows")

                async def drained() -> bool:
                    info = await jetstream.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
                    return info.num_pending == 0 and info.num_ack_pending == 0

                await eventually(drained, timeout=60, what="the consumer to drain")
                assert await stored() == len(committed)  # a duplicate would be one more
            finally:
                await conn.close()
        shares = [c.stored for h in audits for c in h._started if isinstance(c, AuditConsumer)]
        print(
            f"\ncluster: {len(committed)} changes, stream leader {leader_name} killed, new "
            f"leader after {elected:.1f} s, audit shares {shares}"
        )
        assert all(share > 0 for share in shares), shares
    finally:
        for host in audits:
            await host.stop()
