"""The NATS connection: connects in the background, reconnects forever, drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Generic, TypeVar, overload

from nats.aio.client import Client

from global_errors import MessageKey, Unavailable
from global_utils.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

ClientT = TypeVar("ClientT", bound=Client)


class Broker(Generic[ClientT]):
    """One NATS connection per process, shared by publishers and consumers.

    The connection is an instance of the client class the composition root hands in: nats-py's
    Client unless a service needs a subclass of it (the audit service's raw-bytes client)."""

    @overload
    def __init__(self: Broker[Client], url: str, *, name: str) -> None: ...

    @overload
    def __init__(self, url: str, *, name: str, client_class: type[ClientT]) -> None: ...

    # The overloads above type what callers get; the default makes a Broker[Client].
    def __init__(self, url: str, *, name: str, client_class: type[Any] = Client) -> None:
        self._url = url
        self._name = name
        self._client_class: type[ClientT] = client_class
        self._nc: ClientT | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._warned = False
        self._stopping = False

    @property
    def client(self) -> ClientT:
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

    async def _connect(self) -> None:
        # With max_reconnect_attempts=-1 nats-py keeps retrying the first connect as well.
        client = self._client_class()
        await client.connect(
            # several servers (a cluster): nats-py tries them in turn, and learns the rest
            # of the cluster from the first one it reaches
            servers=self._url.split(","),
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
