"""ServiceChannels against real gRPC servers on loopback: an instance that went away and came
back on its address gets the very next call, not one after gRPC's reconnect backoff."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from global_errors import Unavailable
from global_utils.discovery.registry import StaticRegistry, parse_endpoint
from global_utils.grpc.client import ServiceChannels


class PeerRecordingHealth(health.aio.HealthServicer):
    """The standard health service, noting the peer (client address:port) of each Check."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[str] = []

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        self.peers.append(context.peer())
        return await super().Check(request, context)


async def health_server(
    port: int = 0, servicer: health.aio.HealthServicer | None = None
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer or health.aio.HealthServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def check(channel: grpc.aio.Channel) -> health_pb2.HealthCheckResponse:
    stub = health_pb2_grpc.HealthStub(channel)
    return await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)


async def test_an_instance_back_on_its_address_gets_the_next_call() -> None:
    server, port = await health_server()
    await server.stop(None)
    channels = ServiceChannels(
        StaticRegistry({"probe": [parse_endpoint(f"127.0.0.1:{port}")]}), "probe"
    )
    try:
        with pytest.raises(Unavailable):
            await channels.call(check)
        # gRPC would now wait out its reconnect backoff (a second at first, growing to two
        # minutes) before dialling this address again; the instance is back at once
        server, _ = await health_server(port)
        try:
            reply = await channels.call(check)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await server.stop(None)
    finally:
        await channels.stop()


async def test_a_live_instance_keeps_its_one_connection() -> None:
    servicer = PeerRecordingHealth()
    server, port = await health_server(servicer=servicer)
    channels = ServiceChannels(
        StaticRegistry({"probe": [parse_endpoint(f"127.0.0.1:{port}")]}), "probe"
    )
    try:
        for _ in range(5):
            await channels.call(check)
        assert len(servicer.peers) == 5
        assert len(set(servicer.peers)) == 1, servicer.peers
    finally:
        await channels.stop()
        await server.stop(None)
