"""Compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037): what access tokens are
made of. Signatures are libsodium's (PyNaCl, which the NATS client's nkeys load anyway), so a
service holds no second cryptography library in memory for its tokens (about 9 MB each).

One algorithm exists here: a token whose header names another (`none`, or HS256 "signed" with
a published public key) is refused before any key is used. Claims are read by the caller
(global_utils.identity.token_keys), after the signature has been checked."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALGORITHM = "EdDSA"
# base64url without padding (RFC 7515 §2): anything else in a segment is a malformed token
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


class MalformedToken(ValueError):
    """Not a compact JWS of ours: wrong shape, encoding, JSON or algorithm, or a bad
    signature."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """base64url without padding; MalformedToken for any other character or length."""
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedToken("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise MalformedToken("not base64url") from exc


def _json_segment(data: Mapping[str, Any]) -> str:
    return b64(json.dumps(data, separators=(",", ":")).encode())


def _object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(unb64(segment))
    # json's errors are ValueErrors; a segment nested thousands deep exhausts the recursion
    # limit instead (anyone can send one: it is read before any signature check)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken("a segment is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedToken("a segment is not a JSON object")
    return value


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken("not three segments")
    return parts[0], parts[1], parts[2]


class Compact(NamedTuple):
    """A token taken apart: its header (naming EdDSA), and what the signature covers."""

    header: dict[str, Any]
    signing_input: bytes
    claims_segment: str
    signature_segment: str


def parse(token: str) -> Compact:
    """The token's parts, unverified (its header names the key by kid); MalformedToken for
    anything not three base64url segments with a JSON header naming EdDSA."""
    head, body, signature = _split(token)
    header = _object(head)
    if header.get("alg") != ALGORITHM:
        raise MalformedToken("not EdDSA")
    return Compact(header, f"{head}.{body}".encode(), body, signature)


def sign(claims: Mapping[str, Any], key: SigningKey, kid: str) -> str:
    """claims as a compact JWS signed with key, its header naming kid."""
    head = _json_segment({"alg": ALGORITHM, "kid": kid, "typ": "JWT"})
    signing_input = f"{head}.{_json_segment(claims)}"
    signature = key.sign(signing_input.encode()).signature
    return f"{signing_input}.{b64(signature)}"


def unverified_claims(token: str) -> dict[str, Any]:
    """The token's claims without checking its signature: only for a token verified before
    (a cache reading its expiry), whatever its algorithm."""
    return _object(_split(token)[1])


def verified_claims(token: Compact, key: VerifyKey) -> dict[str, Any]:
    """The claims of a parsed token if key signed it; MalformedToken otherwise."""
    try:
        key.verify(token.signing_input, unb64(token.signature_segment))
    except (BadSignatureError, ValueError) as exc:  # ValueError: not 64 bytes
        raise MalformedToken("bad signature") from exc
    return _object(token.claims_segment)
