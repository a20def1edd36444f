"""The read path's ceilings: a bare grpc.aio server (no interceptors) answering GetUserById.
Without a database it answers a fixed message (the transport alone); with BENCH_BARE_DSN set it
runs what the user service runs for the call, nothing else: the repository's one round trip
(the caller's standing and the row) over a pool of 4 asyncpg connections, and the servicer's
conversion to the reply (transport + query). The password comes from PGPASSWORD, which
asyncpg reads. Usage: python -m devtools.bench_bare PORT"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import grpc

from user.proto import user_pb2, user_pb2_grpc
from user.server.repository import UserRepository
from user.server.servicer import user_to_proto

FIXED = user_pb2.User(
    id=4037126335821251585,
    firstname="Super",
    lastname="Duck",
    name="Super Duck",
    email="duck@mymail.com",
    company="DC",
    active=True,
)
FIXED.valid_from.FromSeconds(946684800)
FIXED.valid_thru.FromSeconds(7258118400)
FIXED.create_date.GetCurrentTime()
FIXED.update_date.GetCurrentTime()
POOL_SIZE = 4


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query on release (the queries here set no session state)."""


class Bare(user_pb2_grpc.UserSrvServicer):
    async def GetUserById(
        self, request: user_pb2.SearchId, context: grpc.aio.ServicerContext
    ) -> user_pb2.User:
        return FIXED


class BareWithQuery(user_pb2_grpc.UserSrvServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def GetUserById(
        self, request: user_pb2.SearchId, context: grpc.aio.ServicerContext
    ) -> user_pb2.User:
        async with self._pool.acquire() as conn:
            # the caller is the user asked for (the benchmark's token is that user's)
            _, user = await UserRepository(conn).get_for(request.id, request.id)
        if user is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details("no such user")
            return user_pb2.User()
        return user_to_proto(user)


async def serve(port: int, dsn: str) -> None:
    server = grpc.aio.server()
    pool = None
    if dsn:
        # Given back without asyncpg's RESET round trip, as the service's pool does
        # (global_utils.data.database): the ceiling runs no query the service does not.
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session
        )
        user_pb2_grpc.add_UserSrvServicer_to_server(BareWithQuery(pool), server)
    else:
        user_pb2_grpc.add_UserSrvServicer_to_server(Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("bare ready", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        if pool is not None:
            await pool.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), os.environ.get("BENCH_BARE_DSN", "")))
