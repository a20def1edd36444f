"""Container health probe: asks a service's gRPC health endpoint, exits 0 only when SERVING.

Usage: python -m global_utils.healthprobe [host:port]  (default: 127.0.0.1 and the port of
MICRO_SERVER_ADDRESS).
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from global_utils.registry import parse_endpoint


def target_from(argv: list[str]) -> str:
    if len(argv) > 1:
        return parse_endpoint(argv[1]).target
    listen = parse_endpoint(os.environ.get("MICRO_SERVER_ADDRESS", ""), default_host="127.0.0.1")
    return f"127.0.0.1:{listen.port}"


async def probe(target: str, timeout: float = 2.0, quiet: bool = False) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            if not quiet:
                print(f"unhealthy: {exc.code().name}", file=sys.stderr)
            return False
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    if not serving and not quiet:
        print(
            f"unhealthy: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}",
            file=sys.stderr,
        )
    return serving


def main() -> None:
    try:
        target = target_from(sys.argv)
    except ValueError as exc:
        raise SystemExit(f"healthprobe: {exc}") from None
    raise SystemExit(0 if asyncio.run(probe(target)) else 1)


if __name__ == "__main__":
    main()
