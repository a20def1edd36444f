"""The suite description (suite.toml at the repository root): the one place that lists the
services, read into a typed model every generator and devtools runner uses.

`load_suite()` reads and validates it; a `Service` carries the names every template needs
(compose services and secrets, environment variables, NATS users and inboxes, database roles),
so no template derives one by hand. Runtime code never reads suite.toml: what the
provisioning step needs at run time is the generated provision/suite_databases.py.
"""

from __future__ import annotations

import keyword
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devtools.paths import REPO_ROOT

SUITE_FILE = REPO_ROOT / "suite.toml"
DEV_MARK = "DEVELOPMENT-ONLY"
# Lowercase letters and digits: a Python package, a compose service (<name>srv), a NATS
# subject token, an environment variable part and a Kubernetes name (no "_" there) at once.
_NAME = re.compile(r"[a-z][a-z0-9]*")
_DATABASE = re.compile(r"[a-z][a-z0-9_]*")
_GRPC_SERVICE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.[A-Z][A-Za-z0-9]*")
_SETTINGS_PREFIX = re.compile(r"[A-Z][A-Z0-9_]*")
# Kubernetes quantities as the manifests write them: cores or millicores, and bytes with a
# binary suffix.
_CPU = re.compile(r"[1-9][0-9]*m?")
_MEMORY = re.compile(r"[1-9][0-9]*(Ki|Mi|Gi)")
# Top-level folders and packages of the repository a service folder would collide with, and
# names the wiring already uses for something else (the NATS admin user, the database servers).
RESERVED_NAMES = frozenset(
    {
        "admin",
        "deploy",
        "devtools",
        "docs",
        "global",
        "nats",
        "postgres",
        "provision",
        "secrets",
        "templates",
        "tests",
        "timescaledb",
    }
)


class Resources(BaseModel):
    """A container's CPU and memory (a request or a limit), as Kubernetes quantities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: str
    memory: str

    @field_validator("cpu")
    @classmethod
    def _valid_cpu(cls, value: str) -> str:
        if not _CPU.fullmatch(value):
            raise ValueError(f'cpu {value!r} must be whole cores ("2") or millicores ("500m")')
        return value

    @field_validator("memory")
    @classmethod
    def _valid_memory(cls, value: str) -> str:
        if not _MEMORY.fullmatch(value):
            raise ValueError(f"memory {value!r} must be a number with Ki, Mi or Gi")
        return value

    @property
    def whole_cpus(self) -> int:
        """The CPUs a process pool may use under this limit (at least one)."""
        if self.cpu.endswith("m"):
            return max(1, int(self.cpu[:-1]) // 1000)
        return int(self.cpu)


class Kubernetes(BaseModel):
    """Its server container's requests and limits on Kubernetes: the base's (what production
    runs) and the development overlay's smaller ones. The defaults suit a small service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: Resources = Resources(cpu="100m", memory="128Mi")
    limits: Resources = Resources(cpu="1", memory="256Mi")
    dev_requests: Resources = Resources(cpu="50m", memory="96Mi")
    dev_limits: Resources = Resources(cpu="500m", memory="192Mi")


class Service(BaseModel):
    """One service of the suite, as suite.toml describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    grpc_service: str
    port: int = Field(ge=1024, le=65535)
    database: str = ""
    database_server: Literal["postgres", "timescaledb"] = "postgres"
    # The prefix of its database settings: <prefix>_CONNECT and <prefix>_PASSWORD_FILE.
    database_settings: str = "POSTGRES"
    audit_events: Literal["produces", "consumes", "none"] = "none"
    calls: tuple[str, ...] = ()
    issues_tokens: bool = False
    writers: tuple[str, ...] = ("admin",)
    cli: bool = True
    # What it serves, in a few words (the Kubernetes manifests' opening comment).
    description: str = ""
    kubernetes: Kubernetes = Kubernetes()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name) or keyword.iskeyword(name):
            raise ValueError(
                f"service name {name!r} must be lowercase letters and digits, starting with a"
                " letter, and not a Python keyword"
            )
        if name in RESERVED_NAMES or name.startswith("global_"):
            raise ValueError(f"service name {name!r} is taken by the repository's own folders")
        return name

    @field_validator("grpc_service")
    @classmethod
    def _valid_grpc_service(cls, value: str) -> str:
        if not _GRPC_SERVICE.fullmatch(value):
            raise ValueError(
                f"grpc_service {value!r} must be a full proto service name (package.Service)"
            )
        return value

    @field_validator("database")
    @classmethod
    def _valid_database(cls, value: str) -> str:
        if value and not _DATABASE.fullmatch(value):
            raise ValueError(f"database {value!r} must be a lowercase SQL identifier")
        return value

    @field_validator("database_settings")
    @classmethod
    def _valid_settings_prefix(cls, value: str) -> str:
        if not _SETTINGS_PREFIX.fullmatch(value):
            raise ValueError(f"database_settings {value!r} must be an upper-case setting prefix")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Service:
        if self.name in self.calls:
            raise ValueError(f"service {self.name!r} calls itself")
        if len(set(self.calls)) != len(self.calls):
            raise ValueError(f"service {self.name!r} names a called service twice")
        if self.audit_events == "produces" and not self.database:
            raise ValueError(
                f"service {self.name!r} produces audit events but has no database for its outbox"
            )
        return self

    # --- names every template uses ---------------------------------------------------------

    @property
    def upper(self) -> str:
        return self.name.upper()

    @property
    def server(self) -> str:
        """Its server's compose service (and image) name, goTemp's <name>srv."""
        return f"{self.name}srv"

    @property
    def client(self) -> str:
        """Its CLI's compose service name, goTemp's <name>cli."""
        return f"{self.name}cli"

    @property
    def has_database(self) -> bool:
        return bool(self.database)

    @property
    def produces_audit(self) -> bool:
        return self.audit_events == "produces"

    @property
    def consumes_audit(self) -> bool:
        return self.audit_events == "consumes"

    @property
    def owner_role(self) -> str:
        return f"{self.database}_owner"

    @property
    def runtime_role(self) -> str:
        return f"{self.database}_runtime"

    @property
    def database_host(self) -> str:
        """The compose service of its database server."""
        return "pgdb" if self.database_server == "postgres" else "timescaledb"

    @property
    def connect_setting(self) -> str:
        return f"{self.database_settings}_CONNECT"

    @property
    def password_file_setting(self) -> str:
        return f"{self.database_settings}_PASSWORD_FILE"

    def password_secret(self, kind: Literal["owner", "runtime"]) -> str:
        """The compose secret of its database role's password (kind: owner or runtime)."""
        return f"db_password_{self.database}_{kind}"

    def password_env(self, kind: Literal["owner", "runtime"]) -> str:
        """The provisioner's setting for that password's file."""
        return f"{self.database.upper()}_{kind.upper()}_PASSWORD_FILE"

    def password_dev_file(self, kind: Literal["owner", "runtime"]) -> str:
        return f"secrets/dev/db-password-{self.database.replace('_', '-')}-{kind}.{DEV_MARK}"

    @property
    def nats_seed_secret(self) -> str:
        return f"nats_seed_{self.name}"

    @property
    def nats_seed_dev_file(self) -> str:
        return f"secrets/dev/nats-seed-{self.name}.{DEV_MARK}"

    @property
    def nats_public_key_env(self) -> str:
        return f"NATS_{self.upper}_PUBLIC_NKEY"

    @property
    def inbox_prefix(self) -> str:
        return f"_INBOX.{self.name}"

    @property
    def signing_key_secret(self) -> str:
        return f"audit_signing_key_{self.name}"

    @property
    def signing_key_dev_file(self) -> str:
        return f"secrets/dev/audit-signing-key-{self.name}.{DEV_MARK}"

    @property
    def signing_key_id(self) -> str:
        """Its development audit signing key's id."""
        return f"{self.name}-dev-1"

    # --- Kubernetes ------------------------------------------------------------------------

    @property
    def image(self) -> str:
        """Its server's image (compose builds it under the same name)."""
        return f"gotemp/{self.server}:latest"

    @property
    def headless(self) -> str:
        """Its headless Service: one DNS record per ready pod, the dns:/// registry's target."""
        return f"{self.name}-headless"

    @property
    def connect_key(self) -> str:
        """Its database URL's key in the Secret gotemp-database."""
        return f"{self.name}-{self.database_settings.lower().replace('_', '-')}-connect"

    def password_key(self, kind: Literal["owner", "runtime"]) -> str:
        """Its database role's password's key in the Secret gotemp-db-passwords."""
        return f"{self.database.replace('_', '-')}-{kind}"

    @property
    def nats_seed_key(self) -> str:
        """Its NATS nkey seed's key in the Secret gotemp-nats."""
        return f"{self.name}-nkey-seed"

    @property
    def signing_key_key(self) -> str:
        """Its audit signing key's key in the Secret gotemp-audit-keys."""
        return f"{self.name}-signing-key"

    @property
    def database_service(self) -> str:
        """The Kubernetes Service (and app name) of its database server."""
        return self.database_server


class Suite(BaseModel):
    """Every service, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: tuple[Service, ...] = Field(alias="service", min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        names = [service.name for service in self.services]
        _refuse_duplicates("service name", names)
        _refuse_duplicates("port", [service.port for service in self.services])
        _refuse_duplicates(
            "database", [service.database for service in self.services if service.database]
        )
        _refuse_duplicates("grpc_service", [service.grpc_service for service in self.services])
        for service in self.services:
            unknown = [called for called in service.calls if called not in names]
            if unknown:
                raise ValueError(f"service {service.name!r} calls unknown services {unknown}")
        consumers = [service.name for service in self.services if service.consumes_audit]
        if len(consumers) > 1:
            raise ValueError(f"only one service may consume audit events, not {consumers}")
        if any(service.produces_audit for service in self.services) and not consumers:
            raise ValueError("services produce audit events but no service consumes them")
        issuers = [service.name for service in self.services if service.issues_tokens]
        if len(issuers) != 1:
            raise ValueError(f"exactly one service issues tokens, not {issuers or 'none'}")
        return self

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [service.name for service in self.services]

    @property
    def with_database(self) -> list[Service]:
        return [service for service in self.services if service.has_database]

    @property
    def producers(self) -> list[Service]:
        return [service for service in self.services if service.produces_audit]

    @property
    def consumer(self) -> Service | None:
        return next((service for service in self.services if service.consumes_audit), None)

    @property
    def token_issuer(self) -> Service:
        return next(service for service in self.services if service.issues_tokens)

    @property
    def with_cli(self) -> list[Service]:
        return [service for service in self.services if service.cli]

    def callers(self, name: str) -> list[Service]:
        """The services that call the service name, in file order."""
        return [service for service in self.services if name in service.calls]

    @property
    def called(self) -> list[Service]:
        """The services some other service calls, in file order."""
        return [service for service in self.services if self.callers(service.name)]

    def on_server(self, server: str) -> list[Service]:
        """The services whose database is on server ("postgres" or "timescaledb")."""
        return [s for s in self.with_database if s.database_server == server]


def _refuse_duplicates(what: str, values: Sequence[object]) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)


class SuiteError(ValueError):
    """suite.toml cannot be read or does not describe a valid suite."""


def parse_suite(text: str, source: str = "suite.toml") -> Suite:
    """The suite text describes, validated."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(f"{source}: {error}") from error
    try:
        return Suite.model_validate(data)
    except ValidationError as error:
        raise SuiteError(f"{source}: {error}") from error


def load_suite(path: Path = SUITE_FILE) -> Suite:
    """The suite of path (the repository's suite.toml by default)."""
    return parse_suite(path.read_text(), str(path.name))
