"""Password hashing in worker processes: results, a worker killed from outside, shutdown."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.helpers import eventually
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
        if "spawn_main" in " ".join(child.cmdline()) and child.pid not in other_than
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
