"""The NATS connection: connects in the background, reconnects forever, drains on stop."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client

from global_errors import MessageKey, Unavailable
from global_utils.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


class Broker:
    """One NATS connection per process, shared by publishers and consumers."""

    def __init__(self, url: str, *, name: str) -> None:
        self._url = url
        self._name = name
        self._nc: Client | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._warned = False
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def client(self) -> Client:
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
        self._nc = await nats.connect(
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
