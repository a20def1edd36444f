"""Access tokens: only good, EdDSA, unexpired tokens from our issuer signed with a known key
pass; forged ones of every kind are refused, locally as in the user service. PyJWT over
cryptography (test dependencies only) is the reference our tokens must interoperate with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key

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
from user.server.signing_keys import SigningKey, new_signing_key_pem, parse_signing_keys
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


def reference(key: SigningKey) -> Ed25519PrivateKey:
    """The same key as the reference implementation holds it."""
    return Ed25519PrivateKey.from_private_bytes(bytes(key.private))


def signed(payload: dict[str, object], kid: str = KEY.kid, key: SigningKey = KEY) -> str:
    """A token the reference implementation signed."""
    return jwt.encode(payload, reference(key), algorithm="EdDSA", headers={"kid": kid})


def test_issued_token_is_eddsa_with_kid_and_verifies_locally() -> None:
    codec = TokenCodec([KEY])
    issued = codec.issue(USER)
    header = jwt.get_unverified_header(issued.token)
    assert (header["alg"], header["kid"]) == ("EdDSA", KEY.kid)
    principal = decode_access_token(issued.token, KEYS)
    assert (principal.user_id, principal.company, principal.active) == ("42", "Co", True)
    public = Ed25519PublicKey.from_public_bytes(bytes(KEY.public.key))
    payload = jwt.decode(issued.token, public, algorithms=["EdDSA"], issuer=ISSUER)
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
    public = bytes(KEY.public.key)
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
        decode_access_token(signed(claims(), kid=OTHER_KEY.kid, key=OTHER_KEY), KEYS)
    # a known kid on a token another key signed
    with pytest.raises(Unauthenticated):
        decode_access_token(signed(claims(), kid=KEY.kid, key=OTHER_KEY), KEYS)
    with pytest.raises(Unauthenticated):
        TokenCodec([KEY]).decode(signed(claims(), kid=OTHER_KEY.kid, key=OTHER_KEY))


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


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": datetime.now(UTC) + timedelta(minutes=1)},  # issued in the future
        {"nbf": datetime.now(UTC) + timedelta(minutes=1)},
        {"aud": "someone"},  # no audience is expected
        {"exp": "99999999999"},  # a NumericDate is a JSON number, not a string
        {"exp": True},
        {"iat": "1"},
        {"sub": 42},
    ],
)
def test_claims_outside_the_rules_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        decode_access_token(signed(claims(**changes)), KEYS)


def test_far_future_and_fractional_times_are_numbers_like_any_other() -> None:
    issued = datetime.now(UTC).timestamp()
    for token in (
        signed(claims(iat=issued, exp=10**30)),
        signed(claims(iat=issued - 0.5, exp=issued + 60.25, nbf=issued - 1)),
    ):
        assert decode_access_token(token, KEYS).user_id == "42"


def test_malformed_segments_are_refused_not_crashed_on() -> None:
    head, body, sig = signed(claims()).split(".")
    array = base64.urlsafe_b64encode(b"[1]").rstrip(b"=").decode()
    for token in (
        f"{head}.{body}.{sig}=",  # padding
        f"{head}.{body}.{sig[:-4]}",  # a signature too short
        f"{head}.{body}.{sig}.{sig}",
        f"{head}.{body}+.{sig}",  # outside the base64url alphabet
        f"{head}.{array}.{sig}",  # claims that are no JSON object
        f"{array}.{body}.{sig}",
        f"{head}.{body}.",
        f"{head}.\u00e9.{sig}",
        f"{base64.urlsafe_b64encode(b'[' * 6000).rstrip(b'=').decode()}.{body}.{sig}",
    ):
        with pytest.raises(Unauthenticated):
            decode_access_token(token, KEYS)


def test_a_key_with_its_public_part_attached_is_read_and_a_wrong_one_refused() -> None:
    """PKCS#8 version 1 (RFC 8410 §7's second form), which some tools write."""
    seed, public = bytes(KEY.private), bytes(KEY.public.key)

    def pem(public_part: bytes) -> str:
        der = bytes.fromhex("3051020101300506032b657004220420") + seed + b"\x81\x21\x00"
        body = base64.b64encode(der + public_part).decode()
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"

    assert parse_signing_keys(pem(public))[0].kid == KEY.kid
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        parse_signing_keys(pem(bytes(OTHER_KEY.public.key)))


@pytest.mark.parametrize(
    "body",
    [
        "MC4CAQAwBQYDK2VwBCIEI",
        "not base64!",
        "MC4CAQAwBQYDK2VxBCIEIBhLXR4oeQf/hTMlnpIwPf9bfc9uR79fWBqq2H4s6sFa",
    ],
)
def test_truncated_foreign_or_broken_keys_are_refused(body: str) -> None:
    """Cut short, not base64, or an Ed448 key (1.3.101.113)."""
    with pytest.raises(ValueError):
        parse_signing_keys(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")


def test_our_signing_key_pem_is_what_openssl_and_the_reference_read() -> None:
    pem = new_signing_key_pem("a comment line")
    reference_key = load_pem_private_key(pem.split("\n", 1)[1].encode(), password=None)
    assert isinstance(reference_key, Ed25519PrivateKey)
    assert reference_key.private_bytes_raw() == bytes(parse_signing_keys(pem)[0].private)
