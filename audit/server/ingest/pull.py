"""A JetStream pull subscription that hands deliveries over in batches, as raw bytes.

It speaks JetStream's pull protocol over the shared nats-py connection: pull requests
(`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with a batch size and an expiry) answered on
an inbox of our own, deliveries acknowledged by publishing `+ACK`, `-NAK` or `+TERM` to their
reply subject. Two requests stay open while messages flow, so the server keeps delivering
while a batch is being stored.

Batches are counted in events, not messages: a message may be an envelope of many events
(weigh tells how many), so a batch takes messages until it holds batch_size events, and each
pull request asks for about batch_size events' worth of messages (by the events per message
seen lately).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.subscription import Subscription

from audit.server.ingest.raw_client import RawClient, RawMessage
from global_utils.messaging.broker import Broker

logger = logging.getLogger(__name__)

_ACK_PREFIX = b"$JS.ACK."
_STATUS_LINE = b"NATS/1.0 "
# How long after a request's expiry we stop waiting for the server to say it ended (a
# reconnect loses pending requests silently).
_GRACE_SECONDS = 1.0
# How quickly the events-per-message estimate follows what arrives (a share per read).
_WEIGHT_SMOOTHING = 0.25


class ConsumerGone(Exception):
    """The server answered a pull request with a status that ends this subscription."""


# One message as delivered: its subject, ack subject (reply), header block and payload.
Delivery = RawMessage


@dataclass(slots=True)
class _Request:
    number: int
    owed: int  # messages the server may still deliver for it
    give_up_at: float


class PullSubscription:
    def __init__(
        self,
        broker: Broker[RawClient],
        *,
        stream: str,
        consumer: str,
        batch_size: int,
        expires_seconds: float,
        weigh: Callable[[Delivery], int] = lambda _: 1,
    ) -> None:
        self._broker = broker
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch_size  # events
        self._expires = expires_seconds
        self._weigh = weigh
        self._per_message = 1.0  # events per message lately
        self._buffer: list[Delivery] = []
        self._weights: list[int] = []  # the buffer's, events per delivery
        self._buffered = 0  # events in the buffer
        self._arrived = asyncio.Event()
        self._requests: deque[_Request] = deque()
        self._numbered = 0
        self._inbox = ""
        self._client: RawClient | None = None
        self._subscription: Subscription | None = None
        self._failure: ConsumerGone | None = None
        self._reconnects = 0

    async def open(self) -> None:
        self._client = self._broker.client
        self._inbox = self._client.new_inbox()
        self._reconnects = self._client.stats["reconnects"]
        self._subscription = await self._client.subscribe_raw(f"{self._inbox}.*", self._receive)

    async def close(self) -> None:
        client, subscription = self._client, self._subscription
        self._client = self._subscription = None
        if client is not None and subscription is not None:
            await client.unsubscribe_raw(subscription)

    async def next_batch(self, max_events: int, timeout: float) -> list[Delivery]:
        """Whatever has arrived (messages holding at most max_events events, or one message
        holding more), waiting up to timeout for the first; an empty list when nothing came."""
        if not self._buffer:
            self._raise_failure()  # reported while the last batch was being stored
            await self._request_more()
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    while not self._buffer:
                        await self._arrived.wait()
                        self._arrived.clear()
                        self._raise_failure()
                        await self._request_more()
            except TimeoutError:
                return []
        taken = events = 0
        weights = self._weights
        while taken < len(weights) and (taken == 0 or events + weights[taken] <= max_events):
            events += weights[taken]
            taken += 1
        batch, self._buffer = self._buffer[:taken], self._buffer[taken:]
        self._weights = weights[taken:]
        self._buffered -= events
        await self._request_more()
        return batch

    async def ack(self, deliveries: list[Delivery]) -> None:
        await self._reply(deliveries, b"+ACK")

    async def term(self, deliveries: list[Delivery]) -> None:
        await self._reply(deliveries, b"+TERM")

    async def nak(self, deliveries: list[Delivery], delay_seconds: float) -> None:
        await self._reply(deliveries, b'-NAK {"delay": %d}' % int(delay_seconds * 1e9))

    async def _reply(self, deliveries: list[Delivery], body: bytes) -> None:
        await self._broker.client.publish_each([d.reply for d in deliveries], body)

    async def _request_more(self) -> None:
        """Keeps up to two pull requests open: a new one once less than half a batch is owed,
        none while more than a batch waits in the buffer."""
        client = self._broker.client
        now = time.monotonic()
        if client.stats["reconnects"] != self._reconnects:
            # A reconnect loses the open requests without a word: forget them at once.
            self._reconnects = client.stats["reconnects"]
            self._requests.clear()
        while self._requests and self._requests[0].give_up_at < now:
            self._requests.popleft()  # its end was never reported
        # A batch's worth of events, in messages of the size seen lately.
        messages = max(1, min(self._batch, round(self._batch / self._per_message)))
        owed = sum(r.owed for r in self._requests)
        if 2 * owed >= messages or len(self._requests) >= 2 or self._buffered > self._batch:
            return
        self._numbered += 1
        request = _Request(self._numbered, messages, now + self._expires + _GRACE_SECONDS)
        self._requests.append(request)
        body = json.dumps({"batch": messages, "expires": int(self._expires * 1e9)}).encode()
        await client.publish(self._next_subject, body, reply=f"{self._inbox}.{request.number}")

    def _receive(self, messages: list[RawMessage]) -> None:
        deliveries = [m for m in messages if m.reply.startswith(_ACK_PREFIX)]
        if deliveries:
            weights = [self._weigh(d) for d in deliveries]
            events = sum(weights)
            self._buffer += deliveries
            self._weights += weights
            self._buffered += events
            self._per_message += _WEIGHT_SMOOTHING * (events / len(weights) - self._per_message)
        if len(deliveries) == len(messages):  # the usual: a run of deliveries
            self._count_delivered(len(deliveries))
        else:  # status messages among them: in order, as each ends a request
            for message in messages:
                if message.reply.startswith(_ACK_PREFIX):
                    self._count_delivered(1)
                elif message.headers is not None and message.headers.startswith(_STATUS_LINE):
                    self._status(message.subject, message.headers)
        self._arrived.set()

    def _count_delivered(self, count: int) -> None:
        """The server serves pull requests in order: the oldest open ones owe these messages."""
        requests = self._requests
        while count and requests:
            head = requests[0]
            taken = min(head.owed, count)
            head.owed -= taken
            count -= taken
            if head.owed <= 0:
                requests.popleft()

    def _status(self, subject: bytes, headers: bytes) -> None:
        code, _, description = headers[len(_STATUS_LINE) :].split(b"\r\n", 1)[0].partition(b" ")
        if code == b"100":  # idle heartbeat
            return
        number = subject.rpartition(b".")[2]
        self._requests = deque(r for r in self._requests if str(r.number).encode() != number)
        if code in (b"404", b"408"):  # no messages / request expired: the request is over
            return
        text = f"{code.decode(errors='replace')} {description.decode(errors='replace')}".strip()
        if code == b"409" and b"Exceeded" in description:
            logger.debug("pull request refused: %s", text)
            return
        # 409 consumer deleted / leadership change, 503 no responders (stream or consumer gone)
        self._failure = ConsumerGone(f"JetStream answered a pull request with {text}")

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
