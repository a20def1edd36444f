"""Start-up before the database, outages, health transitions and reflection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devtools.databases import provision_databases, service_db_settings
from devtools.stack import EmbeddedPostgres, free_port
from global_utils.grpc.host import LIVENESS_HEALTH_NAME
from global_utils.identity.principal import bearer_metadata
from tests.helpers import eventually, new_user, serving
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings


async def health_status(channel: grpc.aio.Channel, service: str = "user.UserSrv") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return reply.status


async def test_service_started_before_database_becomes_serving_when_it_appears(
    stack_dir: Path, user_settings_factory: Callable[..., UserSettings]
) -> None:
    late = EmbeddedPostgres(stack_dir / "late-pg", port=free_port(), durable=False)
    host = build(user_settings_factory(**service_db_settings(late, "user")))
    await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert (
                await health_status(channel, LIVENESS_HEALTH_NAME)
                == health_pb2.HealthCheckResponse.SERVING
            )
            stub = user_pb2_grpc.UserSrvStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

            late.start()
            await asyncio.to_thread(provision_databases, late)

            async def serving() -> bool:
                return await health_status(channel) == health_pb2.HealthCheckResponse.SERVING

            await eventually(serving, timeout=30, what="SERVING after the database appeared")
            token = await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
            assert token.valid

            # The database goes away: calls fail UNAVAILABLE, the process stays up ...
            late.stop()
            md = bearer_metadata(token.token)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetUsers(user_pb2.SearchParams(), metadata=md)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

            # ... and health says so, so orchestrators route around it ...
            async def not_serving() -> bool:
                return await health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING

            await eventually(not_serving, timeout=30, what="NOT_SERVING while the database is gone")
            # ... while the process itself is alive: liveness probes must not restart it
            assert (
                await health_status(channel, LIVENESS_HEALTH_NAME)
                == health_pb2.HealthCheckResponse.SERVING
            )

            # ... and it recovers by itself once it is back.
            late.start()

            async def answers() -> bool:
                try:
                    await stub.GetUsers(user_pb2.SearchParams(), metadata=md)
                    return True
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    return False

            await eventually(answers, timeout=30, what="calls to succeed after the restart")
            await eventually(serving, timeout=30, what="SERVING again after the restart")
    finally:
        await host.stop()
        late.stop()


async def test_broker_outage_does_not_fail_writes(
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    host = build(user_settings_factory(micro_broker_address=f"127.0.0.1:{free_port()}"))
    async with serving(host) as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        token = await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
        reply = await stub.CreateUser(new_user(), metadata=bearer_metadata(token.token))
        assert reply.affected_count == 1


async def test_health_goes_not_serving_on_shutdown(
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    host = build(user_settings_factory())
    await host.start()
    await host.ready.wait()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        # Watch streams the transition the shutdown announces.
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="user.UserSrv")
        )
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await host.stop()
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_service(user_channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(user_channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    names = {s.name for s in reply.list_services_response.service}
    assert {"user.UserSrv", "grpc.health.v1.Health"} <= names
    await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol="user.UserSrv"))
    described = await call.read()
    assert described.file_descriptor_response.file_descriptor_proto
    await call.done_writing()


async def test_health_probe_exits_zero_only_when_serving(user_host) -> None:
    import sys

    from devtools.stack import REPO_ROOT

    async def probe(address: str) -> tuple[int, str]:
        # Run without blocking: the service under test shares this event loop.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "global_utils.grpc.healthprobe",
            address,
            cwd=REPO_ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
        return proc.returncode or 0, stderr.decode()

    assert await probe(f"127.0.0.1:{user_host.port}") == (0, "")
    code, stderr = await probe(f"127.0.0.1:{free_port()}")
    assert code == 1 and stderr.startswith("unhealthy: UNAVAILABLE")


async def test_missing_database_is_waited_for_not_fatal(
    postgres: EmbeddedPostgres, user_settings_factory: Callable[..., UserSettings]
) -> None:
    import uuid

    import asyncpg

    name = f"late_{uuid.uuid4().hex[:8]}"
    host = build(user_settings_factory(postgres_connect=postgres.dsn(name)))
    await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            admin = await asyncpg.connect(postgres.dsn("postgres"))
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()

            async def serving() -> bool:
                return await health_status(channel) == health_pb2.HealthCheckResponse.SERVING

            await eventually(serving, timeout=30, what="SERVING once the database exists")
    finally:
        await host.stop()
