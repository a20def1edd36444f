"""The NATS connection: connects in the background, reconnects forever, drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError

from global_errors import MessageKey, Unavailable
from global_utils.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# (subject, reply, header block or None, payload), straight from the wire.
RawHandler = Callable[[bytes, bytes, bytes | None, bytes], None]


class RawClient(Client):
    """nats-py's client plus two things a consumer taking thousands of messages per second
    needs: subscriptions whose messages are handed over as raw bytes (no Msg object, no header
    dict: nats-py's per-message header parsing cost more than everything else the audit
    consumer does), and one write for a whole batch of small publishes (acknowledgements).
    Connection handling (reconnects, re-subscribing, auth, TLS) stays nats-py's own."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}

    # nats-py's own hint says headers is a dict, but its parser hands over the raw header block
    # (bytes) or None: the override states what actually arrives, which mypy calls a mismatch.
    async def _process_msg(  # type: ignore[override]  # see the comment above
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._raw_handlers.get(sid)
        if handler is None:
            # nats-py's parser passes None for a message without headers, despite its hint
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]  # see above: the hint is narrower than what nats-py passes
        else:
            handler(subject, reply, headers, data)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        # subscribe() takes the next sid before its first await: register the handler for it
        # first, so not even the first message can reach the ordinary path.
        sid = self._sid + 1
        self._raw_handlers[sid] = handler
        try:
            subscription = await self.subscribe(subject)
        except BaseException:
            self._raw_handlers.pop(sid, None)
            raise
        if subscription._id != sid:  # nats-py changed how it numbers subscriptions
            self._raw_handlers[subscription._id] = self._raw_handlers.pop(sid)
        return subscription

    async def unsubscribe_raw(self, subscription: Subscription) -> None:
        self._raw_handlers.pop(subscription._id, None)
        if not self.is_closed:
            await subscription.unsubscribe()

    async def publish_each(self, subjects: Iterable[bytes], payload: bytes) -> None:
        """Publishes payload to each subject in one write (buffered while reconnecting)."""
        if self.is_closed:
            raise ConnectionClosedError
        size = b"%d" % len(payload)
        commands = b"".join(
            [b"PUB " + s + b" " + size + b"\r\n" + payload + b"\r\n" for s in subjects]
        )
        if commands:
            await self._send_command(commands)
            await self._flush_pending()


class Broker:
    """One NATS connection per process, shared by publishers and consumers."""

    def __init__(self, url: str, *, name: str) -> None:
        self._url = url
        self._name = name
        self._nc: RawClient | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._warned = False
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def client(self) -> RawClient:
        if self._nc is None:
            raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="NATS")
        return self._nc

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="nats-connect")

    async def stop(self) -> None:
        self._stopping = True
        try:
            await cancel_and_wait(self._connector)
            if self._nc is not None and not self._nc.is_closed:
                async with asyncio.timeout(5):
                    await self._nc.drain()
        except Exception as exc:  # stop() never raises
            logger.warning("NATS drain failed: %s", exc)
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await self._nc.close()
        finally:
            self._nc = None
            self._connected.clear()

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        if not self.connected:
            raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="NATS")
        await self.client.publish(subject, payload, headers=headers)

    async def _connect(self) -> None:
        # With max_reconnect_attempts=-1 nats-py keeps retrying the first connect as well.
        client = RawClient()
        await client.connect(
            self._url,
            name=self._name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = client
        if self._warned:
            logger.info("NATS reachable at %s", self._url)
        self._connected.set()

    async def _on_error(self, exc: Exception) -> None:
        if not self._connected.is_set() and not self._warned:
            self._warned = True
            logger.warning("NATS not reachable yet at %s (%s); retrying", self._url, exc)
        else:
            logger.debug("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        if not self._stopping:
            logger.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        logger.info("NATS reconnected")
