"""The audit service's raw subscriptions and batched publishes, on a real NATS server: the
guard for the parts of nats-py RawClient relies on (see audit/server/ingest/raw_client.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from audit.server.ingest.raw_client import RawClient, RawMessage
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats
from global_utils.messaging.broker import Broker
from tests.helpers import eventually


@pytest.fixture
async def client(nats_server: EmbeddedNats, nats_keys: NatsKeys) -> AsyncIterator[RawClient]:
    # The admin's credential: the tests use subjects of their own.
    broker = Broker(
        f"nats://{nats_server.address}",
        name="raw-test",
        client_class=RawClient,
        access=nats_keys.access("admin"),
    )
    await broker.start()
    await broker.wait_connected()
    try:
        yield broker.client
    finally:
        await broker.stop()


async def test_raw_subscription_gets_wire_bytes_and_ordinary_ones_still_work(
    client: RawClient,
) -> None:
    raw: list[RawMessage] = []
    ordinary: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        await ordinary.put(msg.data)

    sub = await client.subscribe_raw("raw.*", raw.extend)
    await client.subscribe("plain", cb=collect)
    await client.publish("raw.a", b"one", reply="back", headers={"k": "v"})
    await client.publish_each([b"raw.b", b"raw.c", b"plain"], b"+ACK")
    await client.flush()

    async def all_arrived() -> bool:
        return len(raw) == 3

    await eventually(all_arrived, what="raw frames")
    assert raw[0] == (b"raw.a", b"back", b"NATS/1.0\r\nk: v\r\n\r\n", b"one")
    # frames without headers (MSG) reach the raw handler through nats-py's parser
    assert raw[1:] == [RawMessage(b"raw.b", b"", None, b"+ACK")] + [
        RawMessage(b"raw.c", b"", None, b"+ACK")
    ]
    assert await asyncio.wait_for(ordinary.get(), 5) == b"+ACK"

    await client.unsubscribe_raw(sub)
    await client.publish("raw.d", b"late")
    await client.publish("plain", b"marker")
    assert await asyncio.wait_for(ordinary.get(), 5) == b"marker"
    assert len(raw) == 3  # nothing after unsubscribing


async def test_a_flood_of_raw_frames_arrives_whole_and_in_order_beside_ordinary_ones(
    client: RawClient,
) -> None:
    # Reads from the socket end anywhere inside a frame: every one must still arrive intact.
    raw: list[RawMessage] = []
    ordinary: list[bytes] = []

    async def collect(msg: Msg) -> None:
        ordinary.append(msg.data)

    await client.subscribe_raw("flood.raw", raw.extend)
    await client.subscribe("flood.plain", cb=collect)
    n = 3000
    for i in range(n):
        payload = b"%d\r\nHMSG flood.raw 1 %d\r\n" % (i, i) + b"x" * (i % 700)
        await client.publish("flood.raw", payload, reply=f"r.{i}", headers={"n": str(i)})
        if i % 100 == 0:
            await client.publish("flood.plain", str(i).encode())
    await client.flush()

    async def all_arrived() -> bool:
        return len(raw) == n and len(ordinary) == n // 100

    await eventually(all_arrived, what="the flood")
    for i, message in enumerate(raw):
        assert message == RawMessage(
            b"flood.raw",
            f"r.{i}".encode(),
            f"NATS/1.0\r\nn: {i}\r\n\r\n".encode(),
            b"%d\r\nHMSG flood.raw 1 %d\r\n" % (i, i) + b"x" * (i % 700),
        )
    assert ordinary == [str(i).encode() for i in range(0, n, 100)]
