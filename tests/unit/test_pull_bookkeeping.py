"""The pull subscription's bookkeeping of what the server delivers and says (no server needed:
these are the raw frames nats-py hands over)."""

from __future__ import annotations

import time
from collections import deque

import pytest

from audit.server.pull import ConsumerGone, PullSubscription, _Request
from global_utils.broker import Broker


def _pull(*open_requests: int, owed: int = 3) -> PullSubscription:
    pull = PullSubscription(
        Broker("nats://127.0.0.1:1", name="unit"),
        stream="AUDIT",
        consumer="Audit_Insert",
        batch_size=owed,
        expires_seconds=5,
    )
    pull._inbox = "_INBOX.unit"
    later = time.monotonic() + 60
    pull._requests = deque(_Request(number, owed, later) for number in open_requests)
    return pull


def _deliver(pull: PullSubscription, n: int) -> None:
    for i in range(n):
        reply = f"$JS.ACK.AUDIT.Audit_Insert.1.{i}.{i}.0.0".encode()
        pull._receive(b"Audit", reply, b"NATS/1.0\r\nservice: x\r\n\r\n", b"payload")


def _status(pull: PullSubscription, request: int, line: bytes) -> None:
    pull._receive(f"_INBOX.unit.{request}".encode(), b"", b"NATS/1.0 " + line + b"\r\n\r\n", b"")


def test_deliveries_are_buffered_and_charged_to_the_oldest_request() -> None:
    pull = _pull(1, 2)
    _deliver(pull, 4)
    assert len(pull._buffer) == 4 and pull._buffer[0].data == b"payload"
    assert [(r.number, r.owed) for r in pull._requests] == [(2, 2)]  # request 1 is served


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
    pull._receive(b"_INBOX.unit.1", b"", None, b"stray")
    pull._receive(b"_INBOX.unit.1", b"reply.elsewhere", b"NATS/1.0\r\n\r\n", b"stray")
    assert not pull._buffer and [r.owed for r in pull._requests] == [3]
