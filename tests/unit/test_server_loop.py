"""The servers' event loop (global_utils/runtime/server_loop.py): host name lookups answer as
asyncio's do, and one that never answers does not hold the process's end."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from devtools.stack import free_port
from global_utils.runtime.server_loop import run_server


def test_lookups_answer_and_fail_as_asyncio_s_do() -> None:
    found: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        found.append(await loop.getaddrinfo("127.0.0.1", 5432, type=socket.SOCK_STREAM))
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("127.0.0.1", "no-such-service-name", type=socket.SOCK_STREAM)
        # and what opening a connection does with it (asyncpg, nats-py): refused, not hung
        # (an OSError: "localhost" may name both 127.0.0.1 and ::1, each refusing)
        with pytest.raises(OSError):
            await asyncio.open_connection("localhost", free_port())

    run_server(main())
    assert found == [socket.getaddrinfo("127.0.0.1", 5432, type=socket.SOCK_STREAM)]


def test_a_lookup_that_never_answers_does_not_hold_the_end(monkeypatch) -> None:
    asked, release = threading.Event(), threading.Event()

    def unanswered(*_: object) -> list[object]:
        asked.set()
        release.wait()
        return []

    monkeypatch.setattr(socket, "getaddrinfo", unanswered)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lookup = asyncio.create_task(loop.getaddrinfo("db.gone.invalid", 5432))
        assert await asyncio.to_thread(asked.wait, 30)
        assert not lookup.done()
        # the service stops here; its lookup is still waiting for the resolver

    done = threading.Event()

    def stop_the_service() -> None:
        run_server(main())
        done.set()

    threading.Thread(target=stop_the_service, daemon=True).start()
    try:
        # asyncio.run would wait for the lookup's thread (its default executor) for as long as
        # the resolver takes; 30 s is far beyond what returning takes, far below forever
        assert done.wait(30), "run_server waited for a lookup that never answers"
        assert not release.is_set()
    finally:
        release.set()
    lookups = [t for t in threading.enumerate() if t.name == "host-lookup"]
    assert all(t.daemon for t in lookups)
    for thread in lookups:  # answered now, into a closed loop: it ends quietly
        thread.join(30)
        assert not thread.is_alive()
