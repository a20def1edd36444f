"""The user service's token signing keys: Ed25519 private keys from PKCS#8 PEM text; the first
signs, every one is published for verifiers (global_utils.identity.token_keys)."""

from __future__ import annotations

import base64
import binascii
import textwrap
from dataclasses import dataclass

from nacl.signing import SigningKey as Ed25519SigningKey

from global_utils.identity.token_keys import PublicKey

PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
PEM_END = "-----END PRIVATE KEY-----"
NOT_ED25519 = "not an Ed25519 private key (make one: openssl genpkey -algorithm ed25519)"
# The DER of a PKCS#8 Ed25519 private key (RFC 8410 §7) up to its 32-byte seed: SEQUENCE,
# version, the algorithm identifier id-Ed25519 (1.3.101.112), the key as an OCTET STRING in an
# OCTET STRING. Version 0 (what openssl genpkey writes) ends with the seed; version 1 adds the
# public key after it, as [1] BIT STRING.
_V0_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_V1_PREFIX = bytes.fromhex("3051020101300506032b657004220420")
_V1_PUBLIC = bytes.fromhex("812100")
_SEED = 32


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519SigningKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.kid, self.private.verify_key)


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
        body = rest[start + len(PEM_BEGIN) : end]
        rest = rest[end + len(PEM_END) :]
        private = Ed25519SigningKey(_seed(_der(body)))
        keys.append(SigningKey(PublicKey.of(private.verify_key).kid, private))
    if not keys:
        raise ValueError("no PEM private key found")
    return keys


def _der(body: str) -> bytes:
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("a PEM block is not base64") from exc


def _seed(der: bytes) -> bytes:
    """The 32-byte seed of a PKCS#8 Ed25519 private key; ValueError for any other DER."""
    seed_end = len(_V0_PREFIX) + _SEED
    if der.startswith(_V0_PREFIX) and len(der) == seed_end:
        return der[len(_V0_PREFIX) :]
    if der.startswith(_V1_PREFIX) and der[seed_end:].startswith(_V1_PUBLIC):
        seed, public = der[len(_V1_PREFIX) : seed_end], der[seed_end + len(_V1_PUBLIC) :]
        if len(public) == _SEED and bytes(Ed25519SigningKey(seed).verify_key) == public:
            return seed
    raise ValueError(NOT_ED25519)


def new_signing_key_pem(comment: str = "") -> str:
    """A fresh Ed25519 private key as PKCS#8 PEM (version 0, as openssl writes it), after an
    optional comment line."""
    der = _V0_PREFIX + bytes(Ed25519SigningKey.generate())
    lines = textwrap.wrap(base64.b64encode(der).decode(), 64)
    pem = "\n".join([PEM_BEGIN, *lines, PEM_END]) + "\n"
    return f"# {comment}\n{pem}" if comment else pem
