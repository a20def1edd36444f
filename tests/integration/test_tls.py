"""gRPC over TLS and mutual TLS with the certificates `make certs` makes (here made fresh for
the session): handshakes that must work, and the ones that must not."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from devtools import certs
from devtools.stack import REPO_ROOT
from global_utils.discovery.registry import Endpoint
from global_utils.grpc.client import open_channel
from global_utils.grpc.host import ServiceHost
from global_utils.grpc.tls import ClientTls
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from tests.e2e.test_grpcurl import GRPCURL
from tests.helpers import started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings

LOGIN = user_pb2.User(email="duck@mymail.com", pwd="1234")


@pytest.fixture(scope="module")
def tls_dir(stack_dir: Path) -> Path:
    """A development CA and certificates, made for this module."""
    folder = stack_dir / "tls"
    certs.write(folder)
    return folder


@pytest.fixture(scope="module")
def other_ca_dir(stack_dir: Path) -> Path:
    """A second, unrelated CA and its certificates."""
    folder = stack_dir / "tls-other"
    certs.write(folder)
    return folder


def client(folder: Path, identity: str | None = None) -> ClientTls:
    return ClientTls(
        ca=(folder / "ca.pem").read_bytes(),
        cert=(folder / f"{identity}.pem").read_bytes() if identity else None,
        key=(folder / f"{identity}.key").read_bytes() if identity else None,
    )


def server_tls(folder: Path, name: str, *, mutual: bool = False) -> dict[str, object]:
    return {
        "tls_cert_file": folder / f"{name}.pem",
        "tls_key_file": folder / f"{name}.key",
        "tls_ca_file": folder / "ca.pem",
        "tls_client_auth": mutual,
    }


@pytest.fixture(scope="module")
async def tls_user(
    tls_dir: Path, user_settings_factory: Callable[..., UserSettings]
) -> AsyncIterator[ServiceHost]:
    """The user service serving TLS only."""
    host = await started(build_user(user_settings_factory(**server_tls(tls_dir, "user"))))
    yield host
    await host.stop()


@pytest.fixture(scope="module")
async def mtls_user(
    tls_dir: Path, user_settings_factory: Callable[..., UserSettings]
) -> AsyncIterator[ServiceHost]:
    """The user service requiring client certificates (mutual TLS)."""
    settings = user_settings_factory(**server_tls(tls_dir, "user", mutual=True))
    host = await started(build_user(settings))
    yield host
    await host.stop()


async def auth(host: ServiceHost, tls: ClientTls | None, server_name: str = "user") -> str:
    endpoint = Endpoint("127.0.0.1", host.port)
    async with open_channel(endpoint, tls=tls, server_name=server_name) as channel:
        reply = await user_pb2_grpc.UserSrvStub(channel).Auth(LOGIN, timeout=5)
    return str(reply.token)


async def refused(host: ServiceHost, tls: ClientTls | None, server_name: str = "user") -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth(host, tls, server_name)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_verifying_the_service_name_completes_the_handshake(
    tls_user: ServiceHost, tls_dir: Path
) -> None:
    assert await auth(tls_user, client(tls_dir))


async def test_a_plaintext_client_is_refused_by_a_tls_server(tls_user: ServiceHost) -> None:
    await refused(tls_user, None)


async def test_a_server_certificate_from_another_ca_or_name_is_refused(
    tls_user: ServiceHost, tls_dir: Path, other_ca_dir: Path
) -> None:
    await refused(tls_user, client(other_ca_dir))
    await refused(tls_user, client(tls_dir), server_name="promotion")


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    mtls_user: ServiceHost, tls_dir: Path, other_ca_dir: Path
) -> None:
    await refused(mtls_user, client(tls_dir))
    await refused(mtls_user, client(other_ca_dir, "cli"))
    assert await auth(mtls_user, client(tls_dir, "cli"))


async def test_promotion_checks_tokens_with_the_user_service_over_mutual_tls(
    mtls_user: ServiceHost,
    tls_dir: Path,
    promotion_settings_factory: Callable[..., PromotionSettings],
) -> None:
    settings = promotion_settings_factory(
        micro_registry="static",
        micro_registry_address=f"user=127.0.0.1:{mtls_user.port}",
        token_cache_seconds=0,
        **server_tls(tls_dir, "promotion", mutual=True),
    )
    promotion = await started(build_promotion(settings))
    try:
        token = await auth(mtls_user, client(tls_dir, "cli"))
        endpoint = Endpoint("127.0.0.1", promotion.port)
        tls = client(tls_dir, "cli")
        async with open_channel(endpoint, tls=tls, server_name="promotion") as channel:
            reply = await promotion_pb2_grpc.PromotionSrvStub(channel).GetPromotions(
                promotion_pb2.SearchParams(name="Promo1"), metadata=bearer_metadata(token)
            )
        assert [p.name for p in reply.promotion] == ["Promo1"]
    finally:
        await promotion.stop()


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Runs command without blocking the event loop the services under test share."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, output.decode()


async def test_grpcurl_and_the_health_probe_speak_tls(tls_user: ServiceHost, tls_dir: Path) -> None:
    address = f"127.0.0.1:{tls_user.port}"
    ca = str(tls_dir / "ca.pem")
    code, output = await run(GRPCURL, "-cacert", ca, "-servername", "user", address, "list")
    assert code == 0 and "user.UserSrv" in output, output
    code, _ = await run(GRPCURL, "-plaintext", address, "list")
    assert code != 0
    env = {
        "PATH": "/usr/bin:/bin",
        "TLS_CERT_FILE": str(tls_dir / "user.pem"),
        "TLS_KEY_FILE": str(tls_dir / "user.key"),
        "TLS_CA_FILE": ca,
    }
    for service in ("", "liveness"):  # the overall status, and the process-only name
        code, output = await run(
            sys.executable, "-m", "global_utils.grpc.healthprobe", address, service, env=env
        )
        assert code == 0, output
