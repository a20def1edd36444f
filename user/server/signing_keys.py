"""The user service's token signing keys: Ed25519 private keys from PKCS#8 PEM text; the first
signs, every one is published for verifiers (global_utils.identity.token_keys)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from global_utils.identity.token_keys import PublicKey

PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
PEM_END = "-----END PRIVATE KEY-----"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.kid, self.private.public_key())


def parse_signing_keys(pem: str) -> list[SigningKey]:
    """The Ed25519 private keys of a PEM text (PKCS#8 blocks, text between them ignored);
    ValueError when there is none or a block is not an Ed25519 key."""
    keys: list[SigningKey] = []
    rest = pem
    while PEM_BEGIN in rest:
        start = rest.index(PEM_BEGIN)
        end = rest.find(PEM_END, start)
        if end < 0:
            raise ValueError("a PEM block has no END line")
        block = rest[start : end + len(PEM_END)]
        rest = rest[end + len(PEM_END) :]
        private = load_pem_private_key(block.encode(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(
                "not an Ed25519 private key (make one: openssl genpkey -algorithm ed25519)"
            )
        keys.append(SigningKey(PublicKey.of(private.public_key()).kid, private))
    if not keys:
        raise ValueError("no PEM private key found")
    return keys


def new_signing_key_pem(comment: str = "") -> str:
    """A fresh Ed25519 private key as PKCS#8 PEM, after an optional comment line."""
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    return f"# {comment}\n{pem}" if comment else pem
