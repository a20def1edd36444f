"""State gauges: metrics read from the components' in-memory state when scraped, the prober
that keeps the few values needing I/O fresh (outbox backlog, consumer lag), and what more than
one service watches (the database pool, the outbox, the token cache)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from global_utils.runtime.tasks import cancel_and_wait

if TYPE_CHECKING:  # types only: the watched components are handed in, never imported to run
    from global_utils.data.database import Database, PoolUse
    from global_utils.identity.revocations import RevocationCheckingVerifier, RevocationFeed
    from global_utils.identity.token_cache import TokenCache
    from global_utils.messaging.outbox import OutboxRelay
    from global_utils.observability.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


def unlabelled(value: float | None) -> Mapping[str, float]:
    return {} if value is None else {"": value}


class StateCollector(Collector):
    """Metrics whose values live in the components (counts they keep anyway, pool sizes):
    read at scrape time, no I/O."""

    def __init__(self) -> None:
        self._metrics: list[tuple[str, str, str, Callable[[], Mapping[str, float]], str]] = []

    def add(
        self,
        name: str,
        documentation: str,
        kind: str,
        read: Callable[[], Mapping[str, float]],
        label: str = "",
    ) -> None:
        self._metrics.append((name, documentation, kind, read, label))

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        for name, documentation, kind, read, label in self._metrics:
            labels = [label] if label else []
            family: GaugeMetricFamily | CounterMetricFamily = (
                GaugeMetricFamily(name, documentation, labels=labels)
                if kind == "gauge"
                else CounterMetricFamily(name, documentation, labels=labels)
            )
            values = read()
            if not values and not label:
                continue  # not known yet: no sample rather than a made-up one
            for key, value in values.items():
                family.add_metric([key] if label else [], value)
            yield family


class Prober:
    """Runs the registered refreshes every interval; a failing one is reported once (and
    again once it recovers), and keeps its last values."""

    def __init__(
        self,
        probes: list[tuple[str, Callable[[], Awaitable[object]]]],
        interval: float,
        after: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._probes = probes
        self._interval = interval
        self._after = after
        self._task: asyncio.Task[None] | None = None
        self._failing: set[str] = set()

    async def start(self) -> None:
        if self._probes:
            self._task = asyncio.create_task(self._run(), name="metrics-probes")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        if self._after is not None:
            await self._after()
        while True:
            for name, refresh in self._probes:
                await self._refresh(name, refresh)
            await asyncio.sleep(self._interval)

    async def _refresh(self, name: str, refresh: Callable[[], Awaitable[object]]) -> None:
        try:
            async with asyncio.timeout(max(self._interval, 1.0)):
                await refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if name not in self._failing:
                logger.warning("metrics: %s cannot be read (%r); keeping its last value", name, exc)
                self._failing.add(name)
            return
        if name in self._failing:
            logger.info("metrics: %s read again", name)
            self._failing.discard(name)


def watch_database(metrics: ServiceMetrics, database: Database) -> None:
    def reading(field: Callable[[PoolUse], int]) -> Callable[[], float | None]:
        def read() -> float | None:
            use = database.pool_use()
            return None if use is None else field(use)

        return read

    metrics.gauge("gotemp_db_pool_size", "Connections the pool holds open.", reading(_size))
    metrics.gauge("gotemp_db_pool_in_use", "Pool connections lent out now.", reading(_in_use))
    metrics.gauge("gotemp_db_pool_idle", "Pool connections waiting to be lent.", reading(_idle))
    metrics.gauge("gotemp_db_pool_max_size", "Most connections the pool opens.", reading(_max))


def _size(use: PoolUse) -> int:
    return use.size


def _in_use(use: PoolUse) -> int:
    return use.in_use


def _idle(use: PoolUse) -> int:
    return use.idle


def _max(use: PoolUse) -> int:
    return use.max_size


def watch_outbox(metrics: ServiceMetrics, relay: OutboxRelay) -> None:
    """The producer's outbox: what waits to be published (shared by every instance of the
    service: they use one table) and what this instance published."""
    metrics.probe("outbox backlog", relay.check_backlog)
    metrics.gauge(
        "gotemp_outbox_pending_events",
        "Audit events committed and not yet published to JetStream (when last counted).",
        lambda: None if relay.backlog is None else relay.backlog.pending,
    )
    metrics.gauge(
        "gotemp_outbox_oldest_pending_age_seconds",
        "Age of the oldest unpublished audit event when last counted (0: none pending).",
        lambda: None if relay.backlog is None else relay.backlog.oldest_age_seconds,
    )
    metrics.counter(
        "gotemp_outbox_published_events_total",
        "Audit events this instance published and marked sent.",
        lambda: relay.published,
    )


def watch_token_cache(metrics: ServiceMetrics, cache: TokenCache) -> None:
    metrics.counter(
        "gotemp_token_cache_hits_total",
        "Token checks answered from the cache of verified tokens.",
        lambda: cache.hits,
    )
    metrics.counter(
        "gotemp_token_cache_misses_total",
        "Token checks the cache could not answer (the token was verified).",
        lambda: cache.misses,
    )
    metrics.gauge("gotemp_token_cache_entries", "Verified tokens cached.", lambda: len(cache))


def watch_revocations(
    metrics: ServiceMetrics,
    feed: RevocationFeed,
    verifier: RevocationCheckingVerifier | None = None,
) -> None:
    """The revocation feed: entries applied, how old the state is, and what the verifier did
    with it (tokens refused as revoked, checks that asked the user service instead)."""
    metrics.counter(
        "gotemp_token_revocations_applied_total",
        "Token revocations this process applied from the REVOCATIONS bucket.",
        lambda: feed.applied,
    )
    metrics.gauge(
        "gotemp_token_revocations_users",
        "Users with a revocation in force here (a not-before time).",
        lambda: feed.revoked_users,
    )
    metrics.gauge(
        "gotemp_token_revocation_feed_age_seconds",
        "Seconds since the revocation state was last known complete (past the bound, tokens"
        " are checked with the user service).",
        lambda: feed.age,
    )
    metrics.counter(
        "gotemp_token_revocation_feed_restarts_total",
        "Times the feed's consumer was lost and made again.",
        lambda: feed.resubscribed,
    )
    if verifier is None:
        return
    metrics.counter(
        "gotemp_tokens_refused_revoked_total",
        "Tokens refused because their user was revoked after they were issued.",
        lambda: verifier.refused,
    )
    metrics.counter(
        "gotemp_token_revocation_fallbacks_total",
        "Token checks sent to the user service because the revocation feed was stale.",
        lambda: verifier.fallbacks,
    )
