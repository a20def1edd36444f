"""JWT issue and verification: only good, HS256, unexpired tokens from our issuer pass."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from global_errors import Unauthenticated
from user.server.models import User
from user.server.tokens import ISSUER, TokenCodec

KEY = "k" * 40
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


def test_issued_token_verifies_with_user_id_company_and_active() -> None:
    codec = TokenCodec(KEY)
    principal = codec.decode(codec.issue(USER))
    assert (principal.user_id, principal.company, principal.active) == ("42", "Co", True)
    claims = jwt.decode(codec.issue(USER), KEY, algorithms=["HS256"], issuer=ISSUER)
    assert claims["iss"] == "goTemp.usersrv"
    assert claims["exp"] - claims["iat"] == 24 * 3600


def test_expired_token_is_rejected() -> None:
    codec = TokenCodec(KEY, lifetime=timedelta(seconds=-1))
    with pytest.raises(Unauthenticated):
        codec.decode(codec.issue(USER))


def test_tampered_token_is_rejected() -> None:
    token = TokenCodec(KEY).issue(USER)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "1"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(Unauthenticated):
        TokenCodec(KEY).decode(f"{header}.{forged}.{signature}")


def test_token_signed_with_another_key_is_rejected() -> None:
    with pytest.raises(Unauthenticated):
        TokenCodec(KEY).decode(TokenCodec("other" * 10).issue(USER))


def test_alg_none_is_rejected() -> None:
    claims = {"iss": ISSUER, "sub": "42", "exp": datetime.now(UTC) + timedelta(hours=1)}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(Unauthenticated):
        TokenCodec(KEY).decode(unsigned)


def test_other_issuer_and_missing_claims_are_rejected() -> None:
    exp = datetime.now(UTC) + timedelta(hours=1)
    for claims in ({"iss": "someone.else", "sub": "1", "exp": exp}, {"iss": ISSUER, "sub": "1"}):
        with pytest.raises(Unauthenticated):
            TokenCodec(KEY).decode(jwt.encode(claims, KEY, algorithm="HS256"))


def test_garbage_is_rejected() -> None:
    for garbage in ("", "abc", "a.b.c", "\x00" * 10):
        with pytest.raises(Unauthenticated):
            TokenCodec(KEY).decode(garbage)
