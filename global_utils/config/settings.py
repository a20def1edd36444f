"""The settings groups every service shares (registry, broker, server, database, tokens) and
ServiceSettings, the groups every service process reads."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Literal

import nkeys
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from global_errors import Language
from global_utils.config.groups import GROUP_CONFIG, GroupedSettings
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
from global_utils.observability.metrics import MetricsSettings
from global_utils.observability.tracing_setup import TracingSettings


class RegistrySettings(BaseSettings):
    """How a process finds others (and, for services, registers): services and CLIs alike."""

    model_config = GROUP_CONFIG

    micro_registry: Literal["mdns", "static", "dns"] = "mdns"
    """How services are found: mdns (multicast DNS on the local network), static (the
    addresses in MICRO_REGISTRY_ADDRESS), dns (the gRPC targets in MICRO_REGISTRY_ADDRESS,
    balanced over what DNS answers)."""
    micro_registry_address: str = ""
    """static: `user=host:port,user=host:port,promotion=host:port` (networks without
    multicast); dns: one gRPC target per service, balanced round robin with health checks,
    `user=dns:///user-headless:50053,promotion=ipv4:10.0.0.1:50051,10.0.0.2:50051`."""
    mdns_interfaces: str = ""
    """IPv4 addresses of the interfaces mDNS uses, comma-separated; empty: every one."""
    mdns_service_type: str = Field(default=DEFAULT_SERVICE_TYPE, pattern=SERVICE_TYPE_PATTERN)
    """The mDNS service type: services see each other only within one type, so suites sharing
    a network can keep apart."""

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

    model_config = GROUP_CONFIG

    micro_broker_address: str = "127.0.0.1:4222"
    """NATS host:port (or nats:// URL); several comma-separated for the servers of a cluster."""
    nats_nkey_seed: str = Field(default="", repr=False)
    """This process's NATS nkey seed (`SU...`; the server lists its public key); empty: no
    credential, which the repository's NATS refuses."""
    nats_nkey_seed_file: Path | None = None
    """A file holding NATS_NKEY_SEED (a secret); `#` comment lines are skipped."""
    nats_tls_ca_file: Path | None = None
    """The CA that NATS's certificate is verified with; set, the connection is TLS (the
    handshake first, before the server speaks)."""
    nats_tls_server_name: str = ""
    """The name NATS's certificate must carry; empty: the host of the address dialled."""

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


class ServiceBrokerSettings(BrokerSettings):
    """A service's connection to NATS (the provisioner's has no MICRO_BROKER)."""

    micro_broker: Literal["nats"] = "nats"
    """The message broker; NATS is the only one."""


class ServerSettings(BaseSettings):
    """How a service process serves: its gRPC address and side port, language, logs, shutdown,
    health and connection age. Each service subclasses it for its own default address."""

    model_config = GROUP_CONFIG

    micro_server_address: str = ":0"
    """The gRPC listen address, host:port (host empty: every interface; port 0: any free one)."""
    http_address: str = "127.0.0.1:0"
    """The HTTP side port serving /metrics (and on the user service /.well-known/jwks.json),
    host:port; port 0: any free one, named in the ready line (containers: `:8080`, never
    published)."""
    app_language: Language = Language.EN
    """The language of error messages sent to clients."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level logged (DEBUG logs every call)."""
    shutdown_grace_seconds: float = 5.0
    """How long calls in flight may finish after a stop is asked (and after a connection's
    maximum age)."""
    health_check_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often a ready service checks its database for its health status."""
    max_connection_age_seconds: float = Field(default=60.0, gt=0, le=86400)
    """Clients' connections are closed (gracefully) after this long, so balanced clients
    re-resolve and spread over replicas started since (MICRO_REGISTRY=dns)."""

    @field_validator("micro_server_address", "http_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_endpoint(value, default_host="0.0.0.0")
        return value

    @property
    def listen(self) -> Endpoint:
        return parse_endpoint(self.micro_server_address, default_host="0.0.0.0")


class ServiceSettings(GroupedSettings):
    """What every service process reads; each service's settings add their own groups."""

    server: ServerSettings
    tls: TlsSettings
    registry: RegistrySettings
    broker: ServiceBrokerSettings
    tracing: TracingSettings
    metrics: MetricsSettings


class PostgresSettings(BaseSettings):
    """The database of the user and promotion services: where it is, the password of the role in
    POSTGRES_CONNECT (POSTGRES_PASSWORD or, from a secret, POSTGRES_PASSWORD_FILE; none for a
    server that trusts the connection; kept out of the URL, which may appear in log lines), and
    the pool's size."""

    model_config = GROUP_CONFIG

    postgres_connect: str = Field(min_length=1)
    """The PostgreSQL URL of the service's database as its runtime role (no password here);
    add `?sslmode=verify-full&sslrootcert=<CA file>` for TLS."""
    postgres_password: str = Field(default="", repr=False)
    """The password of POSTGRES_CONNECT's role."""
    postgres_password_file: Path | None = None
    """A file holding POSTGRES_PASSWORD (a secret)."""
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    """The most database connections the service holds at once."""

    @model_validator(mode="after")
    def _read_postgres_password(self) -> PostgresSettings:
        self.postgres_password = read_secret(
            "POSTGRES_PASSWORD", self.postgres_password, self.postgres_password_file
        )
        return self


class TokenCacheSettings(BaseSettings):
    """How verified tokens are remembered (never past their own expiry)."""

    model_config = GROUP_CONFIG

    token_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    """How long a verified token is remembered (never past its expiry); 0: not at all. The
    user service remembers only signatures: it still checks the stored user on every call."""
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    """The most tokens remembered at once."""


class RemoteAuthSettings(TokenCacheSettings):
    """For services whose callers' tokens come from the user service: how they are verified and
    remembered (the TLS spoken with the user service is the process's own, settings.tls)."""

    auth_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """Deadline for finding and asking the user service."""
    token_verification: Literal["local", "remote"] = "local"
    """local: verify with the user service's published keys (fetched once, again for an
    unknown kid). remote: ask its ValidateToken for every token not cached, which refuses a
    deactivated or deleted user's token at once, at a round trip per check."""
    revocation_feed_max_age_seconds: float = Field(default=3.0, ge=0.5, le=60)
    """Revoked users' tokens are refused as the REVOCATIONS bucket says; without news from it
    for longer than this, every token is checked with the user service until it is back."""


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
