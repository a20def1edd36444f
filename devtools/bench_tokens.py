"""What one token check costs promotion and audit: a cache hit, a cache miss verified locally
(EdDSA with the user service's published key), and a cache miss asked of the user service
(ValidateToken, how they checked tokens before). `make bench-tokens`; the user service runs
in-process against an embedded PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from devtools.databases import provision_databases, service_db_settings
from devtools.dev_secrets import NatsKeys, make_nats_keys
from devtools.nats_stack import start_nats
from devtools.stack import EmbeddedNats, EmbeddedPostgres, free_port
from global_utils.config.settings import RemoteAuthSettings
from global_utils.discovery.registry import StaticRegistry, parse_endpoint
from global_utils.grpc.client import ServiceChannels
from global_utils.identity.token_cache import CachingVerifier, TokenCache
from global_utils.identity.token_keys import LocalTokenVerifier
from user.client.auth import PublicKeyFetcher, RemoteTokenVerifier
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings
from user.server.signing_keys import new_signing_key_pem

ROUNDS = 2000
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "token-results.json"


async def per_call_us(check: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> float:
    """Median of 5 runs of `rounds` sequential calls, in microseconds per call."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await check()
        runs.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(runs)


async def measure(
    folder: Path, pg: EmbeddedPostgres, broker: EmbeddedNats, nats_keys: NatsKeys
) -> dict[str, float]:
    port = free_port()
    # flat variable names, each going to its group (GroupedSettings)
    values: dict[str, Any] = {
        "micro_server_address": f"127.0.0.1:{port}",
        "micro_registry": "static",
        "micro_registry_address": f"user=127.0.0.1:{port}",
        "micro_broker_address": broker.address,
        **service_db_settings(pg, "user"),
        "jwt_private_key": new_signing_key_pem(),
        "audit_signing_key": "bench-audit-key-" + "0" * 32,
        "audit_signing_key_id": "user-bench",
        "bcrypt_rounds": 4,
        "log_level": "WARNING",
        "nats_nkey_seed_file": nats_keys.seed_file("user"),
    }
    settings = UserSettings(**values)
    host = build(settings)
    await host.start()
    await host.ready.wait()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await user_pb2_grpc.UserSrvStub(channel).Auth(
                user_pb2.User(email="duck@mymail.com", pwd="1234")
            )
        token = reply.token
        registry = StaticRegistry({"user": [parse_endpoint(f"127.0.0.1:{port}")]})
        users = ServiceChannels(registry, "user")
        await users.start()
        auth = RemoteAuthSettings()
        local = LocalTokenVerifier(PublicKeyFetcher(users, auth.auth_timeout_seconds).fetch)
        remote = RemoteTokenVerifier(users)
        cached = CachingVerifier(local, TokenCache())
        await local.verify(token)  # keys fetched once, as a running service holds them
        await cached.verify(token)
        results = {
            "cache hit (µs)": await per_call_us(lambda: cached.verify(token)),
            "cache miss, verified locally (µs)": await per_call_us(lambda: local.verify(token)),
            "cache miss, ValidateToken round trip (µs)": await per_call_us(
                lambda: remote.verify(token), rounds=ROUNDS // 4
            ),
        }
        await users.stop()
        return results
    finally:
        await host.stop()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gotemp-bench-tokens-") as folder:
        root = Path(folder)
        pg = EmbeddedPostgres(root / "pg", durable=False).start()
        nats_keys = make_nats_keys(root / "nats-keys")
        broker = start_nats(root / "nats", nats_keys)
        try:
            provision_databases(pg)
            results = asyncio.run(measure(root, pg, broker, nats_keys))
        finally:
            broker.stop()
            pg.stop()
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.1f}")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
