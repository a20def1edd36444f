"""RawClient's protocol parser: raw subscriptions' frames are handed over whole and in order,
everything else reaches nats-py's own handling, however the bytes are split into reads (no
server needed: the bytes are what a NATS server writes; the live path is
tests/integration/test_audit_raw_client.py)."""

from __future__ import annotations

from typing import Any

import pytest

from audit.server.ingest.raw_client import RawClient, RawMessage

RAW_SID = 7
OTHER_SID = 3


class _RecordingClient(RawClient):
    """A RawClient that is never connected: what nats-py's side would do with a message or a
    protocol line is recorded, in one list with the raw subscription's messages."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self._raw_handlers[RAW_SID] = lambda messages: self.seen.extend(messages)

    async def _process_msg(  # type: ignore[override]  # the raw client's own signature
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        if sid in self._raw_handlers:
            await super()._process_msg(sid, subject, reply, data, headers)
        else:
            self.seen.append(("nats-py", sid, subject, reply, headers, data))

    async def _process_ping(self) -> None:
        self.seen.append("PING")

    async def _process_pong(self) -> None:
        self.seen.append("PONG")

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        self.seen.append(("INFO", info))


def _hmsg(sid: int, subject: bytes, reply: bytes, headers: bytes, data: bytes) -> bytes:
    line = b"HMSG %s %d %s%d %d\r\n" % (
        subject,
        sid,
        reply + b" " if reply else b"",
        len(headers),
        len(headers) + len(data),
    )
    return line + headers + data + b"\r\n"


def _raw(i: int) -> tuple[bytes, RawMessage]:
    reply = b"$JS.ACK.AUDIT.Audit_Insert.1.%d.%d.0.0" % (i, i)
    headers = b"NATS/1.0\r\nservice: user\r\neventId: %d\r\n\r\n" % i
    data = b"payload\r\n with CRLF and HMSG 7 inside %d" % i  # a payload may hold anything
    return _hmsg(RAW_SID, b"Audit", reply, headers, data), RawMessage(
        b"Audit", reply, headers, data
    )


STATUS = b"NATS/1.0 408 Request Timeout\r\n\r\n"
PIECES: list[tuple[bytes, Any]] = [
    _raw(1),
    _raw(2),
    # a pull request's end: no reply subject, no payload
    (
        _hmsg(RAW_SID, b"_INBOX.audit.x.1", b"", STATUS, b""),
        RawMessage(b"_INBOX.audit.x.1", b"", STATUS, b""),
    ),
    (b"PING\r\n", "PING"),
    _raw(3),
    (
        b'MSG _INBOX.api.1 3 11\r\n{"ok":true}\r\n',
        ("nats-py", OTHER_SID, b"_INBOX.api.1", b"", None, b'{"ok":true}'),
    ),
    _raw(4),
    (
        _hmsg(OTHER_SID, b"other", b"r", b"NATS/1.0\r\nk: v\r\n\r\n", b"x"),
        ("nats-py", OTHER_SID, b"other", b"r", b"NATS/1.0\r\nk: v\r\n\r\n", b"x"),
    ),
    (b"+OK\r\n", None),
    (b'INFO {"server_id":"s"}\r\n', ("INFO", {"server_id": "s"})),
    _raw(5),
    (b"PONG\r\n", "PONG"),
    _raw(6),
]
STREAM = b"".join(wire for wire, _ in PIECES)
EXPECTED = [seen for _, seen in PIECES if seen is not None]


async def _feed(chunks: list[bytes]) -> list[Any]:
    client = _RecordingClient()
    for chunk in chunks:
        await client._ps.parse(chunk)
    assert not client._ps.buf  # nothing left over
    return client.seen


async def test_a_stream_in_one_read_is_taken_apart_in_order() -> None:
    assert await _feed([STREAM]) == EXPECTED


async def test_every_split_into_two_reads_gives_the_same() -> None:
    for cut in range(1, len(STREAM)):
        assert await _feed([STREAM[:cut], STREAM[cut:]]) == EXPECTED, f"cut at {cut}"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100])
async def test_reads_of_any_size_give_the_same(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await _feed(chunks) == EXPECTED


async def test_a_frame_for_a_subscription_gone_goes_to_nats_py() -> None:
    client = _RecordingClient()
    del client._raw_handlers[RAW_SID]
    wire, message = _raw(1)
    await client._ps.parse(wire)
    assert client.seen == [("nats-py", RAW_SID, *message)]


async def _calls(chunks: list[bytes]) -> list[int]:
    """How many raw messages each call of the handler brought."""
    client = _RecordingClient()
    calls: list[int] = []
    client._raw_handlers[RAW_SID] = lambda messages: calls.append(len(messages))
    for chunk in chunks:
        await client._ps.parse(chunk)
    return calls


async def test_a_run_of_frames_in_one_read_is_handed_over_in_one_call() -> None:
    assert await _calls([b"".join(_raw(i)[0] for i in range(50))]) == [50]


async def test_frames_split_between_reads_keep_the_fast_path() -> None:
    frames = [_raw(i)[0] for i in range(50)]
    run = b"".join(frames)
    cut = len(b"".join(frames[:20])) + 100  # inside the 21st frame's header block
    assert await _calls([run[:cut], run[cut:]]) == [20, 30]


async def test_after_another_subscriptions_message_split_between_reads_the_fast_path_resumes() -> (
    None
):
    other = b"MSG _INBOX.api.1 3 200\r\n" + b"x" * 200 + b"\r\n"
    run = b"".join(_raw(i)[0] for i in range(50))
    # the first read ends 150 bytes into the other message's payload
    assert await _calls([other[:174], other[174:] + run]) == [50]
