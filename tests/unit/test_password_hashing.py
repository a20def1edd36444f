"""Password hashing in worker processes: results, a worker killed from outside, shutdown."""

from __future__ import annotations

import asyncio
import io
import os
import signal

import bcrypt
import psutil
import pytest

from tests.helpers import eventually
from user.server.hashing_worker import (
    ANSWER,
    CHECK,
    HASH,
    MAX_FIELD_BYTES,
    OK,
    REFUSED,
    REQUEST,
    serve,
)
from user.server.passwords import (
    BCRYPT_NICENESS,
    MAX_DEFAULT_WORKERS,
    PasswordHasher,
    default_bcrypt_workers,
)


def _hashing_processes(other_than: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This process's spawned workers (other hashers of the test session excepted)."""
    return [
        child
        for child in psutil.Process().children()
        if "user.server.hashing_worker" in child.cmdline() and child.pid not in other_than
    ]


async def test_hashes_check_and_survive_a_killed_worker() -> None:
    others = frozenset(p.pid for p in _hashing_processes())
    hasher = PasswordHasher(rounds=4, workers=1)
    await hasher.start()
    try:
        hashed = await hasher.hash("correct horse")
        assert await hasher.check("correct horse", hashed)
        assert not await hasher.check("wrong horse", hashed)
        assert not await hasher.check("x", "not a bcrypt hash")
        assert not await hasher.check("x" * 73, hashed)
        workers = _hashing_processes(others)
        assert workers and all(w.nice() == BCRYPT_NICENESS for w in workers)

        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
        assert await hasher.check("correct horse", hashed)  # a new pool took over
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        await hasher.stop()

    async def workers_gone() -> bool:
        return not _hashing_processes(others)

    await eventually(workers_gone, what="the hashing processes to exit after stop()")


def test_default_worker_count_leaves_a_core_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 1), (2, 1), (3, 2), (64, MAX_DEFAULT_WORKERS)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert default_bcrypt_workers() == expected


async def test_a_cancelled_check_leaves_the_worker_in_step() -> None:
    hasher = PasswordHasher(rounds=4, workers=1)
    await hasher.start()
    try:
        hashed = await hasher.hash("correct horse")
        first = asyncio.ensure_future(hasher.check("wrong horse", hashed))
        await asyncio.sleep(0)  # one turn of the loop: it takes the worker, sends its request
        first.cancel()
        # the next answer read from the worker is this call's, not the cancelled one's
        assert await hasher.check("correct horse", hashed)
        assert not await hasher.check("wrong horse", hashed)
        assert hasher.in_flight == hasher.queued == 0
    finally:
        await hasher.stop()


async def test_a_stored_value_bcrypt_cannot_read_fails_the_check() -> None:
    hasher = PasswordHasher(rounds=4, workers=1)
    try:
        assert not await hasher.check("x", "$2b$04$" + "a" * 2000)  # longer than any hash
        assert not await hasher.check("x", "$2b$04$short")
        assert await hasher.check("x", await hasher.hash("x"))  # the worker is still in step
    finally:
        await hasher.stop()


def frame(operation: int, password: bytes, other: bytes) -> bytes:
    return REQUEST.pack(operation, len(password), len(other)) + password + other


def answers(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        status, size = ANSWER.unpack_from(data, at)
        at += ANSWER.size
        out.append((status, data[at : at + size]))
        at += size
    return out


def test_worker_answers_each_request_in_turn() -> None:
    salt = bcrypt.gensalt(4)
    stored = bcrypt.hashpw(b"pw", salt)
    requests = io.BytesIO(
        frame(HASH, b"pw", salt)
        + frame(CHECK, b"pw", stored)
        + frame(CHECK, b"other", stored)
        + frame(CHECK, b"pw", b"not a hash")
        + frame(9, b"", b"")
    )
    out = io.BytesIO()
    serve(requests, out)
    got = answers(out.getvalue())
    assert got[0] == (OK, stored)
    assert got[1:3] == [(OK, b"\x01"), (OK, b"\x00")]
    assert got[3][0] == REFUSED and got[3][1]  # bcrypt's reason, as text
    assert got[4] == (REFUSED, b"unknown operation 9")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        REQUEST.pack(CHECK, 2, 5)[:4],  # a header cut short
        REQUEST.pack(CHECK, 2, 60) + b"pw",  # the strings cut short
        REQUEST.pack(HASH, MAX_FIELD_BYTES + 1, 0),  # no request of the service's is this long
    ],
)
def test_worker_stops_at_input_that_is_no_whole_request(data: bytes) -> None:
    out = io.BytesIO()
    serve(io.BytesIO(data), out)  # returns: no hang, no exception
    assert out.getvalue() == b""
