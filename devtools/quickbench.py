"""A quick measurement of the user service (not the benchmark suite): Auth and GetUserById
rates against an in-process service on embedded PostgreSQL/NATS. Usage:
python -m devtools.quickbench [seconds]"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.auth import bearer_metadata
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings


async def drive(call, concurrency: int, seconds: float) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Runs call from concurrency workers for seconds; returns (rate/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
    return len(latencies) / elapsed, statistics.median(ordered) * 1000, p99 * 1000


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="gotemp-quickbench-") as folder:
        pg = EmbeddedPostgres(Path(folder) / "pg").start()
        pg.apply_init_scripts()
        nats = EmbeddedNats(Path(folder) / "nats").start()
        settings = UserSettings(
            postgres_connect=pg.dsn("appuser"),
            micro_server_address="127.0.0.1:0",
            micro_broker_address=nats.address,
            micro_registry="static",
            jwt_key=secrets.token_hex(32),
            log_level="WARNING",
        )
        host = build(settings)
        await host.start()
        await host.ready.wait()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
                stub = user_pb2_grpc.UserSrvStub(channel)
                login = user_pb2.User(email="duck@mymail.com", pwd="1234")
                token = (await stub.Auth(login)).token
                me = await stub.ValidateToken(user_pb2.Token(token=token))
                md = bearer_metadata(token)
                by_id = user_pb2.SearchId(id=int(me.e_uid))
                rows = [
                    ("GetUserById, 32 callers", lambda: stub.GetUserById(by_id, metadata=md), 32),
                    ("Auth (bcrypt cost 10), 8 callers", lambda: stub.Auth(login), 8),
                ]
                print(f"{'call':<36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
                for name, call, concurrency in rows:
                    rate, p50, p99 = await drive(call, concurrency, seconds)
                    print(f"{name:<36} {rate:>8.0f} {p50:>8.2f} {p99:>8.2f}")
        finally:
            await host.stop()
            nats.stop()
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
