"""Typed configuration from environment variables, validated once at start."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Literal

import nkeys
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from global_errors import Language
from global_utils.config.secrets import nkey_seed, read_secret
from global_utils.discovery.registry import (
    DEFAULT_SERVICE_TYPE,
    SERVICE_TYPE_PATTERN,
    Endpoint,
    MdnsRegistry,
    Registry,
    StaticRegistry,
    balanced_endpoint,
    parse_endpoint,
)
from global_utils.grpc.tls import TlsSettings
from global_utils.messaging.broker import BrokerAccess
from global_utils.observability.tracing_setup import TracingSettings


class RegistrySettings(TlsSettings):
    """How a process finds others (and, for services, registers), and the TLS it speaks with
    them: services and CLIs alike."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    micro_registry: Literal["mdns", "static", "dns"] = "mdns"
    # static: "user=host:port,user=host:port,promotion=host:port" (networks without multicast)
    # dns: "user=dns:///user-headless:50053,promotion=ipv4:10.0.0.1:50051,10.0.0.2:50051"
    micro_registry_address: str = ""
    mdns_interfaces: str = ""
    # Services see each other only within one type: suites sharing a network can keep apart.
    mdns_service_type: str = Field(default=DEFAULT_SERVICE_TYPE, pattern=SERVICE_TYPE_PATTERN)

    @field_validator("mdns_interfaces")
    @classmethod
    def _check_interfaces(cls, value: str) -> str:
        for part in _split(value):
            ipaddress.IPv4Address(part)
        return value

    @model_validator(mode="after")
    def _check_registry_address(self) -> RegistrySettings:
        try:
            parse_registry_address(self.micro_registry_address, self.micro_registry)
        except ValueError as exc:
            raise ValueError(f"MICRO_REGISTRY_ADDRESS: {exc}") from None
        return self

    @property
    def interfaces(self) -> list[str]:
        return _split(self.mdns_interfaces)

    @property
    def static_endpoints(self) -> dict[str, list[Endpoint]]:
        return parse_registry_address(self.micro_registry_address, self.micro_registry)

    def create_registry(self) -> Registry:
        if self.micro_registry in ("static", "dns"):
            return StaticRegistry(self.static_endpoints)
        return MdnsRegistry(self.interfaces, self.mdns_service_type)


class BrokerSettings(BaseSettings):
    """Where NATS is and how this process connects: its nkey seed (NATS_NKEY_SEED or
    NATS_NKEY_SEED_FILE; the server lists the public key, nats/nats.conf) and, optionally,
    TLS verified with NATS_TLS_CA_FILE against NATS_TLS_SERVER_NAME (default: the host of
    the address dialled)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    micro_broker_address: str = "127.0.0.1:4222"
    nats_nkey_seed: str = Field(default="", repr=False)
    nats_nkey_seed_file: Path | None = None
    nats_tls_ca_file: Path | None = None
    nats_tls_server_name: str = ""

    @model_validator(mode="after")
    def _check_broker_access(self) -> BrokerSettings:
        self.nats_nkey_seed = nkey_seed(
            read_secret("NATS_NKEY_SEED", self.nats_nkey_seed, self.nats_nkey_seed_file)
        )
        if self.nats_nkey_seed:
            try:
                nkeys.from_seed(bytearray(self.nats_nkey_seed.encode()))
            except Exception:  # nkeys raises its own errors, and binascii's for bad base32
                raise ValueError("NATS_NKEY_SEED: not an nkey seed (SU...)") from None
        if self.nats_tls_ca_file is not None:
            try:
                self.nats_tls_ca_file.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"NATS_TLS_CA_FILE: cannot read {self.nats_tls_ca_file}: {exc.strerror}"
                ) from None
        return self

    @property
    def broker_url(self) -> str:
        """nats://host:port, or several comma-separated (the servers of a NATS cluster)."""
        return ",".join(
            address if "://" in address else f"nats://{address}"
            for address in _split(self.micro_broker_address)
        )

    def broker_access(self, inbox_owner: str) -> BrokerAccess:
        """This process's credentials; its replies arrive under _INBOX.<inbox_owner>, the
        prefix the server's permissions give that service."""
        tls = None
        if self.nats_tls_ca_file is not None:
            tls = ssl.create_default_context(cafile=str(self.nats_tls_ca_file))
        return BrokerAccess(
            nkey_seed=self.nats_nkey_seed or None,
            inbox_prefix=f"_INBOX.{inbox_owner}",
            tls=tls,
            tls_hostname=self.nats_tls_server_name or None,
        )


class ServiceSettings(BrokerSettings, RegistrySettings, TracingSettings):
    """What every service process reads: listen address, broker, registry, language, tracing."""

    micro_server_address: str = ":0"
    micro_broker: Literal["nats"] = "nats"
    app_language: Language = Language.EN
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace_seconds: float = 5.0
    # how often a ready service checks its database for its health status
    health_check_seconds: float = Field(default=2.0, gt=0, le=60)
    # Clients' connections are closed (gracefully) after this long, so balanced clients
    # re-resolve and spread over replicas started since (MICRO_REGISTRY=dns).
    max_connection_age_seconds: float = Field(default=60.0, gt=0, le=86400)

    @field_validator("micro_server_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_endpoint(value, default_host="0.0.0.0")
        return value

    @property
    def listen(self) -> Endpoint:
        return parse_endpoint(self.micro_server_address, default_host="0.0.0.0")


class PostgresPasswordSettings(BaseSettings):
    """The password of the role in POSTGRES_CONNECT (the user and promotion services' runtime
    roles): POSTGRES_PASSWORD or, from a secret, POSTGRES_PASSWORD_FILE; none for a server that
    trusts the connection. Kept out of the URL, which may appear in log lines."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    postgres_password: str = Field(default="", repr=False)
    postgres_password_file: Path | None = None

    @model_validator(mode="after")
    def _read_postgres_password(self) -> PostgresPasswordSettings:
        self.postgres_password = read_secret(
            "POSTGRES_PASSWORD", self.postgres_password, self.postgres_password_file
        )
        return self


class HttpSideSettings(BaseSettings):
    """The HTTP side port (global_utils.grpc.http_side): host:port, port 0 for any free one."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    http_address: str = "127.0.0.1:0"

    @field_validator("http_address")
    @classmethod
    def _check_http_address(cls, value: str) -> str:
        parse_endpoint(value, default_host="0.0.0.0")
        return value


class TokenCacheSettings(BaseSettings):
    """How verified tokens are remembered (never past their own expiry)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    token_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)


class RemoteAuthSettings(TokenCacheSettings, TlsSettings):
    """For services whose callers' tokens come from the user service."""

    # Deadline for finding and asking the user service.
    auth_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # local: verify with the user service's published keys (fetched once, again for an
    # unknown kid). remote: ask its ValidateToken for every token not cached, which refuses a
    # deactivated or deleted user's token at once, at a round trip per check.
    token_verification: Literal["local", "remote"] = "local"


def parse_registry_address(value: str, mode: str = "static") -> dict[str, list[Endpoint]]:
    """MICRO_REGISTRY_ADDRESS for the static and dns modes.

    static: 'user=h:1,user=h:2,promotion=h:3' -> {'user': [h:1, h:2], 'promotion': [h:3]}.
    dns: one gRPC target per service; an ipv4:/ipv6: target's own commas continue it:
    'user=ipv4:a:1,b:1,promotion=dns:///p:2' -> {'user': [ipv4:a:1,b:1], 'promotion': [...]}.
    Other modes ignore the value."""
    if mode not in ("static", "dns"):
        return {}
    items: list[tuple[str, str]] = []
    for item in _split(value):
        name, sep, address = item.partition("=")
        if not sep and mode == "dns" and items and items[-1][1].startswith(("ipv4:", "ipv6:")):
            items[-1] = (items[-1][0], f"{items[-1][1]},{item}")
            continue
        if not sep or not name.strip():
            expected = "service=host:port" if mode == "static" else "service=dns:///name:port"
            raise ValueError(f"expected {expected}, got {item!r}")
        items.append((name.strip(), address.strip()))
    mapping: dict[str, list[Endpoint]] = {}
    for name, address in items:
        if mode == "dns":
            if name in mapping:
                raise ValueError(f"one target per service in dns mode, {name!r} has two")
            mapping[name] = [balanced_endpoint(address)]
        else:
            mapping.setdefault(name, []).append(parse_endpoint(address))
    return mapping


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
