"""The NATS connection: connects in the background, reconnects forever, drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from nats.aio.client import Client
from nats.errors import AuthorizationError

from global_errors import MessageKey, Unavailable
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

ClientT = TypeVar("ClientT", bound=Client)
# nats-py's lower-cased text of the server's "Permissions Violation" error
_PERMISSIONS_VIOLATION = "permissions violation"


@dataclass(frozen=True)
class BrokerAccess:
    """Who a process is to NATS and what its permissions expect of it: its nkey seed (None:
    no credentials), the inbox prefix its replies arrive on (the server allows each service
    only its own), and TLS (a context verifying the server; tls_hostname: the name its
    certificate must carry when the address is not it). With TLS the client starts the
    handshake before the server speaks (the server is configured so, nats/nats-tls.conf):
    otherwise nats-py would carry on in clear with anyone who says TLS is not needed."""

    nkey_seed: str | None = None
    inbox_prefix: str = "_INBOX"
    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = None

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"inbox_prefix": self.inbox_prefix}
        if self.nkey_seed is not None:
            options["nkeys_seed_str"] = self.nkey_seed
        if self.tls is not None:
            options["tls"] = self.tls
            options["tls_handshake_first"] = True
            if self.tls_hostname:
                options["tls_hostname"] = self.tls_hostname
        return options


class Broker(Generic[ClientT]):
    """One NATS connection per process, shared by publishers and consumers.

    The connection is an instance of the client class the composition root hands in: nats-py's
    Client unless a service needs a subclass of it (the audit service's raw-bytes client)."""

    @overload
    def __init__(
        self: Broker[Client], url: str, *, name: str, access: BrokerAccess | None = ...
    ) -> None: ...

    @overload
    def __init__(
        self, url: str, *, name: str, client_class: type[ClientT], access: BrokerAccess | None = ...
    ) -> None: ...

    # The overloads above type what callers get; the default makes a Broker[Client].
    def __init__(
        self,
        url: str,
        *,
        name: str,
        client_class: type[Any] = Client,
        access: BrokerAccess | None = None,
    ) -> None:
        self._url = url
        self._name = name
        self._access = access or BrokerAccess()
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
            **self._access.connect_options(),
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = client
        if self._warned:
            logger.info("NATS reachable at %s", self._url)
        self._connected.set()

    async def _on_error(self, exc: Exception) -> None:
        if _PERMISSIONS_VIOLATION in str(exc).lower():
            # A subject this service's NATS user may not use: the server configuration and
            # the code disagree, which no retry fixes.
            logger.error("NATS refused %s: %s", self._name, exc)
        elif not self._connected.is_set() and not self._warned:
            self._warned = True
            if isinstance(exc, AuthorizationError) or "authorization" in str(exc).lower():
                logger.warning(
                    "NATS at %s refused %s's credentials (NATS_NKEY_SEED_FILE and the"
                    " server's public keys must match); retrying",
                    self._url,
                    self._name,
                )
            else:
                logger.warning("NATS not reachable yet at %s (%s); retrying", self._url, exc)
        else:
            logger.debug("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        if not self._stopping:
            logger.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        logger.info("NATS reconnected")
