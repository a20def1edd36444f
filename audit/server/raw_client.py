"""nats-py's client with raw-bytes subscriptions and batched publishes, for the audit consumer.

What of nats-py this relies on beyond its public API (checked against nats-py 2.16):
- `Client._process_msg(sid, subject, reply, data, headers)`: overridden. nats-py's protocol
  parser (`nats.protocol.parser.Parser`) awaits it for every MSG/HMSG with bytes for subject,
  reply and payload, and the raw header block (bytes) or None, despite its `dict` hint.
- `Client._sid`: the last subscription id; `subscribe()` increments it and takes the new value
  before its first await, which is how `subscribe_raw` knows the sid in advance.
- `Subscription._id`: a subscription's sid (checked after subscribing, to follow a change in
  how nats-py numbers them).
- `Client._send_command(bytes)` and `Client._flush_pending()`: queue protocol bytes for the
  connection's writer and have them written (with the reconnect buffer while disconnected).
- Public but load-bearing: `Client.stats["reconnects"]` (pull.py forgets its open pull
  requests when it changes), `new_inbox()`, `is_closed`, `subscribe()` / `publish()`.

When nats-py changes (a new version in requirements): run
`tests/integration/test_audit_raw_client.py` (raw frames arrive as bytes, ordinary
subscriptions beside them still work, nothing arrives after unsubscribing, batched publishes
reach raw and ordinary subscribers alike) and the audit pipeline tests
(`tests/integration/test_audit_pipeline.py`). If they fail, read the new version's
`Client.subscribe`, `Client._process_msg`, `Parser.parse` and `Client._send_command` and adapt
RawClient (and this list). Should the parser stop handing over the raw header block, the way
back is nats-py's own `pull_subscribe()` / `fetch()` in the consumer: correct, but slower (see
the class docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError

# (subject, reply, header block or None, payload), straight from the wire.
RawHandler = Callable[[bytes, bytes, bytes | None, bytes], None]


class RawClient(Client):
    """nats-py's client plus two things a consumer taking thousands of messages per second
    needs: subscriptions whose messages are handed over as raw bytes (no Msg object, no header
    dict: nats-py's per-message header parsing cost more than everything else the audit
    consumer does), and one write for a whole batch of small publishes (acknowledgements).
    Connection handling (reconnects, re-subscribing, auth, TLS) stays nats-py's own."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}

    # nats-py's own hint says headers is a dict, but its parser hands over the raw header block
    # (bytes) or None: the override states what actually arrives, which mypy calls a mismatch.
    async def _process_msg(  # type: ignore[override]  # see the comment above
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._raw_handlers.get(sid)
        if handler is None:
            # nats-py's parser passes None for a message without headers, despite its hint
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]  # see above: the hint is narrower than what nats-py passes
        else:
            handler(subject, reply, headers, data)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        # subscribe() takes the next sid before its first await: register the handler for it
        # first, so not even the first message can reach the ordinary path.
        sid = self._sid + 1
        self._raw_handlers[sid] = handler
        try:
            subscription = await self.subscribe(subject)
        except BaseException:
            self._raw_handlers.pop(sid, None)
            raise
        if subscription._id != sid:  # nats-py changed how it numbers subscriptions
            self._raw_handlers[subscription._id] = self._raw_handlers.pop(sid)
        return subscription

    async def unsubscribe_raw(self, subscription: Subscription) -> None:
        self._raw_handlers.pop(subscription._id, None)
        if not self.is_closed:
            await subscription.unsubscribe()

    async def publish_each(self, subjects: Iterable[bytes], payload: bytes) -> None:
        """Publishes payload to each subject in one write (buffered while reconnecting)."""
        if self.is_closed:
            raise ConnectionClosedError
        # `PUB <subject> <size>\r\n<payload>\r\n` for each: the part after one subject and
        # before the next is the same every time, so one join writes them all.
        tail = b" %d\r\n%s\r\n" % (len(payload), payload)
        listed = list(subjects)
        if listed:
            commands = b"PUB " + (tail + b"PUB ").join(listed) + tail
            await self._send_command(commands)
            await self._flush_pending()
