"""A short-lived, bounded cache of verified tokens, in front of any TokenVerifier."""

from __future__ import annotations

import time
from collections import OrderedDict

from global_utils.identity import jws
from global_utils.identity.principal import Principal, TokenVerifier


class TokenCache:
    """Principals of recently validated tokens, each kept until the earlier of a fixed
    lifetime and the token's own expiry; least recently used entries go first when full."""

    def __init__(self, max_entries: int = 10_000, lifetime_seconds: float = 60.0) -> None:
        self._max = max_entries
        self._lifetime = lifetime_seconds
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        # lookups that found a live entry, and those that did not (metrics read them)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            self.misses += 1
            return None
        principal, expires = entry
        if time.monotonic() >= expires:
            del self._entries[token]
            self.misses += 1
            return None
        self._entries.move_to_end(token)
        self.hits += 1
        return principal

    def put(self, token: str, principal: Principal) -> None:
        lifetime = min(self._lifetime, seconds_until_expiry(token))
        if lifetime <= 0 or self._max <= 0:
            return
        self._entries[token] = (principal, time.monotonic() + lifetime)
        self._entries.move_to_end(token)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def seconds_until_expiry(token: str) -> float:
    """Time left before the token's exp claim (read unverified: the user service verified it)."""
    try:
        return float(jws.unverified_claims(token)["exp"]) - time.time()
    except (KeyError, TypeError, ValueError):  # MalformedToken is a ValueError
        return 0.0


class CachingVerifier:
    """A TokenVerifier that asks inner only for tokens it has not verified recently."""

    def __init__(self, inner: TokenVerifier, cache: TokenCache) -> None:
        self._inner = inner
        self._cache = cache

    @property
    def cache(self) -> TokenCache:
        return self._cache

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        principal = await self._inner.verify(token)
        self._cache.put(token, principal)
        return principal
