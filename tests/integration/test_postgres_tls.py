"""TLS from the provisioner and the services to PostgreSQL: with `sslmode=verify-full` and the
development CA (made fresh here, as `make certs` makes it) in the URL, they connect to a server
serving the CA's certificate by its name, over TLS; with another CA they are refused."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from devtools import certs
from devtools.databases import (
    provision_databases,
    provision_env,
    runtime_password,
    runtime_password_file,
)
from devtools.stack import EmbeddedPostgres
from provision.__main__ import database_migrations, database_roles, provision
from provision.migrations import VERSIONS, load_migrations
from provision.settings import ProvisionSettings
from tests.helpers import serving
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings


@pytest.fixture(scope="module")
def tls(stack_dir: Path) -> dict[str, Path]:
    """This module's CA and the postgres certificate it signed, and a CA that signed nothing."""
    ours, other = stack_dir / "pg-tls" / "ours", stack_dir / "pg-tls" / "other"
    certs.write(ours)
    certs.write(other)
    return {
        "ca": ours / "ca.pem",
        "cert": ours / "postgres.pem",
        "key": ours / "postgres.key",
        "other ca": other / "ca.pem",
    }


@pytest.fixture(scope="module")
def tls_postgres(stack_dir: Path, tls: dict[str, Path]) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(
        stack_dir / "pg-tls" / "server", durable=False, tls=(tls["cert"], tls["key"])
    ).start()
    yield server
    server.stop()


def url(pg: EmbeddedPostgres, user: str, database: str, ca: Path) -> str:
    """By name (localhost, in the certificate), verify-full, the given CA."""
    return (
        f"postgresql://{user}@localhost:{pg.port}/{database}?sslmode=verify-full&sslrootcert={ca}"
    )


async def test_the_provisioner_and_the_runtime_roles_connect_over_verified_tls(
    tls_postgres: EmbeddedPostgres, tls: dict[str, Path]
) -> None:
    env = provision_env(tls_postgres) | {
        "POSTGRES_ADMIN_CONNECT": url(tls_postgres, "postgres", "postgres", tls["ca"]),
        "TIMESCALEDB_ADMIN_CONNECT": url(tls_postgres, "postgres", "postgres", tls["ca"]),
    }
    settings = ProvisionSettings.model_validate({k.lower(): v for k, v in env.items()})
    steps = (("database roles", database_roles), ("database migrations", database_migrations))
    await provision(settings, steps)

    conn = await asyncpg.connect(
        url(tls_postgres, "appuser_runtime", "appuser", tls["ca"]),
        password=runtime_password("user"),
    )
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert await conn.fetchval("SELECT count(*) FROM appuser") >= 3
    finally:
        await conn.close()
    # the owners connected over TLS too: every migration is recorded
    admin = await asyncpg.connect(url(tls_postgres, "postgres", "appuser", tls["ca"]))
    try:
        recorded = await admin.fetchval("SELECT count(*) FROM schema_migrations")
        assert recorded == len(load_migrations(VERSIONS / "appuser"))
    finally:
        await admin.close()


async def test_a_server_certificate_from_another_ca_is_refused(
    tls_postgres: EmbeddedPostgres, tls: dict[str, Path]
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(url(tls_postgres, "postgres", "postgres", tls["other ca"]))


async def test_the_user_service_works_over_verified_tls(
    tls_postgres: EmbeddedPostgres,
    tls: dict[str, Path],
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    # (the databases may be there already: the provisioner runs again)
    await asyncio.to_thread(provision_databases, tls_postgres)
    settings = user_settings_factory(
        postgres_connect=url(tls_postgres, "appuser_runtime", "appuser", tls["ca"]),
        postgres_password_file=runtime_password_file("user"),
    )
    admin = await asyncpg.connect(url(tls_postgres, "postgres", "postgres", tls["ca"]))
    try:
        async with serving(build(settings)) as channel:
            stub = user_pb2_grpc.UserSrvStub(channel)
            login = await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
            assert login.valid
            # the service's sessions, each a TLS one
            sessions = await admin.fetch(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.usename = 'appuser_runtime'"
            )
            assert sessions and all(row["ssl"] for row in sessions)
    finally:
        await admin.close()
