"""Revoked users as every token verifier sees them: the REVOCATIONS key-value bucket (user id
-> not-before time) followed live and held in memory, and the verifier that refuses a token
issued before its user's not-before time, asking the user service while the feed is stale."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from global_errors import MessageKey, Unauthenticated
from global_utils.identity.principal import Principal, TokenVerifier
from global_utils.messaging.broker import Broker
from global_utils.runtime.backoff import Backoff
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

REVOCATIONS_BUCKET = "REVOCATIONS"
# JetStream keeps a key-value bucket as the stream KV_<bucket>, its keys as subjects under
# $KV.<bucket>. (nats-server's convention: any key-value client reads it).
REVOCATIONS_STREAM = f"KV_{REVOCATIONS_BUCKET}"
REVOCATIONS_SUBJECT_PREFIX = f"$KV.{REVOCATIONS_BUCKET}."
# The default bound: past it without news from the bucket, verifiers ask the user service.
DEFAULT_MAX_FEED_AGE_SECONDS = 3.0
# NATS status of an idle heartbeat (a JetStream push consumer's "still here").
_HEARTBEAT_STATUS = "100"
_LAST_CONSUMER_HEADER = "Nats-Last-Consumer"


def revocation_subject(user_id: int | str) -> str:
    """The key's subject: what the user service publishes a user's not-before time on."""
    return f"{REVOCATIONS_SUBJECT_PREFIX}{user_id}"


def encode_not_before(seconds: float) -> bytes:
    """A not-before time (seconds since the epoch) as the bucket stores it: decimal text."""
    return f"{seconds:.6f}".encode()


def decode_not_before(data: bytes) -> float | None:
    """The not-before time of a bucket value; None for anything else (never trusted)."""
    try:
        value = float(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


class RevocationFeed:
    """The bucket's entries for this process: every retained value is read from the start, and
    new ones arrive as they are written (an ephemeral push consumer on the connection's own
    inbox). The feed counts as fresh while, within max_age_seconds, the stream reported no
    entry this process has not applied; the check runs a few times per bound, in the
    background, never per call. A lost consumer (no heartbeat, or a gap in its deliveries) is
    made again from the last applied entry."""

    def __init__(
        self,
        broker: Broker[Any],
        *,
        max_age_seconds: float = DEFAULT_MAX_FEED_AGE_SECONDS,
        request_timeout: float = 1.0,
    ) -> None:
        self._broker = broker
        self._max_age = max_age_seconds
        self._check_every = max(0.1, min(1.0, max_age_seconds / 3))
        self._heartbeat = max(0.5, min(2.0, max_age_seconds / 2))
        self._timeout = request_timeout
        self._not_before: dict[str, float] = {}
        self._seen_seq = 0  # the stream's last sequence this process applied (or knows gone)
        self._delivered = 0  # the consumer's own sequence, to notice a missed delivery
        self._lost = asyncio.Event()
        self._last_activity = 0.0
        self._confirmed_at: float | None = None
        # (the stream's last sequence when asked, when asked) while entries up to it are on
        # their way: the state is complete as of that moment once they have been applied
        self._catching_up: tuple[int, float] | None = None
        self._loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # entries applied (metrics)
        self.resubscribed = 0  # consumers made again after a loss (metrics)

    @property
    def max_age_seconds(self) -> float:
        return self._max_age

    @property
    def age(self) -> float | None:
        """Seconds since the state was last known complete (None: never yet)."""
        if self._confirmed_at is None:
            return None
        return time.monotonic() - self._confirmed_at

    @property
    def fresh(self) -> bool:
        confirmed = self._confirmed_at
        return confirmed is not None and time.monotonic() - confirmed <= self._max_age

    @property
    def revoked_users(self) -> int:
        return len(self._not_before)

    def not_before(self, user_id: str) -> float | None:
        return self._not_before.get(user_id)

    async def start(self) -> None:
        """Starts following the bucket and waits (up to the bound) for its current state:
        a process reports SERVING with every earlier revocation applied, or, with NATS out
        of reach, with its verifier asking the user service."""
        self._task = asyncio.create_task(self._run(), name="revocation-feed")
        try:
            async with asyncio.timeout(self._max_age):
                await self._loaded.wait()
        except TimeoutError:
            logger.warning(
                "token revocations not loaded within %gs; tokens are checked with the user"
                " service until they are",
                self._max_age,
            )

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        delays = Backoff(initial=0.2, maximum=2.0).delays()
        failing = False
        while True:
            await self._broker.wait_connected()
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "token revocation feed interrupted (%s); tokens are checked with the"
                        " user service until it resumes",
                        "no REVOCATIONS bucket on NATS: provisioning makes it (python -m provision)"
                        if isinstance(exc, NotFoundError)
                        else exc,
                    )
                failing = True
                await asyncio.sleep(next(delays))
                continue
            # _follow returns when its consumer was lost: made again at once
            self.resubscribed += 1
            failing = False
            delays = Backoff(initial=0.2, maximum=2.0).delays()

    async def _follow(self) -> None:
        client = self._broker.client
        js = client.jetstream(timeout=self._timeout)
        inbox = client.new_inbox()
        self._lost.clear()
        self._catching_up = None
        self._delivered = 0
        self._last_activity = time.monotonic()
        subscription = await client.subscribe(inbox, cb=self._on_message)
        consumer: str | None = None
        try:
            info = await js.add_consumer(
                REVOCATIONS_STREAM,
                ConsumerConfig(
                    deliver_subject=inbox,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self._seen_seq + 1,
                    ack_policy=AckPolicy.NONE,
                    max_deliver=1,
                    idle_heartbeat=self._heartbeat,
                    inactive_threshold=max(10.0, 5 * self._heartbeat),
                    mem_storage=True,
                    num_replicas=1,
                ),
            )
            consumer = info.name
            while not self._lost.is_set():
                await self._confirm(js)
                if time.monotonic() - self._last_activity > 3 * self._heartbeat:
                    logger.info("token revocation feed: consumer silent, made again")
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._check_every):
                        await self._lost.wait()
            logger.info("token revocation feed: a delivery was missed, consumer made again")
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if consumer is not None and client.is_connected:
                with contextlib.suppress(Exception):
                    await js.delete_consumer(REVOCATIONS_STREAM, consumer)

    async def _confirm(self, js: Any) -> None:
        """Marks the state complete as of this request if nothing in the stream is missing."""
        asked = time.monotonic()
        try:
            info = await js.stream_info(REVOCATIONS_STREAM)
        except Exception as exc:
            logger.debug("token revocation feed: stream info failed: %s", exc)
            return
        state = info.state
        # Entries below the first retained one are gone (expired with the tokens they
        # revoked, or replaced by a later value of their key): nothing to wait for.
        self._seen_seq = max(self._seen_seq, state.first_seq - 1)
        self._catching_up = (state.last_seq, asked)
        self._caught_up()

    def _caught_up(self) -> None:
        """Marks the state complete as of the last check once everything it saw is applied."""
        if self._catching_up is None or self._seen_seq < self._catching_up[0]:
            return
        self._confirmed_at = max(self._confirmed_at or 0.0, self._catching_up[1])
        self._catching_up = None
        if not self._loaded.is_set():
            self._loaded.set()
            logger.info(
                "token revocations loaded: %d users revoked (%d entries applied)",
                len(self._not_before),
                self.applied,
            )

    async def _on_message(self, msg: Msg) -> None:
        self._last_activity = time.monotonic()
        headers = msg.headers or {}
        if not msg.data and headers.get("Status") == _HEARTBEAT_STATUS:
            last = headers.get(_LAST_CONSUMER_HEADER)
            if last is not None and last.isdecimal() and int(last) > self._delivered:
                self._lost.set()  # the server delivered something this process never got
            return
        try:
            meta = msg.metadata
        except Exception:  # not a JetStream delivery: not ours to read
            return
        if meta.sequence.consumer != self._delivered + 1:
            self._lost.set()
            return
        self._delivered = meta.sequence.consumer
        self._apply(msg.subject, msg.data)
        self._seen_seq = max(self._seen_seq, meta.sequence.stream)
        self._caught_up()

    def _apply(self, subject: str, data: bytes) -> None:
        if not subject.startswith(REVOCATIONS_SUBJECT_PREFIX):
            return
        user_id = subject[len(REVOCATIONS_SUBJECT_PREFIX) :]
        not_before = decode_not_before(data)
        if not user_id or not_before is None:
            logger.warning("token revocation feed: unreadable entry for %r ignored", subject)
            return
        # The latest time wins whatever order entries arrive in: a not-before never moves back.
        if not_before > self._not_before.get(user_id, 0.0):
            self._not_before[user_id] = not_before
        self.applied += 1


class RevocationCheckingVerifier:
    """TokenVerifier refusing a token issued before its user's not-before time. verified
    checks the token itself (signature and expiry, cached or not); while the feed is stale the
    token goes to fallback instead (the user service's ValidateToken, which owns the data),
    so a cached or locally valid token is never accepted on state that may be out of date."""

    def __init__(
        self, verified: TokenVerifier, feed: RevocationFeed, fallback: TokenVerifier
    ) -> None:
        self._verified = verified
        self._feed = feed
        self._fallback = fallback
        self.refused = 0  # tokens refused as revoked (metrics)
        self.fallbacks = 0  # checks that asked the user service (metrics)

    async def verify(self, token: str) -> Principal:
        if not self._feed.fresh:
            self.fallbacks += 1
            return await self._fallback.verify(token)
        principal = await self._verified.verify(token)
        not_before = self._feed.not_before(principal.user_id)
        if not_before is not None and principal.issued_at < not_before:
            self.refused += 1
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        return principal
