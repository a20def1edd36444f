"""TLS to NATS: a real nats-server serving the repository configuration with a certificate
`make certs` would make (made fresh here); a service's broker connection verifies it by the
server's name (NATS_TLS_CA_FILE, NATS_TLS_SERVER_NAME) and refuses a server its CA did not
sign or whose certificate names someone else."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.errors import NoStreamResponseError

import nats
from devtools import certs
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats
from global_utils.config.settings import BrokerSettings


@pytest.fixture(scope="module")
def tls_dirs(stack_dir: Path) -> tuple[Path, Path]:
    """Two development CAs with their certificates: the server's, and a stranger's."""
    ours, theirs = stack_dir / "nats-tls", stack_dir / "nats-tls-other"
    certs.write(ours)
    certs.write(theirs)
    return ours, theirs


@pytest.fixture(scope="module")
def tls_nats(stack_dir: Path, nats_keys: NatsKeys, tls_dirs: tuple[Path, Path]) -> Iterator[str]:
    """nats-server serving TLS with its certificate (names: nats, localhost, 127.0.0.1...)."""
    folder = tls_dirs[0]
    server = EmbeddedNats(
        stack_dir / f"nats-tls-{uuid.uuid4().hex[:6]}",
        env=nats_keys.server_env(),
        tls=(folder / "nats.pem", folder / "nats.key"),
    ).start()
    yield server.address
    server.stop()


def tls_settings(address: str, ca_dir: Path, server_name: str = "nats") -> BrokerSettings:
    """A service's broker settings with TLS verified by ca_dir's CA for server_name."""
    return BrokerSettings(
        micro_broker_address=address,
        nats_tls_ca_file=ca_dir / "ca.pem",
        nats_tls_server_name=server_name,
    )


async def connect(address: str, settings: BrokerSettings, nats_keys: NatsKeys) -> Client:
    """A connection as the user service would make it with settings' TLS."""
    access = settings.broker_access("user")
    options = access.connect_options() | {"nkeys_seed_str": nats_keys.seed("user")}
    return await nats.connect(
        f"nats://{address}", allow_reconnect=False, connect_timeout=3, **options
    )


async def test_verified_by_name_the_service_connects_over_tls(
    tls_nats: str, tls_dirs: tuple[Path, Path], nats_keys: NatsKeys
) -> None:
    # dialled by address; the certificate is checked against the name "nats" (compose's)
    settings = tls_settings(tls_nats, tls_dirs[0])
    client = await connect(tls_nats, settings, nats_keys)
    try:
        assert client.is_connected
        # a JetStream round trip over the TLS connection (nobody provisioned this server)
        with pytest.raises(NoStreamResponseError):
            await client.jetstream().publish("Audit", b"x", timeout=2)
    finally:
        await client.close()


async def test_a_server_another_ca_signed_is_refused(
    tls_nats: str, tls_dirs: tuple[Path, Path], nats_keys: NatsKeys
) -> None:
    settings = tls_settings(tls_nats, tls_dirs[1])
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(tls_nats, settings, nats_keys)


async def test_a_certificate_for_another_name_is_refused(
    tls_nats: str, tls_dirs: tuple[Path, Path], nats_keys: NatsKeys
) -> None:
    # a name of the CA's, not the NATS server's
    settings = tls_settings(tls_nats, tls_dirs[0], "postgres")
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname"):
        await connect(tls_nats, settings, nats_keys)


async def test_without_tls_settings_the_server_refuses_plaintext(
    tls_nats: str, nats_keys: NatsKeys
) -> None:
    # The server waits for a TLS handshake and never says a word in clear.
    with pytest.raises(nats.errors.Error, match="expecting INFO"):
        await connect(tls_nats, BrokerSettings(micro_broker_address=tls_nats), nats_keys)


async def test_a_server_that_offers_plaintext_gets_no_credentials(
    tls_dirs: tuple[Path, Path], nats_keys: NatsKeys
) -> None:
    # Someone between the service and NATS answers like a server without TLS and relays the
    # real server's nonce: a client that followed it would send its signed CONNECT in clear.
    # With TLS configured the client speaks TLS first, before anything the other side says.
    received = bytearray()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "x", "version": "2.15.1", "headers": True, "max_payload": 1048576}
        writer.write(b"INFO " + json.dumps(info | {"nonce": "abc", "auth_required": True}).encode())
        writer.write(b"\r\n")
        await writer.drain()
        try:
            while chunk := await asyncio.wait_for(reader.read(4096), 5):
                received.extend(chunk)
        except (TimeoutError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings = tls_settings(address, tls_dirs[0])
    try:
        with pytest.raises((ssl.SSLError, OSError, TimeoutError, nats.errors.Error)):
            await connect(address, settings, nats_keys)
    finally:
        server.close()
        await server.wait_closed()
    assert received, "the client sent nothing at all"
    assert received[:1] == b"\x16"  # a TLS handshake record, the client's first words
    assert b"CONNECT" not in received and b"sig" not in received
