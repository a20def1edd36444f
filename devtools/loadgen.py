"""An async gRPC load generator spread over several client processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Target:
    """What each caller does: kind names a request below; address and the rest say where."""

    kind: str
    address: str = ""
    token: str = ""
    object_id: int = 0
    dsn: str = ""


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def _request_maker(
    target: Target,
) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """A coroutine factory for one request of target.kind, and a closer."""
    from global_utils.identity.principal import bearer_metadata
    from promotion.proto import promotion_pb2, promotion_pb2_grpc
    from user.proto import user_pb2, user_pb2_grpc

    if target.kind == "db":
        import asyncpg

        from user.server.repository import _COLUMNS

        pool = await asyncpg.create_pool(target.dsn, min_size=4, max_size=10)
        sql = f"SELECT {_COLUMNS} FROM appuser WHERE id = $1"
        return (lambda: pool.fetchrow(sql, target.object_id)), pool.close
    channel = grpc.aio.insecure_channel(target.address)
    md = bearer_metadata(target.token)
    users = user_pb2_grpc.UserSrvStub(channel)
    promotions = promotion_pb2_grpc.PromotionSrvStub(channel)
    by_id = user_pb2.SearchId(id=target.object_id)
    makers: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare": lambda: users.GetUserById(by_id),
        "user_by_id": lambda: users.GetUserById(by_id, metadata=md),
        "users": lambda: users.GetUsers(user_pb2.SearchParams(), metadata=md),
        "promotion_by_id": lambda: promotions.GetPromotionById(
            promotion_pb2.SearchId(id=target.object_id), metadata=md
        ),
        "auth": lambda: users.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234")),
        "create_user": lambda: users.CreateUser(_new_user(user_pb2), metadata=md),
    }
    return makers[target.kind], channel.close


def _new_user(user_pb2: Any) -> Any:
    import uuid

    user = user_pb2.User(
        firstname="Load",
        lastname="Test",
        email=f"load-{uuid.uuid4().hex}@example.com",
        pwd="pw-1234",
    )
    user.valid_from.FromSeconds(946684800)
    user.valid_thru.FromSeconds(7258118400)
    return user


async def _drive(target: Target, concurrency: int, seconds: float, max_requests: int) -> Result:
    request, close = await _request_maker(target)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
            started = time.perf_counter()
            try:
                await request()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await close()
    return Result(len(latencies), errors, elapsed, latencies)


def _worker(args: tuple[Target, int, float, int]) -> Result:
    return asyncio.run(_drive(*args))


def run_load(
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    processes: int = 2,
    max_requests: int = 10**9,
) -> Result:
    """Drives target from `processes` client processes sharing `concurrency` callers."""
    per_process = max(1, concurrency // processes)
    per_requests = max(1, max_requests // processes)
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.map(_worker, [(target, per_process, seconds, per_requests)] * processes)
    return Result(
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=max(p.seconds for p in parts),
        latencies=[lat for p in parts for lat in p.latencies],
    )
