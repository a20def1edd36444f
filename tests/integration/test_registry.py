"""mDNS registration and discovery on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from global_utils.discovery.registry import Endpoint, MdnsRegistry
from tests.helpers import eventually


async def test_register_resolve_unregister_on_loopback() -> None:
    a, b, observer = (MdnsRegistry(["127.0.0.1"]) for _ in range(3))
    for registry in (a, b, observer):
        await registry.start()
    try:
        await a.register("testsvc", Endpoint("127.0.0.1", 50001))
        await b.register("testsvc", Endpoint("127.0.0.1", 50002))

        async def both_seen() -> bool:
            found = await observer.resolve("testsvc", timeout=1)
            return {e.port for e in found} == {50001, 50002}

        await eventually(both_seen, what="both instances resolved")
        assert await observer.resolve("othersvc", timeout=0.2) == []

        await a.deregister()

        async def one_left() -> bool:
            return {e.port for e in await observer.resolve("testsvc", timeout=1)} == {50002}

        await eventually(one_left, what="the deregistered instance to disappear")
        assert all(e.host == "127.0.0.1" for e in await observer.resolve("testsvc"))
    finally:
        for registry in (a, b, observer):
            await registry.stop()


async def test_wildcard_listen_address_advertises_the_mdns_interface() -> None:
    registry, observer = MdnsRegistry(["127.0.0.1"]), MdnsRegistry(["127.0.0.1"])
    await registry.start()
    await observer.start()
    try:
        await registry.register("wildsvc", Endpoint("0.0.0.0", 50003))
        check: Callable[[], Awaitable[bool]]

        async def check() -> bool:
            return await observer.resolve("wildsvc", timeout=1) == [Endpoint("127.0.0.1", 50003)]

        await eventually(check, what="wildcard registration resolved to 127.0.0.1")
    finally:
        await registry.stop()
        await observer.stop()
