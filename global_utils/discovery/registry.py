"""Service registration and discovery: multicast DNS (zeroconf) or a static address list."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import uuid
from dataclasses import dataclass
from typing import Protocol

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_TYPE = "_gotemp._tcp.local."
SERVICE_TYPE_PATTERN = r"_[a-z0-9][a-z0-9-]{0,14}\._tcp\.local\."
_SERVICE_PROPERTY = "svc"


# gRPC's own name resolvers: a target with one of these stands for every instance behind it
# (the channel resolves it, balances over the addresses and health-checks each).
BALANCED_SCHEMES = ("dns:", "ipv4:", "ipv6:")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    # e.g. "dns:///user-headless:50053" (a Kubernetes headless Service) or
    # "ipv4:10.0.0.1:50053,10.0.0.2:50053": one endpoint for all instances of a service.
    balanced_target: str = ""

    @property
    def target(self) -> str:
        """What gRPC dials: the balanced target, or host:port (IPv6 hosts bracketed)."""
        if self.balanced_target:
            return self.balanced_target
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def balanced_endpoint(target: str) -> Endpoint:
    """An endpoint for a gRPC resolver target (dns:, ipv4:, ipv6:)."""
    if not target.startswith(BALANCED_SCHEMES):
        raise ValueError(f"expected a dns:, ipv4: or ipv6: target, got {target!r}")
    return Endpoint(host="", port=0, balanced_target=target)


def parse_endpoint(address: str, default_host: str = "127.0.0.1") -> Endpoint:
    """Parses 'host:port', ':port' or '[v6]:port'."""
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected host:port, got {address!r}")
    host = host.strip("[]") or default_host
    if "/" in host:
        raise ValueError(f"expected host:port, got {address!r}")
    return Endpoint(host, int(port_text))


class Registry(Protocol):
    """Where service instances announce themselves and callers find them."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def register(self, service: str, endpoint: Endpoint) -> None: ...

    async def deregister(self) -> None: ...

    async def resolve(self, service: str, timeout: float = 3.0) -> list[Endpoint]:
        """Every known endpoint of service, waiting up to timeout for the first one."""
        ...


class StaticRegistry:
    """A fixed service → endpoints map, for networks without multicast: host:port addresses
    (MICRO_REGISTRY=static), or one balanced gRPC target per service (MICRO_REGISTRY=dns,
    where the platform's DNS, e.g. a Kubernetes headless Service, lists the instances)."""

    def __init__(self, endpoints: dict[str, list[Endpoint]]) -> None:
        self._endpoints = endpoints

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def register(self, service: str, endpoint: Endpoint) -> None:
        return None

    async def deregister(self) -> None:
        return None

    async def resolve(self, service: str, timeout: float = 3.0) -> list[Endpoint]:
        return list(self._endpoints.get(service, []))


class MdnsRegistry:
    """Registers this instance and browses for others over multicast DNS."""

    def __init__(
        self, interfaces: list[str] | None = None, service_type: str = DEFAULT_SERVICE_TYPE
    ) -> None:
        self._interfaces = interfaces or None
        self._type = service_type
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._registered: AsyncServiceInfo | None = None
        self._known: dict[str, tuple[str, list[Endpoint]]] = {}
        self._changed = asyncio.Condition()
        self._lookups: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        interfaces: list[str] | InterfaceChoice = self._interfaces or InterfaceChoice.All
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)

    async def stop(self) -> None:
        try:
            await self.deregister()
            if self._browser is not None:
                await self._browser.async_cancel()
            await cancel_and_wait(*self._lookups)
            if self._zc is not None:
                await self._zc.async_close()
        except Exception:  # stop() never raises
            logger.exception("mDNS shutdown failed")
        finally:
            self._zc = None
            self._browser = None

    async def register(self, service: str, endpoint: Endpoint) -> None:
        zc = self._require()
        instance = f"{service}-{uuid.uuid4().hex[:12]}"
        # Reads the host's interfaces: not on the event loop.
        hosts = await asyncio.to_thread(self._advertised_hosts, endpoint)
        info = AsyncServiceInfo(
            self._type,
            f"{instance}.{self._type}",
            addresses=[socket.inet_aton(host) for host in hosts],
            port=endpoint.port,
            properties={_SERVICE_PROPERTY: service},
            server=f"{instance}.local.",
        )
        await zc.async_register_service(info)
        self._registered = info
        logger.debug("registered %s as %s", endpoint.target, info.name)

    async def deregister(self) -> None:
        if self._registered is not None and self._zc is not None:
            info, self._registered = self._registered, None
            await self._zc.async_unregister_service(info)

    async def resolve(self, service: str, timeout: float = 3.0) -> list[Endpoint]:
        self._ensure_browsing()

        def matches() -> list[Endpoint]:
            return [ep for svc, eps in self._known.values() if svc == service for ep in eps]

        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(matches)
            except TimeoutError:
                return []
            return matches()

    def _advertised_hosts(self, endpoint: Endpoint) -> list[str]:
        if endpoint.host not in ("0.0.0.0", "::", ""):
            return [endpoint.host]
        if self._interfaces:
            return list(self._interfaces)
        return host_addresses()

    def _require(self) -> AsyncZeroconf:
        if self._zc is None:
            raise RuntimeError("registry not started")
        return self._zc

    def _ensure_browsing(self) -> None:
        if self._browser is None:
            zc = self._require()
            self._browser = AsyncServiceBrowser(zc.zeroconf, self._type, handlers=[self._on_change])

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            task = asyncio.ensure_future(self._forget(name))
        else:
            task = asyncio.ensure_future(self._look_up(zeroconf, service_type, name))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _forget(self, name: str) -> None:
        async with self._changed:
            self._known.pop(name, None)
            self._changed.notify_all()

    async def _look_up(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, 3000):
            return
        service = (info.properties or {}).get(_SERVICE_PROPERTY.encode())
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not service or not addresses or info.port is None:
            return
        async with self._changed:
            self._known[name] = (service.decode(), [Endpoint(a, info.port) for a in addresses])
            self._changed.notify_all()


def host_addresses() -> list[str]:
    """This host's IPv4 addresses for a server listening on all of them: every non-loopback
    one (a container's compose-network address), or loopback when that is all there is."""
    addresses = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str)  # IPv6 entries are tuples
    ]
    outside = [a for a in addresses if not a.startswith("127.")]
    return outside or [a for a in addresses if a.startswith("127.")] or ["127.0.0.1"]


def pick(endpoints: list[Endpoint]) -> Endpoint:
    """One endpoint at random, spreading callers over instances."""
    return random.choice(endpoints)
