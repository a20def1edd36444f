"""Each service's /metrics after known calls: go-grpc-prometheus's server and client metrics
with their exact names, labels and counts, streaming calls (health Watch) counted when they end,
and the gauges of pools, outbox, token cache and audit consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.server.bootstrap import build as build_audit
from audit.server.settings import AuditSettings
from devtools.stack import EmbeddedPostgres, free_port
from global_utils.data.database import Database
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.messaging.broker import Broker
from global_utils.messaging.outbox import OutboxRelay
from global_utils.observability.gauges import watch_outbox
from global_utils.observability.metrics import METRICS_PATH, MetricsSettings, ServiceMetrics
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from provision.migrations import VERSIONS, load_migrations, migrate
from tests.helpers import (
    eventually,
    http_get,
    new_promotion,
    parse_metrics,
    sample,
    scrape,
    scrape_once_handled,
    started,
)
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings

USER = {"grpc_service": "user.UserSrv", "grpc_type": "unary"}
PROMOTION = {"grpc_service": "promotion.PromotionSrv", "grpc_type": "unary"}
WATCH = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch"}


@pytest.fixture
async def own_pair(
    user_settings_factory: Callable[..., UserSettings],
    promotion_settings_factory: Callable[..., PromotionSettings],
) -> AsyncIterator[tuple[ServiceHost, ServiceHost]]:
    """A user and a promotion service of this test alone (their own mDNS type, so the
    promotion service calls only this user service), with fresh registries."""
    mdns = f"_gtm-{uuid.uuid4().hex[:8]}._tcp.local."
    user = await started(build_user(user_settings_factory(mdns_service_type=mdns)))
    try:
        promotion = await started(
            build_promotion(
                promotion_settings_factory(mdns_service_type=mdns, metrics_refresh_seconds=0.2)
            )
        )
        try:
            yield user, promotion
        finally:
            await promotion.stop()
    finally:
        await user.stop()


async def test_server_metrics_count_each_call_by_method_and_code(
    own_pair: tuple[ServiceHost, ServiceHost],
) -> None:
    user, _ = own_pair
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user.port}") as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        token = (await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        me = await stub.ValidateToken(user_pb2.Token(token=token))
        for _ in range(3):
            await stub.GetUserById(
                user_pb2.SearchId(id=int(me.e_uid)), metadata=bearer_metadata(token)
            )
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetUserById(user_pb2.SearchId(id=1), metadata=bearer_metadata(token))
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.GetUserById(user_pb2.SearchId(id=int(me.e_uid)))
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED

    by_id = {**USER, "grpc_method": "GetUserById"}
    got = await scrape_once_handled(user, 5, **by_id)
    assert sample(got, "grpc_server_started_total", **by_id) == 5
    assert sample(got, "grpc_server_handled_total", **by_id, grpc_code="OK") == 3
    assert sample(got, "grpc_server_handled_total", **by_id, grpc_code="NotFound") == 1
    assert sample(got, "grpc_server_handled_total", **by_id, grpc_code="Unauthenticated") == 1
    assert sample(got, "grpc_server_msg_received_total", **by_id) == 5
    assert sample(got, "grpc_server_msg_sent_total", **by_id) == 3
    assert sample(got, "grpc_server_handling_seconds_count", **by_id) == 5
    assert sample(got, "grpc_server_handling_seconds_bucket", **by_id, le="+Inf") == 5
    assert sample(got, "grpc_server_handled_total", **USER, grpc_method="Auth", grpc_code="OK") == 1
    # every method on every code from the start, as go-grpc-prometheus initializes them
    assert (
        sample(
            got, "grpc_server_handled_total", **USER, grpc_method="DeleteUser", grpc_code="Internal"
        )
        == 0
    )
    assert not any(name.endswith("_created") for name, _ in got)
    # the pool lent connections and has them back
    size, idle = sample(got, "gotemp_db_pool_size"), sample(got, "gotemp_db_pool_idle")
    assert sample(got, "gotemp_db_pool_max_size") == 10
    assert size is not None and idle is not None and 1 <= size <= 10
    assert sample(got, "gotemp_db_pool_in_use") == size - idle
    # each token's signature is checked through the cache: ValidateToken misses, the four
    # GetUserById calls carrying the token hit
    assert sample(got, "gotemp_token_cache_misses_total") == 1
    assert sample(got, "gotemp_token_cache_hits_total") == 4
    assert sample(got, "gotemp_bcrypt_in_flight") == 0
    assert sample(got, "gotemp_bcrypt_queued") == 0
    assert (sample(got, "gotemp_bcrypt_workers") or 0) >= 1
    assert (sample(got, "process_cpu_seconds_total") or 0) > 0


async def test_client_metrics_count_the_calls_promotion_makes_to_the_user_service(
    own_pair: tuple[ServiceHost, ServiceHost],
) -> None:
    user, promotion = own_pair
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user.port}") as channel:
        login = user_pb2.User(email="duck@mymail.com", pwd="1234")
        token = (await user_pb2_grpc.UserSrvStub(channel).Auth(login)).token
    async with grpc.aio.insecure_channel(f"127.0.0.1:{promotion.port}") as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        made = await stub.CreatePromotion(new_promotion(), metadata=bearer_metadata(token))
        for _ in range(2):
            await stub.GetPromotionById(
                promotion_pb2.SearchId(id=made.promotion.id), metadata=bearer_metadata(token)
            )

    # local verification: the user service's keys, fetched once at the first token
    keys = {**USER, "grpc_method": "GetPublicKeys"}
    got = await scrape_once_handled(promotion, 2, **PROMOTION, grpc_method="GetPromotionById")
    assert sample(got, "grpc_client_started_total", **keys) == 1
    assert sample(got, "grpc_client_handled_total", **keys, grpc_code="OK") == 1
    assert sample(got, "grpc_client_msg_sent_total", **keys) == 1
    assert sample(got, "grpc_client_msg_received_total", **keys) == 1
    assert sample(got, "grpc_client_handling_seconds_count", **keys) == 1
    served = await scrape(user)
    assert sample(served, "grpc_server_handled_total", **keys, grpc_code="OK") == 1
    assert (
        sample(
            got,
            "grpc_server_handled_total",
            **PROMOTION,
            grpc_method="GetPromotionById",
            grpc_code="OK",
        )
        == 2
    )
    assert sample(got, "gotemp_token_cache_misses_total") == 1
    assert sample(got, "gotemp_token_cache_hits_total") == 2

    async def published() -> bool:
        # (another promotion instance of the session shares the outbox table and may be the
        # one that publishes it: this instance's own count is only known not to go down)
        now = await scrape(promotion)
        return (
            sample(now, "gotemp_outbox_pending_events") == 0
            and sample(now, "gotemp_outbox_oldest_pending_age_seconds") == 0
            and sample(now, "gotemp_outbox_published_events_total") is not None
        )

    await eventually(published, timeout=15, what="the promotion's event published (backlog 0)")


async def test_health_watch_streams_and_is_counted_when_it_ends(
    own_pair: tuple[ServiceHost, ServiceHost],
) -> None:
    user, _ = own_pair
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        during = await scrape(user)
        assert sample(during, "grpc_server_started_total", **WATCH, grpc_type="server_stream") == 1
        assert sample(during, "grpc_server_msg_sent_total", **WATCH, grpc_type="server_stream") == 1
        assert (
            sample(
                during,
                "grpc_server_handled_total",
                **WATCH,
                grpc_type="server_stream",
                grpc_code="Canceled",
            )
            == 0
        )
        watch.cancel()

    async def ended() -> bool:
        now = await scrape(user)
        return (
            sample(
                now,
                "grpc_server_handled_total",
                **WATCH,
                grpc_type="server_stream",
                grpc_code="Canceled",
            )
            == 1
        )

    await eventually(ended, timeout=10, what="the Watch counted as handled (Canceled)")


async def test_audit_metrics_count_stored_events_and_every_reject_kind(
    user_host: ServiceHost,
    audit_settings_factory: Callable[..., AuditSettings],
) -> None:
    audit = await started(build_audit(audit_settings_factory(metrics_refresh_seconds=0.2)))
    try:
        got = await scrape(audit)
        for kind in ("malformed", "unauthenticated", "altered", "wrong-service", "refused"):
            assert sample(got, "gotemp_audit_events_rejected_total", kind=kind) == 0, kind

        async def lag_known() -> bool:
            now = await scrape(audit)
            return sample(now, "gotemp_audit_consumer_pending_events") is not None and (
                sample(now, "gotemp_audit_consumer_ack_pending_events") is not None
            )

        await eventually(lag_known, timeout=15, what="the consumer's lag read")
        assert sample(got, "gotemp_audit_events_stored_total") is not None
        assert (
            sample(
                got,
                "grpc_server_handled_total",
                grpc_service="audit.AuditSrv",
                grpc_method="GetAuditRecords",
                grpc_type="unary",
                grpc_code="OK",
            )
            == 0
        )
    finally:
        await audit.stop()


async def test_metrics_off_serves_no_metrics_and_calls_still_work(
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    host = await started(
        build_user(
            user_settings_factory(
                metrics_enabled=False, mdns_service_type=f"_gto-{uuid.uuid4().hex[:8]}._tcp.local."
            )
        )
    )
    try:
        assert host.http is not None and host.http.endpoint is not None
        status, _ = await http_get(host.http.endpoint.port, METRICS_PATH)
        assert status == "HTTP/1.1 404 Not Found"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            login = user_pb2.User(email="duck@mymail.com", pwd="1234")
            assert (await user_pb2_grpc.UserSrvStub(channel).Auth(login)).token
    finally:
        await host.stop()


@pytest.fixture
async def scratch_outbox(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """A database of its own with the user service's schema (its migrations), whose outbox no
    relay of the session drains: the backlog in it is what the test puts there."""
    name = f"outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = postgres.dsn(name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, load_migrations(VERSIONS / "appuser"), database=name)
    finally:
        await conn.close()
    yield dsn
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def test_outbox_backlog_and_the_age_of_its_oldest_event(scratch_outbox: str) -> None:
    database = Database(scratch_outbox)
    # a broker nobody answers at: nothing gets published, the backlog stays
    relay = OutboxRelay(database, Broker(f"nats://127.0.0.1:{free_port()}", name="test"))
    metrics = ServiceMetrics(MetricsSettings())
    watch_outbox(metrics, relay)
    await database.start()
    try:
        await database.wait_ready()
        empty = await relay.check_backlog()
        assert (empty.pending, empty.oldest_age_seconds) == (0, 0)
        async with database.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_outbox (eventid, createdat, subject, headers, payload)"
                " VALUES ($1, now() - interval '90 seconds', 'Audit', '{}', ''),"
                " ($2, now() - interval '5 seconds', 'Audit', '{}', ''),"
                " ($3, now() - interval '600 seconds', 'Audit', '{}', '')",
                uuid.uuid4(),
                uuid.uuid4(),
                uuid.uuid4(),
            )
            await conn.execute(
                "UPDATE audit_outbox SET sentat = now() WHERE createdat < now() - interval '5 min'"
            )
        await relay.check_backlog()
        got = parse_metrics(metrics.exposition().body.decode())
        assert sample(got, "gotemp_outbox_pending_events") == 2
        age = sample(got, "gotemp_outbox_oldest_pending_age_seconds")
        assert age is not None and 90 <= age < 150
    finally:
        await database.stop()
