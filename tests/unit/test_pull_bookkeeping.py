"""The pull subscription's bookkeeping of what the server delivers and says (no server needed:
these are the raw frames RawClient hands over, a read's worth at a time)."""

from __future__ import annotations

import time
from collections import deque

import pytest

from audit.server.ingest.pull import ConsumerGone, PullSubscription, _Request
from audit.server.ingest.raw_client import RawMessage
from global_utils.events.envelope import envelope_headers, event_count, header_block


class _Connection:
    """Stands in for the NATS connection: records what would be published."""

    def __init__(self) -> None:
        self.stats = {"reconnects": 0}
        self.published: list[tuple[str, bytes, str]] = []

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.published.append((subject, payload, reply))


class _Broker:
    def __init__(self) -> None:
        self.client = _Connection()


def _pull(*open_requests: int, owed: int = 3) -> PullSubscription:
    pull = PullSubscription(
        _Broker(),  # type: ignore[arg-type]  # a stand-in with only what PullSubscription uses
        stream="AUDIT",
        consumer="Audit_Insert",
        batch_size=owed,
        expires_seconds=5,
    )
    pull._inbox = "_INBOX.unit"
    later = time.monotonic() + 60
    pull._requests = deque(_Request(number, owed, later) for number in open_requests)
    return pull


def _deliveries(n: int) -> list[RawMessage]:
    return [
        RawMessage(
            b"Audit",
            f"$JS.ACK.AUDIT.Audit_Insert.1.{i}.{i}.0.0".encode(),
            b"NATS/1.0\r\nservice: x\r\n\r\n",
            b"payload",
        )
        for i in range(n)
    ]


def _deliver(pull: PullSubscription, n: int) -> None:
    pull._receive(_deliveries(n))  # one read's worth


def _status_message(request: int, line: bytes) -> RawMessage:
    return RawMessage(
        f"_INBOX.unit.{request}".encode(), b"", b"NATS/1.0 " + line + b"\r\n\r\n", b""
    )


def _status(pull: PullSubscription, request: int, line: bytes) -> None:
    pull._receive([_status_message(request, line)])


def test_deliveries_are_buffered_and_charged_to_the_oldest_request() -> None:
    pull = _pull(1, 2)
    _deliver(pull, 4)
    assert len(pull._buffer) == 4 and pull._buffer[0].data == b"payload"
    assert [(r.number, r.owed) for r in pull._requests] == [(2, 2)]  # request 1 is served


def test_deliveries_one_at_a_time_are_charged_the_same_way() -> None:
    pull = _pull(1, 2)
    for message in _deliveries(4):
        pull._receive([message])
    assert len(pull._buffer) == 4
    assert [(r.number, r.owed) for r in pull._requests] == [(2, 2)]


def test_deliveries_and_statuses_in_one_read_are_taken_in_their_order() -> None:
    pull = _pull(1, 2, 3)
    # request 1 delivers two and then expires; request 2 owes all of the next two
    pull._receive([*_deliveries(2), _status_message(1, b"408 Request Timeout"), *_deliveries(2)])
    assert len(pull._buffer) == 4
    assert [(r.number, r.owed) for r in pull._requests] == [(2, 1), (3, 3)]


def test_expired_or_empty_requests_end_without_failing() -> None:
    pull = _pull(1, 2)
    _status(pull, 1, b"408 Request Timeout")
    _status(pull, 2, b"100 Idle Heartbeat")  # keeps request 2 open
    assert [r.number for r in pull._requests] == [2]
    _status(pull, 2, b"404 No Messages")
    assert not pull._requests
    pull._raise_failure()  # nothing to raise
    _status(pull, 3, b"409 Exceeded MaxWaiting")
    pull._raise_failure()


@pytest.mark.parametrize("line", [b"409 Consumer Deleted", b"503"])
def test_a_vanished_consumer_ends_the_subscription(line: bytes) -> None:
    pull = _pull(1)
    _status(pull, 1, line)
    with pytest.raises(ConsumerGone, match=line.decode().split()[0]):
        pull._raise_failure()


def test_messages_that_are_neither_deliveries_nor_statuses_are_ignored() -> None:
    pull = _pull(1)
    pull._receive([RawMessage(b"_INBOX.unit.1", b"", None, b"stray")])
    pull._receive([RawMessage(b"_INBOX.unit.1", b"reply.elsewhere", b"NATS/1.0\r\n\r\n", b"x")])
    assert not pull._buffer and [r.owed for r in pull._requests] == [3]


async def test_a_failure_reported_while_a_batch_was_stored_ends_the_next_wait() -> None:
    pull = _pull(1)
    _deliver(pull, 1)
    assert len(await pull.next_batch(10, timeout=1)) == 1  # what arrived is handed over first
    _status(pull, 1, b"409 Consumer Deleted")
    with pytest.raises(ConsumerGone):
        await pull.next_batch(10, timeout=1)


async def test_requests_keep_half_a_batch_owed_and_are_forgotten_on_reconnect() -> None:
    pull = _pull(owed=4)
    connection = pull._broker.client
    assert await pull.next_batch(10, timeout=0.01) == []
    assert connection.published == [
        (
            "$JS.API.CONSUMER.MSG.NEXT.AUDIT.Audit_Insert",
            b'{"batch": 4, "expires": 5000000000}',
            "_INBOX.unit.1",
        )
    ]
    _deliver(pull, 3)  # request 1 now owes 1 (< half a batch): a second one is asked for
    assert len(await pull.next_batch(10, timeout=1)) == 3
    assert [r.number for r in pull._requests] == [1, 2]
    connection.stats["reconnects"] += 1  # the server forgot both
    await pull.next_batch(10, timeout=0.01)
    assert [r.number for r in pull._requests] == [3]


def _envelope(events: int, i: int = 0) -> RawMessage:
    """A delivered envelope naming events events (its body is not read here)."""
    return RawMessage(
        b"Audit",
        f"$JS.ACK.AUDIT.Audit_Insert.1.{i}.{i}.0.0".encode(),
        header_block(envelope_headers(f"envelope-{i}")),
        events.to_bytes(4, "big") + b"rest",
    )


def _weighed(owed: int) -> PullSubscription:
    pull = PullSubscription(
        _Broker(),  # type: ignore[arg-type]  # a stand-in with only what PullSubscription uses
        stream="AUDIT",
        consumer="Audit_Insert",
        batch_size=owed,
        expires_seconds=5,
        weigh=lambda d: event_count(d.headers, d.data),
    )
    pull._inbox = "_INBOX.unit"
    return pull


async def test_a_batch_holds_at_most_its_events_and_never_splits_an_envelope() -> None:
    pull = _weighed(100)
    pull._receive([_envelope(40, 1), _envelope(40, 2), _envelope(40, 3), *_deliveries(2)])
    # 40 + 40, then 40 + 1 + 1
    assert [len(await pull.next_batch(100, timeout=1)) for _ in range(2)] == [2, 3]
    pull._receive([_envelope(250, 4)])  # larger than a batch: handed over alone
    assert [m.reply for m in await pull.next_batch(100, timeout=1)] == [_envelope(250, 4).reply]


async def test_pull_requests_ask_for_a_batch_of_events_in_messages_of_the_size_seen() -> None:
    pull = _weighed(100)
    connection = pull._broker.client
    await pull.next_batch(100, timeout=0.01)
    assert b'"batch": 100' in connection.published[-1][1]  # no envelopes seen yet
    for i in range(20):  # envelopes of 50 arrive, and are taken
        pull._receive([_envelope(50, i)])
        await pull.next_batch(100, timeout=1)
    pull._requests.clear()
    await pull.next_batch(100, timeout=0.01)
    assert b'"batch": 2,' in connection.published[-1][1]
