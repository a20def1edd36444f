"""MICRO_REGISTRY=dns: callers reach every instance of a service through one gRPC target (a
DNS name, as a Kubernetes headless Service gives, or an ipv4: list), balanced round robin,
each instance health-checked. Proved on loopback: 127.0.0.2-5 are this machine's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devtools.processes import ServiceProcess
from global_utils.discovery.registry import StaticRegistry, balanced_endpoint
from global_utils.grpc.client import ServiceChannels
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from tests.dns_server import LoopbackDns
from tests.helpers import eventually
from user.proto import user_pb2, user_pb2_grpc

NAME = "user.gotemp.test"
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
LATE = "127.0.0.5"
CONNECTION_AGE = 2  # seconds: how soon clients re-resolve and see a new instance


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    """A DNS server of this test's own on 127.0.0.1."""
    server = LoopbackDns().start()
    yield server
    server.stop()


def validate_calls(process: ServiceProcess) -> int:
    """ValidateToken calls the process served (it logs each call at DEBUG)."""
    return process.output.count("/user.UserSrv/ValidateToken StatusCode.OK")


def test_promotion_spreads_token_checks_over_user_replicas_behind_one_dns_name(
    dns: LoopbackDns, user_env, promotion_env, start_process
) -> None:
    port = 0  # the first replica's: the system chooses it, the others share it
    dns.set(NAME, ADDRESSES)

    def start_user(address: str) -> ServiceProcess:
        env = user_env | {
            "MICRO_SERVER_ADDRESS": f"{address}:{port}",
            "MICRO_REGISTRY": "dns",  # nothing to register: DNS lists the instances
            "LOG_LEVEL": "DEBUG",
            "MAX_CONNECTION_AGE_SECONDS": str(CONNECTION_AGE),
        }
        process = start_process("user.server", env)
        process.wait_for_line("user ready")
        return process

    users = {ADDRESSES[0]: start_user(ADDRESSES[0])}
    port = int(users[ADDRESSES[0]].address.rsplit(":", 1)[1])
    users |= {address: start_user(address) for address in ADDRESSES[1:]}
    promotion = start_process(
        "promotion.server",
        promotion_env
        | {
            "MICRO_REGISTRY": "dns",
            "MICRO_REGISTRY_ADDRESS": f"user={dns.target(NAME, port)}",
            # every call asks a user instance (local verification would ask for keys once)
            "TOKEN_VERIFICATION": "remote",
            "TOKEN_CACHE_SECONDS": "0",
        },
    )
    promotion.wait_for_line("promotion ready")

    with grpc.insecure_channel(f"{ADDRESSES[0]}:{port}") as channel:
        token = (
            user_pb2_grpc.UserSrvStub(channel)
            .Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
            .token
        )
    with grpc.insecure_channel(promotion.address) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)

        def call() -> grpc.StatusCode:
            try:
                stub.GetPromotions(
                    promotion_pb2.SearchParams(name="Promo1"), metadata=metadata, timeout=5
                )
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]  # a sync call's error is also a Call with code()

        # every replica serves a share
        assert {call() for _ in range(60)} == {grpc.StatusCode.OK}
        spread = {address: validate_calls(p) for address, p in users.items()}
        print(f"\nspread of 60 calls over three user replicas: {spread}")
        assert all(count >= 5 for count in spread.values()), spread

        # one replica is killed (its DNS record stays, as a pod's would for a moment)
        killed = users.pop(ADDRESSES[0])
        killed.proc.kill()
        killed.proc.wait()
        before = {address: validate_calls(p) for address, p in users.items()}
        started = time.monotonic()
        answers = [call() for _ in range(60)]
        failed = sum(code != grpc.StatusCode.OK for code in answers)
        print(f"after SIGKILL of one replica: {failed} of 60 calls failed")
        assert failed == 0, answers
        assert all(validate_calls(p) > before[a] for a, p in users.items())

        # a new replica joins the DNS name: it gets calls once clients re-resolve
        users[LATE] = start_user(LATE)
        dns.set(NAME, [*ADDRESSES, LATE])
        joined = time.monotonic()
        while validate_calls(users[LATE]) == 0:
            assert call() == grpc.StatusCode.OK
            assert time.monotonic() - joined < 30, "the new replica got no call in 30 s"
            time.sleep(0.05)
        print(
            f"new replica's first call {time.monotonic() - joined:.1f} s after it joined DNS "
            f"(connection age {CONNECTION_AGE} s); whole run {time.monotonic() - started:.1f} s"
        )


class _CountingHealth(health.aio.HealthServicer):
    """A health service that counts the Check calls it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        self.checks += 1
        return await super().Check(request, context)


async def _instances() -> tuple[int, list[grpc.aio.Server], list[_CountingHealth]]:
    """One health server on each of ADDRESSES, all on the port the system chose for the first."""
    port = 0
    servers, healths = [], []
    for address in ADDRESSES:
        server = grpc.aio.server()
        servicer = _CountingHealth()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{address}:{port}")
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        servers.append(server)
        healths.append(servicer)
    return port, servers, healths


@pytest.mark.parametrize("kind", ["ipv4 list", "dns name"])
async def test_a_not_serving_instance_gets_no_calls_until_it_serves_again(
    kind: str, dns: LoopbackDns
) -> None:
    dns.set(NAME, ADDRESSES)
    port, servers, healths = await _instances()
    target = (
        "ipv4:" + ",".join(f"{a}:{port}" for a in ADDRESSES)
        if kind == "ipv4 list"
        else dns.target(NAME, port)
    )
    channels = ServiceChannels(StaticRegistry({"user": [balanced_endpoint(target)]}), "user")
    try:
        # Check("probe") names no registered service: NOT_FOUND, but answered and counted
        async def call_ok(channel: grpc.aio.Channel) -> None:
            try:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="probe"), timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise

        async def burst_ok(n: int) -> list[int]:
            before = [h.checks for h in healths]
            for _ in range(n):
                await channels.call(call_ok)
            return [h.checks - b for h, b in zip(healths, before, strict=True)]

        spread = await burst_ok(30)
        assert all(count >= 5 for count in spread), spread

        await healths[1].set("", health_pb2.HealthCheckResponse.NOT_SERVING)

        async def excluded() -> bool:
            return (await burst_ok(6))[1] == 0

        await eventually(excluded, timeout=10, what="the NOT_SERVING instance left out")
        assert (await burst_ok(30))[1] == 0

        await healths[1].set("", health_pb2.HealthCheckResponse.SERVING)

        async def back() -> bool:
            return (await burst_ok(6))[1] > 0

        await eventually(back, timeout=10, what="the instance back in rotation")
    finally:
        await channels.stop()
        await asyncio.gather(*(server.stop(0) for server in servers))
