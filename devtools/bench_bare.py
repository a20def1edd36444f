"""The transport ceiling: a bare grpc.aio server answering GetUserById with a fixed message
(no interceptors, no database). Usage: python -m devtools.bench_bare PORT"""

from __future__ import annotations

import asyncio
import sys

import grpc

from user.proto import user_pb2, user_pb2_grpc

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


class Bare(user_pb2_grpc.UserSrvServicer):
    async def GetUserById(
        self, request: user_pb2.SearchId, context: grpc.aio.ServicerContext
    ) -> user_pb2.User:
        return FIXED


async def serve(port: int) -> None:
    server = grpc.aio.server()
    user_pb2_grpc.add_UserSrvServicer_to_server(Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("bare ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
