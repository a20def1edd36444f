"""TLS for gRPC: the settings, a server's credentials, and a client's (verifying the server
by the service's name, since registries hand out bare addresses). Plaintext unless set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from pydantic import model_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG


class TlsSettings(BaseSettings):
    """TLS_CERT_FILE + TLS_KEY_FILE: this process's certificate (a server serves TLS with it;
    a client presents it for mutual TLS). TLS_CA_FILE: the CA that servers (and, with
    TLS_CLIENT_AUTH, clients) are verified with; a client with a CA speaks TLS."""

    model_config = GROUP_CONFIG

    tls_cert_file: Path | None = None
    """This process's certificate (PEM): a service serves TLS with it; a client presents it for
    mutual TLS."""
    tls_key_file: Path | None = None
    """The private key of TLS_CERT_FILE (PEM)."""
    tls_ca_file: Path | None = None
    """The CA (PEM) that servers, and with TLS_CLIENT_AUTH clients, are verified with; a client
    with a CA speaks TLS to the services it calls."""
    tls_client_auth: bool = False
    """A service requires clients to show a certificate TLS_CA_FILE signed (mutual TLS)."""

    @model_validator(mode="after")
    def _check_tls(self) -> TlsSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE: give both or neither")
        if self.tls_client_auth and (self.tls_ca_file is None or self.tls_cert_file is None):
            raise ValueError(
                "TLS_CLIENT_AUTH: needs TLS_CA_FILE (to verify clients) and TLS_CERT_FILE"
            )
        for variable, path in (
            ("TLS_CERT_FILE", self.tls_cert_file),
            ("TLS_KEY_FILE", self.tls_key_file),
            ("TLS_CA_FILE", self.tls_ca_file),
        ):
            if path is not None:
                try:
                    path.read_bytes()
                except OSError as exc:
                    raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from None
        return self

    @property
    def serves_tls(self) -> bool:
        return self.tls_cert_file is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """None for plaintext; with TLS_CLIENT_AUTH, clients must show a certificate the CA
        signed (mutual TLS)."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        pair = (self.tls_key_file.read_bytes(), self.tls_cert_file.read_bytes())
        if self.tls_client_auth and self.tls_ca_file is not None:
            return grpc.ssl_server_credentials(
                [pair], root_certificates=self.tls_ca_file.read_bytes(), require_client_auth=True
            )
        return grpc.ssl_server_credentials([pair])

    def client_tls(self) -> ClientTls | None:
        """How this process verifies the servers it calls; None for plaintext."""
        if self.tls_ca_file is None:
            return None
        return ClientTls(
            ca=self.tls_ca_file.read_bytes(),
            cert=self.tls_cert_file.read_bytes() if self.tls_cert_file else None,
            key=self.tls_key_file.read_bytes() if self.tls_key_file else None,
        )


@dataclass(frozen=True)
class ClientTls:
    """A client's TLS material, read once."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def secure_options(server_name: str) -> list[tuple[str, str]]:
    """Channel options verifying the server's certificate against server_name (the service's
    registry name) whatever address the channel dials."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []
