"""The event loop a server process runs on: asyncio's, except that host name lookups run in
daemon threads.

asyncio resolves a host name (for every connection asyncpg and nats-py open) with
socket.getaddrinfo in its default executor, and asyncio.run waits for that executor's threads
before the process ends. A lookup of a host that is gone (a database container removed while
the service reconnects to it) or of a DNS server that does not answer lasts the resolver's
timeouts, tens of seconds: the service has stopped and logged it, yet its process outlives a
container's stop grace and is killed. Here each lookup runs in a daemon thread of its own, which
the process does not wait for."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any

# What socket.getaddrinfo returns (typeshed spells its tuples out in detail).
AddressInfo = list[Any]


class ServerLoop(asyncio.SelectorEventLoop):
    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> AddressInfo:
        answer: asyncio.Future[AddressInfo] = self.create_future()

        def settle(result: AddressInfo | Exception) -> None:
            if answer.done():  # the caller stopped waiting (cancelled)
                return
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)

        def look_up() -> None:
            result: AddressInfo | Exception
            try:
                result = socket.getaddrinfo(host, port, family, type, proto, flags)
            except Exception as exc:
                result = exc
            try:
                self.call_soon_threadsafe(settle, result)
            except RuntimeError:
                pass  # the loop has closed: nobody waits for this answer any more

        threading.Thread(target=look_up, name="host-lookup", daemon=True).start()
        return await answer


def run_server(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run(main) on a ServerLoop."""
    with asyncio.Runner(loop_factory=ServerLoop) as runner:
        runner.run(main)
