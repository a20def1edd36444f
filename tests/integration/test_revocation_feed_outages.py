"""The revocation feed when NATS fails (issue 28): with NATS stopped during a deactivation the
verifiers fall back to the user service (and refuse the token through it), and once NATS is
back the revocation arrives from the outbox and they refuse it on their own again; on a
3-node JetStream cluster the revocations survive the bucket's leader being killed, for the
verifiers already running and for one started afterwards.

Each test has a stack of its own (PostgreSQL, NATS, mDNS name): another test's user service
would otherwise relay this test's revocations to the session's NATS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import nats
from audit.server.bootstrap import build as build_audit
from audit.server.settings import AuditSettings
from devtools.databases import provision_databases, service_db_settings
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.nats_stack import servers_url, start_nats
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.grpc.host import ServiceHost
from global_utils.identity.revocations import REVOCATIONS_STREAM
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from provision.broker import provision_broker
from tests.helpers import eventually, started
from tests.integration.conftest import factory
from tests.integration.test_token_revocations import (
    Verifier,
    refused_everywhere,
    revoke,
    sign_up,
)
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings

# Short, so the tests spend little time waiting for the verifiers to notice a lost feed.
FEED_BOUND = 1.0


class Stack:
    """Settings for services on a database and NATS of their own, finding each other under
    an mDNS name of their own."""

    def __init__(
        self,
        postgres: EmbeddedPostgres,
        nats_address: str,
        nats_keys: NatsKeys,
        jwt_key: str,
        audit_keys: AuditKeys,
    ) -> None:
        own = {
            "mdns_service_type": f"_gtr-{uuid.uuid4().hex[:8]}._tcp.local.",
            "revocation_feed_max_age_seconds": FEED_BOUND,
        }
        self.user: Callable[..., UserSettings] = factory(
            UserSettings,
            nats_address,
            **service_db_settings(postgres, "user"),
            **nats_keys.client_settings("user"),
            jwt_private_key=jwt_key,
            bcrypt_rounds=4,
            **audit_keys.producer_settings("user"),
            **own,
        )
        self.promotion: Callable[..., PromotionSettings] = factory(
            PromotionSettings,
            nats_address,
            **service_db_settings(postgres, "promotion"),
            **nats_keys.client_settings("promotion"),
            **audit_keys.producer_settings("promotion"),
            **own,
        )
        self.audit: Callable[..., AuditSettings] = factory(
            AuditSettings,
            nats_address,
            **service_db_settings(postgres, "audit"),
            **nats_keys.client_settings("audit"),
            **audit_keys.consumer_settings(),
            **own,
        )


@pytest.fixture
def own_postgres(stack_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, provisioned like the session's."""
    server = EmbeddedPostgres(stack_dir / f"pg-{uuid.uuid4().hex[:6]}", durable=False).start()
    provision_databases(server)
    yield server
    server.stop()


class Running:
    """What a test started: hosts (stopped at its end, last first) and channels to them."""

    def __init__(self) -> None:
        self.hosts: list[ServiceHost] = []
        self.channels: list[grpc.aio.Channel] = []

    def verifier(self, host: ServiceHost, name: str) -> Verifier:
        self.hosts.append(host)
        verifier = Verifier(host, name)
        self.channels.append(verifier.channel)
        return verifier

    async def stop(self) -> None:
        for channel in self.channels:
            await channel.close()
        for host in reversed(self.hosts):
            await host.stop()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """The test's hosts and channels, stopped and closed at its end."""
    started_ones = Running()
    yield started_ones
    await started_ones.stop()


async def start_stack(stack: Stack, running: Running) -> tuple[Any, list[Verifier]]:
    """The user service, one promotion and one audit instance; a UserSrv stub and the
    verifiers."""
    user = await started(build_user(stack.user()))
    running.hosts.append(user)
    verifiers = [
        running.verifier(await started(build_promotion(stack.promotion())), "promotion"),
        running.verifier(await started(build_audit(stack.audit())), "audit"),
    ]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{user.port}")
    running.channels.append(channel)
    return user_pb2_grpc.UserSrvStub(channel), verifiers


async def admin_auth(stub: Any) -> Any:
    reply = await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
    return (("authorization", f"Bearer {reply.token}"),)


async def test_nats_stopped_during_a_deactivation_then_back(
    stack_dir: Path,
    own_postgres: EmbeddedPostgres,
    nats_keys: NatsKeys,
    jwt_key: str,
    audit_keys: AuditKeys,
    running: Running,
) -> None:
    server = start_nats(stack_dir / f"nats-{uuid.uuid4().hex[:6]}", nats_keys)
    try:
        stack = Stack(own_postgres, server.address, nats_keys, jwt_key, audit_keys)
        stub, verifiers = await start_stack(stack, running)
        auth = await admin_auth(stub)
        user, token = await sign_up(stub, auth)
        _, bystanders_token = await sign_up(stub, auth)
        for verifier in verifiers:
            assert verifier.feed.fresh and await verifier.served(token), verifier.name

        server.stop()

        async def all_stale() -> bool:
            return not any(verifier.feed.fresh for verifier in verifiers)

        await eventually(all_stale, timeout=10, what="the verifiers to notice the lost feed")
        await revoke("deactivated", stub, auth, user)
        # in between: every check asks the user service, which refuses the token at once
        fallbacks = [verifier.checker.fallbacks for verifier in verifiers]
        for verifier in verifiers:
            assert not await verifier.served(token), verifier.name
            assert await verifier.served(bystanders_token), verifier.name
        assert all(
            verifier.checker.fallbacks >= before + 2
            for verifier, before in zip(verifiers, fallbacks, strict=True)
        )

        server.start()

        async def revocation_arrived() -> bool:
            return all(
                verifier.feed.fresh and verifier.feed.not_before(str(user.id)) is not None
                for verifier in verifiers
            )

        await eventually(revocation_arrived, timeout=30, what="the revocation through the outbox")
        fallbacks = [verifier.checker.fallbacks for verifier in verifiers]
        for verifier in verifiers:
            assert not await verifier.served(token), verifier.name  # by the feed alone
            assert await verifier.served(bystanders_token), verifier.name
        assert [verifier.checker.fallbacks for verifier in verifiers] == fallbacks
    finally:
        server.stop()


async def test_revocations_survive_a_cluster_leader_change(
    stack_dir: Path,
    own_postgres: EmbeddedPostgres,
    nats_keys: NatsKeys,
    jwt_key: str,
    audit_keys: AuditKeys,
    running: Running,
) -> None:
    nodes = EmbeddedNats.cluster(
        stack_dir / f"nats-cluster-{uuid.uuid4().hex[:6]}", 3, env=nats_keys.server_env()
    )
    for node in nodes:
        node.start()
    try:
        url = servers_url(nodes)
        await provision_broker(url, nats_keys.access("admin"), replicas=3, timeout=60)
        servers = ",".join(node.address for node in nodes)
        stack = Stack(own_postgres, servers, nats_keys, jwt_key, audit_keys)
        stub, verifiers = await start_stack(stack, running)
        auth = await admin_auth(stub)
        before, before_token = await sign_up(stub, auth)
        after, after_token = await sign_up(stub, auth)
        await revoke("deactivated", stub, auth, before)
        await refused_everywhere(verifiers, before_token)

        admin = await nats.connect(
            servers=url.split(","), **nats_keys.access("admin").connect_options()
        )
        try:
            js = admin.jetstream()
            info = await js.stream_info(REVOCATIONS_STREAM)
            assert info.config.num_replicas == 3
            leader_name = info.cluster.leader
            leader = next(node for node in nodes if node.name == leader_name)
            leader.kill()

            async def new_leader() -> bool:
                try:
                    found = await js.stream_info(REVOCATIONS_STREAM)
                except Exception:
                    return False
                return found.cluster.leader not in (None, leader_name)

            await eventually(new_leader, timeout=30, what="a new leader of the bucket")
        finally:
            await admin.close()
        # a revocation after the change reaches the verifiers already running ...
        await revoke("deactivated", stub, auth, after)
        await refused_everywhere(verifiers, after_token)
        # ... and one started now holds both
        late = running.verifier(await started(build_promotion(stack.promotion())), "promotion-late")

        # (its start waits the feed's bound, 3 s, for the bucket; just after a leader change on a
        # busy machine the state can take longer, and meanwhile the verifier asks the user
        # service: wait for the feed, then count what it refuses on its own)
        async def late_feed_fresh() -> bool:
            return late.feed.fresh

        await eventually(late_feed_fresh, timeout=30, what="the late verifier's feed")
        for token in (before_token, after_token):
            assert not await late.served(token)
        assert (late.checker.refused, late.checker.fallbacks) == (2, 0)
        _, unrevoked = await sign_up(stub, auth)
        for verifier in [*verifiers, late]:
            assert await verifier.served(unrevoked), verifier.name
        leader.start()
    finally:
        for node in nodes:
            node.stop()
