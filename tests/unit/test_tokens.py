"""Access tokens: only good, EdDSA, unexpired tokens from our issuer signed with a known key
pass; forged ones of every kind are refused, locally as in the user service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from global_errors import MessageKey, Unauthenticated, Unavailable
from global_utils.identity.principal import Principal
from global_utils.identity.token_keys import (
    ISSUER,
    LocalTokenVerifier,
    PublicKey,
    UnknownKeyId,
    decode_access_token,
    jwks_document,
    keys_from_jwks,
)
from user.server.models import User
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys
from user.server.tokens import TokenCodec

T = datetime(2020, 1, 1, tzinfo=UTC)
USER = User(
    id=42,
    firstname="A",
    lastname="B",
    name="A B",
    valid_from=T,
    valid_thru=T,
    active=True,
    email="a@b.c",
    company="Co",
    create_date=T,
    update_date=T,
)
KEY = parse_signing_keys(new_signing_key_pem())[0]
OTHER_KEY = parse_signing_keys(new_signing_key_pem())[0]
KEYS = {KEY.kid: KEY.public}


def claims(**changes: object) -> dict[str, object]:
    issued = datetime.now(UTC)
    values: dict[str, object] = {
        "iss": ISSUER,
        "sub": "42",
        "role": "member",
        "iat": issued,
        "exp": issued + timedelta(minutes=5),
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def signed(payload: dict[str, object], kid: str = KEY.kid, key: object = None) -> str:
    return jwt.encode(payload, key or KEY.private, algorithm="EdDSA", headers={"kid": kid})


def test_issued_token_is_eddsa_with_kid_and_verifies_locally() -> None:
    codec = TokenCodec([KEY])
    issued = codec.issue(USER)
    header = jwt.get_unverified_header(issued.token)
    assert (header["alg"], header["kid"]) == ("EdDSA", KEY.kid)
    principal = decode_access_token(issued.token, KEYS)
    assert (principal.user_id, principal.company, principal.active) == ("42", "Co", True)
    payload = jwt.decode(issued.token, KEY.public.key, algorithms=["EdDSA"], issuer=ISSUER)
    assert payload["exp"] - math.floor(payload["iat"]) == 15 * 60
    assert principal.issued_at == payload["iat"] < payload["exp"]
    assert datetime.fromtimestamp(payload["exp"], UTC) == issued.expires_at.replace(microsecond=0)


def test_expired_token_is_refused() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(Unauthenticated):
        decode_access_token(signed(claims(iat=past, exp=past + timedelta(minutes=15))), KEYS)


def test_tampered_payload_is_refused() -> None:
    head, body, sig = signed(claims()).split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        decode_access_token(f"{head}.{forged}.{sig}", KEYS)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), key=None, algorithm="none", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        decode_access_token(unsigned, KEYS)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """The classic key-confusion forgery: the published key used as an HMAC secret."""
    public = KEY.public.key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    for secret in (public, base64.urlsafe_b64encode(public).rstrip(b"=")):
        segments = [
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
            for part in ({"alg": "HS256", "kid": KEY.kid, "typ": "JWT"}, claims(iat=1, exp=2**40))
        ]
        signing_input = b".".join(segments)
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        token = (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
        with pytest.raises(Unauthenticated):
            decode_access_token(token, KEYS)


def test_unknown_kid_is_reported_and_another_keys_signature_refused() -> None:
    with pytest.raises(UnknownKeyId):
        decode_access_token(signed(claims(), kid=OTHER_KEY.kid, key=OTHER_KEY.private), KEYS)
    # a known kid on a token another key signed
    with pytest.raises(Unauthenticated):
        decode_access_token(signed(claims(), kid=KEY.kid, key=OTHER_KEY.private), KEYS)
    with pytest.raises(Unauthenticated):
        TokenCodec([KEY]).decode(signed(claims(), kid=OTHER_KEY.kid, key=OTHER_KEY.private))


def test_wrong_issuer_and_missing_claims_are_refused() -> None:
    for payload in (
        claims(iss="someone.else"),
        claims(iss=None),
        claims(exp=None),
        claims(sub=None),
    ):
        with pytest.raises(Unauthenticated):
            decode_access_token(signed(payload), KEYS)


def test_garbage_is_refused() -> None:
    for token in ("", "garbage", "a.b.c", "e30.e30.e30"):
        with pytest.raises(Unauthenticated):
            decode_access_token(token, KEYS)


def test_two_keys_during_a_rollover_both_verify_and_the_first_signs() -> None:
    old = TokenCodec([KEY])
    rolled = TokenCodec([OTHER_KEY, KEY])
    assert rolled.decode(old.issue(USER).token).user_id == "42"
    new_token = rolled.issue(USER).token
    assert jwt.get_unverified_header(new_token)["kid"] == OTHER_KEY.kid
    assert [k.kid for k in rolled.public_keys] == [OTHER_KEY.kid, KEY.kid]
    with pytest.raises(Unauthenticated):
        old.decode(new_token)


def test_jwks_round_trip_and_kid_is_the_thumbprint() -> None:
    document = jwks_document([KEY.public, OTHER_KEY.public])
    entries = json.loads(document)["keys"]
    assert {e["kty"] for e in entries} == {"OKP"} and {e["alg"] for e in entries} == {"EdDSA"}
    keys = keys_from_jwks(document)
    assert list(keys) == [KEY.kid, OTHER_KEY.kid]
    assert PublicKey.of(KEY.public.key).kid == KEY.kid
    token = TokenCodec([OTHER_KEY]).issue(USER).token
    assert decode_access_token(token, keys).user_id == "42"


class Fetches:
    """Counts key fetches; serves `keys` (changeable) or fails while `down`."""

    def __init__(self, *keys: PublicKey) -> None:
        self.keys = list(keys)
        self.count = 0
        self.down = False

    async def __call__(self) -> list[PublicKey]:
        self.count += 1
        if self.down:
            raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="user service")
        return self.keys


async def test_local_verifier_fetches_once_and_keeps_working_while_the_issuer_is_down() -> None:
    fetches = Fetches(KEY.public)
    verifier = LocalTokenVerifier(fetches, min_refetch_seconds=0)
    token = TokenCodec([KEY]).issue(USER).token
    assert await verifier.verify(token) == Principal("42", "Co", True)
    fetches.down = True
    for _ in range(3):
        assert (await verifier.verify(token)).user_id == "42"
    assert fetches.count == 1


async def test_local_verifier_refetches_on_an_unknown_kid_only() -> None:
    fetches = Fetches(KEY.public)
    verifier = LocalTokenVerifier(fetches, min_refetch_seconds=0)
    await verifier.verify(TokenCodec([KEY]).issue(USER).token)
    fetches.keys = [OTHER_KEY.public, KEY.public]  # the issuer rotated
    assert (await verifier.verify(TokenCodec([OTHER_KEY]).issue(USER).token)).user_id == "42"
    assert fetches.count == 2
    stranger = parse_signing_keys(new_signing_key_pem())[0]
    with pytest.raises(Unauthenticated):
        await verifier.verify(TokenCodec([stranger]).issue(USER).token)
    assert fetches.count == 3


async def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval() -> None:
    fetches = Fetches(KEY.public)
    verifier = LocalTokenVerifier(fetches, min_refetch_seconds=3600)
    for _ in range(20):
        stranger = parse_signing_keys(new_signing_key_pem())[0]
        with pytest.raises(Unauthenticated):
            await verifier.verify(TokenCodec([stranger]).issue(USER).token)
    assert fetches.count == 1
