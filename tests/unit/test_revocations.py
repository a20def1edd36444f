"""Revocations as a verifier applies them (no NATS): the latest not-before time of a user wins
whatever order entries arrive in, unreadable entries change nothing, a token issued before its
user's not-before time is refused even when cached, and a stale feed sends every token to the
user service instead."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from global_errors import Unauthenticated
from global_utils.identity.principal import Principal, Role
from global_utils.identity.revocations import (
    RevocationCheckingVerifier,
    RevocationFeed,
    decode_not_before,
    encode_not_before,
    revocation_subject,
)
from global_utils.identity.token_cache import CachingVerifier, TokenCache
from global_utils.messaging.broker import Broker


def token(user_id: int, issued_at: float) -> str:
    """A made-up token (unsigned in effect: Tokens reads it) that the cache keeps a minute."""
    claims = {"sub": str(user_id), "iat": issued_at, "exp": time.time() + 60}
    return jwt.encode(claims, "not a real key: a test stand-in, 32+ bytes", algorithm="HS256")


class Tokens:
    """A verifier of token()'s tokens, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        claims = jwt.decode(token, options={"verify_signature": False})
        return Principal(user_id=claims["sub"], role=Role.MEMBER, issued_at=claims["iat"])


def fed(feed: RevocationFeed, user_id: int, not_before: float) -> None:
    feed._apply(revocation_subject(user_id), encode_not_before(not_before))


def confirmed(feed: RevocationFeed, seconds_ago: float = 0.0) -> None:
    """As if the feed's last check found nothing missing seconds_ago."""
    feed._confirmed_at = time.monotonic() - seconds_ago


@pytest.fixture
def feed() -> RevocationFeed:
    """A feed that is never started (its broker is never asked)."""
    return RevocationFeed(Broker[Any]("nats://127.0.0.1:1", name="unused"), max_age_seconds=3)


def test_not_before_times_round_trip_and_junk_is_refused() -> None:
    assert decode_not_before(encode_not_before(1_800_000_000.123456)) == 1_800_000_000.123456
    for junk in (b"", b"soon", b"nan", b"inf", b"-5", b"0", b"\xff"):
        assert decode_not_before(junk) is None, junk


def test_the_latest_not_before_wins_in_any_order(feed: RevocationFeed) -> None:
    fed(feed, 7, 200.0)
    fed(feed, 7, 100.0)  # an older entry arriving late
    fed(feed, 8, 50.0)
    assert (feed.not_before("7"), feed.not_before("8"), feed.not_before("9")) == (200.0, 50.0, None)
    feed._apply(revocation_subject(7), b"junk")
    feed._apply("$KV.OTHER.7", encode_not_before(999.0))
    assert feed.not_before("7") == 200.0
    assert (feed.applied, feed.revoked_users) == (3, 2)


def test_the_feed_is_fresh_only_within_its_bound(feed: RevocationFeed) -> None:
    assert not feed.fresh and feed.age is None  # never loaded
    confirmed(feed, 1.0)
    assert feed.fresh and feed.age is not None and feed.age >= 1.0
    confirmed(feed, 3.5)
    assert not feed.fresh


async def test_a_token_issued_before_its_revocation_is_refused_even_from_the_cache(
    feed: RevocationFeed,
) -> None:
    local, remote = Tokens(), Tokens()
    cached = CachingVerifier(local, TokenCache())
    verifier = RevocationCheckingVerifier(cached, feed, remote)
    confirmed(feed)
    old, new = token(7, 100.5), token(7, 300.25)
    assert (await verifier.verify(old)).user_id == "7"  # verified and cached
    fed(feed, 7, 200.0)
    with pytest.raises(Unauthenticated):
        await verifier.verify(old)  # answered by the cache before: not any more
    assert (await verifier.verify(new)).issued_at == 300.25
    assert (await verifier.verify(token(8, 100.0))).user_id == "8"  # others untouched
    assert (verifier.refused, verifier.fallbacks, remote.calls) == (1, 0, 0)
    assert local.calls == 3  # the old token was verified once, then cached


async def test_a_stale_feed_sends_every_token_to_the_user_service(feed: RevocationFeed) -> None:
    local, remote = Tokens(), Tokens()
    verifier = RevocationCheckingVerifier(CachingVerifier(local, TokenCache()), feed, remote)
    fed(feed, 7, 200.0)
    confirmed(feed, 10.0)  # lost for longer than the bound
    assert (await verifier.verify(token(7, 300.0))).user_id == "7"
    assert (await verifier.verify(token(9, 1.0))).user_id == "9"
    assert (remote.calls, local.calls, verifier.fallbacks) == (2, 0, 2)
    confirmed(feed)  # back: local again
    await verifier.verify(token(9, 1.0))
    assert (remote.calls, local.calls) == (2, 1)


def test_the_state_is_complete_once_every_entry_the_stream_reported_is_applied(
    feed: RevocationFeed,
) -> None:
    asked = time.monotonic()
    feed._catching_up = (5, asked)  # the last check saw entries up to 5
    feed._seen_seq = 4
    feed._caught_up()
    assert not feed.fresh  # entry 5 not applied yet
    feed._seen_seq = 5
    feed._caught_up()
    assert feed.fresh and feed._confirmed_at == asked and feed._loaded.is_set()
