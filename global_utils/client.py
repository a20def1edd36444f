"""Client side: finding a service (SERVERADDRESS or the registry) and opening a channel to it."""

from __future__ import annotations

import grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from global_errors import MessageKey, Unavailable
from global_utils.registry import (
    Endpoint,
    MdnsRegistry,
    Registry,
    StaticRegistry,
    parse_endpoint,
    pick,
)
from global_utils.settings import parse_static_registry


class ClientSettings(BaseSettings):
    """What a CLI reads: a direct address, or how to discover the service."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    serveraddress: str = ""
    micro_registry: str = "mdns"
    micro_registry_address: str = ""
    mdns_interfaces: str = ""
    discovery_timeout_seconds: float = Field(default=5.0, gt=0)
    cli_email: str = "duck@mymail.com"
    cli_password: str = ""


def client_registry(settings: ClientSettings) -> Registry:
    if settings.micro_registry == "static":
        return StaticRegistry(parse_static_registry(settings.micro_registry_address))
    interfaces = [p.strip() for p in settings.mdns_interfaces.split(",") if p.strip()]
    return MdnsRegistry(interfaces)


async def find_service(service: str, settings: ClientSettings) -> Endpoint:
    """SERVERADDRESS if set, else one registered instance of service."""
    if settings.serveraddress:
        return parse_endpoint(settings.serveraddress)
    registry = client_registry(settings)
    await registry.start()
    try:
        endpoints = await registry.resolve(service, timeout=settings.discovery_timeout_seconds)
    finally:
        await registry.stop()
    if not endpoints:
        raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency=f"{service} service")
    return pick(endpoints)


def open_channel(endpoint: Endpoint) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(endpoint.target)
