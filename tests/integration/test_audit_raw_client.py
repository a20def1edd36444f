"""The audit service's raw subscriptions and batched publishes, on a real NATS server: the
guard for the parts of nats-py RawClient relies on (see audit/server/raw_client.py)."""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg

from audit.server.raw_client import RawClient
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats
from global_utils.broker import Broker
from tests.helpers import eventually


async def test_raw_subscription_gets_wire_bytes_and_ordinary_ones_still_work(
    nats_server: EmbeddedNats, nats_keys: NatsKeys
) -> None:
    # The admin's credential: the test uses subjects of its own.
    broker = Broker(
        f"nats://{nats_server.address}",
        name="raw-test",
        client_class=RawClient,
        access=nats_keys.access("admin"),
    )
    await broker.start()
    await broker.wait_connected()
    try:
        client = broker.client
        raw: list[tuple[bytes, bytes, bytes | None, bytes]] = []
        ordinary: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(msg: Msg) -> None:
            await ordinary.put(msg.data)

        sub = await client.subscribe_raw("raw.*", lambda *frame: raw.append(frame))
        await client.subscribe("plain", cb=collect)
        await client.publish("raw.a", b"one", reply="back", headers={"k": "v"})
        await client.publish_each([b"raw.b", b"raw.c", b"plain"], b"+ACK")
        await client.flush()

        async def all_arrived() -> bool:
            return len(raw) == 3

        await eventually(all_arrived, what="raw frames")
        assert raw[0] == (b"raw.a", b"back", b"NATS/1.0\r\nk: v\r\n\r\n", b"one")
        assert [(s, h, d) for s, _, h, d in raw[1:]] == [(b"raw.b", None, b"+ACK")] + [
            (b"raw.c", None, b"+ACK")
        ]
        assert await asyncio.wait_for(ordinary.get(), 5) == b"+ACK"

        await client.unsubscribe_raw(sub)
        await client.publish("raw.d", b"late")
        await client.publish("plain", b"marker")
        assert await asyncio.wait_for(ordinary.get(), 5) == b"marker"
        assert len(raw) == 3  # nothing after unsubscribing
    finally:
        await broker.stop()
