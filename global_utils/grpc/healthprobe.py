"""Container health probe: asks a service's gRPC health endpoint, exits 0 only when SERVING.

Usage: python -m global_utils.grpc.healthprobe [host:port [service]]  (default: 127.0.0.1 and the
port of MICRO_SERVER_ADDRESS, the overall status; the service name "liveness" asks only whether
the process serves); speaks TLS as the service's TLS_* settings say. Kubernetes' own gRPC
probes cannot speak TLS: with TLS on, the manifests run this instead.
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from global_utils.discovery.registry import parse_endpoint
from global_utils.grpc.tls import TlsSettings


def target_from(argv: list[str]) -> str:
    if len(argv) > 1:
        return parse_endpoint(argv[1]).target
    listen = parse_endpoint(os.environ.get("MICRO_SERVER_ADDRESS", ""), default_host="127.0.0.1")
    return f"127.0.0.1:{listen.port}"


def _channel(target: str, tls: TlsSettings | None) -> grpc.aio.Channel:
    """Plaintext, or TLS when the service serves it (its certificate names 127.0.0.1; with
    mutual TLS the probe shows the service's own certificate)."""
    if tls is None or not tls.serves_tls:
        return grpc.aio.insecure_channel(target)
    client = tls.client_tls()
    credentials = client.credentials() if client else grpc.ssl_channel_credentials()
    return grpc.aio.secure_channel(target, credentials)


async def probe(
    target: str,
    timeout: float = 2.0,
    quiet: bool = False,
    tls: TlsSettings | None = None,
    service: str = "",
) -> bool:
    async with _channel(target, tls) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
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
    try:
        tls = TlsSettings()
    except ValueError as exc:
        raise SystemExit(f"healthprobe: {exc}") from None
    service = sys.argv[2] if len(sys.argv) > 2 else ""
    raise SystemExit(0 if asyncio.run(probe(target, tls=tls, service=service)) else 1)


if __name__ == "__main__":
    main()
