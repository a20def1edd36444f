"""nats-py's client with raw-bytes subscriptions and batched publishes, for the audit consumer.

What of nats-py this relies on beyond its public API (checked against nats-py 2.16):
- `Client._ps`, the connection's protocol parser (`nats.protocol.parser.Parser`): replaced by
  a subclass. `Client._read_loop` awaits `_ps.parse(data)` with each chunk read from the socket;
  the parser keeps what it has not consumed in `buf` (a bytearray) and its position in `state`
  (`AWAITING_CONTROL_LINE` between messages); a reconnect calls `_ps.reset()`.
- `Client._process_msg(sid, subject, reply, data, headers)`: overridden. nats-py's parser
  awaits it for every MSG/HMSG it parses itself, with bytes for subject, reply and payload, and
  the raw header block (bytes) or None, despite its `dict` hint.
- `Client._sid`: the last subscription id; `subscribe()` increments it and takes the new value
  before its first await, which is how `subscribe_raw` knows the sid in advance.
- `Subscription._id`: a subscription's sid (checked after subscribing, to follow a change in
  how nats-py numbers them).
- `Client._send_command(bytes)` and `Client._flush_pending()`: queue protocol bytes for the
  connection's writer and have them written (with the reconnect buffer while disconnected).
- Public but load-bearing: `Client.stats` (pull.py forgets its open pull requests when
  "reconnects" changes), `new_inbox()`, `is_closed`, `subscribe()` / `publish()`.

When nats-py changes (a new version in requirements): run
`tests/integration/test_audit_raw_client.py` (raw frames arrive as bytes, whole or split at any
byte, ordinary subscriptions and protocol messages beside them still work, nothing arrives after
unsubscribing, batched publishes reach raw and ordinary subscribers alike) and the audit pipeline
tests (`tests/integration/test_audit_pipeline.py`). If they fail, read the new version's
`Client.subscribe`, `Client._process_msg`, `Client._read_loop`, `Parser.parse` and
`Client._send_command` and adapt RawClient (and this list). Should the parser stop handing over
the raw header block, the way back is nats-py's own `pull_subscribe()` / `fetch()` in the
consumer: correct, but slower (see the class docstring).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.protocol.parser import AWAITING_CONTROL_LINE, CRLF_SIZE, Parser


class RawMessage(NamedTuple):
    """A message as it came off the wire."""

    subject: bytes
    reply: bytes  # empty when the message has none
    headers: bytes | None  # the header block ("NATS/1.0...\r\n\r\n"), None without one
    data: bytes


# Takes the messages of one raw subscription, in the order they arrived, as many at a time as
# came in one read from the socket.
RawHandler = Callable[[list[RawMessage]], None]


class RawClient(Client):
    """nats-py's client plus two things a consumer taking thousands of messages per second
    needs: subscriptions whose messages are handed over as raw bytes, a whole read's worth at a
    time (no Msg object, no header dict, no coroutine per message: nats-py's per-message work
    cost more than everything else the audit consumer does), and one write for a whole batch of
    small publishes (acknowledgements). Connection handling (reconnects, re-subscribing, auth,
    TLS) and every other message stay nats-py's own."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}
        self._ps = _RawParser(self, self._raw_handlers)

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
            # a raw message nats-py's parser read (one that came after another kind of message)
            handler([RawMessage(subject, reply, headers, data)])

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


# A message with headers as the server writes it: HMSG <subject> <sid> [reply] <header bytes>
# <total bytes>, then the header block and payload (total bytes) and CRLF.
_HMSG = re.compile(rb"HMSG ([^ \r\n]+) ([0-9]+) (?:([^ \r\n]+) )?([0-9]+) ([0-9]+)\r\n")


class _RawParser(Parser):
    """nats-py's parser with a fast path for the raw subscriptions' messages: a run of
    complete HMSG frames for one raw subscription is read straight from the chunk and handed
    over in one call. Anything else (another subscription's message, PING, INFO, -ERR, a frame
    without headers) is given to nats-py's own parser one protocol line, or one message, at a
    time, so the frames after it take the fast path again."""

    def __init__(self, client: Client, handlers: dict[int, RawHandler]) -> None:
        super().__init__(client)
        self._handlers = handlers
        self._stats = client.stats

    async def parse(self, data: bytes = b"") -> None:
        while True:
            if self.state != AWAITING_CONTROL_LINE:
                # Inside a message nats-py's parser began: give it just the rest of that one.
                missing = self.needed + CRLF_SIZE - len(self.buf)
                await super().parse(data[:missing])
                data = data[missing:]
                if self.state != AWAITING_CONTROL_LINE or not data:
                    return
            if self.buf:  # the start of a frame or line that the last chunk ended in
                data = bytes(self.buf) + data
                self.buf.clear()
            taken, waiting = self._take_raw(data)
            data = data[taken:]
            if not data:
                return
            line_end = data.find(b"\r\n")
            if waiting or line_end < 0:
                self.buf.extend(data)  # the rest of it is still on its way
                return
            # Not a raw frame: nats-py's parser takes its first line (a message's rest next).
            await super().parse(data[: line_end + CRLF_SIZE])
            data = data[line_end + CRLF_SIZE :]

    def _take_raw(self, data: bytes) -> tuple[int, bool]:
        """Hands over the complete raw frames at the start of data; returns where they end and
        whether a raw frame starts there that has not fully arrived."""
        handlers = self._handlers
        size = len(data)
        position = 0
        waiting = False
        run: list[RawMessage] = []
        run_sid = -1
        match = _HMSG.match
        while (frame := match(data, position)) is not None:
            subject, sid_text, reply, header_size, total_size = frame.groups()
            sid = int(sid_text)
            if sid != run_sid:
                if sid not in handlers:
                    break
                if run:
                    self._hand_over(run_sid, run)
                    run = []
                run_sid = sid
            start = frame.end()
            end = start + int(total_size)
            if end + CRLF_SIZE > size:
                waiting = True
                break
            split = start + int(header_size)
            run.append(RawMessage(subject, reply or b"", data[start:split], data[split:end]))
            position = end + CRLF_SIZE
        if run:
            self._hand_over(run_sid, run)
        return position, waiting

    def _hand_over(self, sid: int, messages: list[RawMessage]) -> None:
        self._stats["in_msgs"] += len(messages)
        self._handlers[sid](messages)
