"""The token cache: bounded, and never past a token's own expiry."""

from __future__ import annotations

import time

import jwt

from global_utils.identity.principal import Principal
from global_utils.identity.token_cache import TokenCache, seconds_until_expiry


def token(expires_in: float, subject: str = "1") -> str:
    return jwt.encode(
        {"sub": subject, "exp": int(time.time() + expires_in)}, "k" * 32, algorithm="HS256"
    )


def test_hit_after_put() -> None:
    cache = TokenCache(lifetime_seconds=60)
    t = token(3600)
    cache.put(t, Principal("1"))
    assert cache.get(t) == Principal("1")
    assert cache.get(token(3600, "2")) is None


def test_expired_or_undated_tokens_are_not_cached() -> None:
    cache = TokenCache(lifetime_seconds=60)
    for t in (token(-10), "not-a-jwt", jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256")):
        cache.put(t, Principal("1"))
        assert cache.get(t) is None
    assert len(cache) == 0


def test_entry_never_outlives_the_token() -> None:
    cache = TokenCache(lifetime_seconds=3600)
    t = token(1.2)
    cache.put(t, Principal("1"))
    assert cache.get(t) is not None
    assert seconds_until_expiry(t) <= 1.2
    # Expiry is compared against the clock; move the entry's deadline instead of sleeping.
    principal, _ = cache._entries[t]
    cache._entries[t] = (principal, time.monotonic() - 0.001)
    assert cache.get(t) is None and len(cache) == 0


def test_size_is_bounded_least_recently_used_first() -> None:
    cache = TokenCache(max_entries=2, lifetime_seconds=60)
    a, b, c = token(3600, "a"), token(3600, "b"), token(3600, "c")
    cache.put(a, Principal("a"))
    cache.put(b, Principal("b"))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, Principal("c"))
    assert len(cache) == 2
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None


def test_zero_size_disables_caching() -> None:
    cache = TokenCache(max_entries=0)
    t = token(3600)
    cache.put(t, Principal("1"))
    assert cache.get(t) is None
