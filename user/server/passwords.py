"""bcrypt hashing in worker processes of its own, so the event loop never waits on it.

Processes, not threads: a hashing thread in the service process must take the GIL back after
every hash, and CPython makes the thread that gives the GIL up wait until the other one has it.
With the hashing thread at low priority, the event loop thread then waits for the scheduler to
get round to that thread: measured under 8 logins, GetUserById lost a third of its rate and its
p99 rose well beyond what the same hashing load causes from an unrelated process. In their own
processes the hashes share nothing with the event loop but the cores (`make bench`)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import bcrypt

logger = logging.getLogger(__name__)

MAX_BCRYPT_BYTES = 72
BCRYPT_NICENESS = 10
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

T = TypeVar("T")


# Each hashing process holds about 24 MB: the default stops here on big machines, whatever
# their core count (BCRYPT_WORKERS raises it).
MAX_DEFAULT_WORKERS = 4


def default_bcrypt_workers() -> int:
    """One per core this process may run on but one, which stays free for the event loop;
    at most MAX_DEFAULT_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))  # a container's cpuset, not the host's cores
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, MAX_DEFAULT_WORKERS))


def _worker_setup(service_pid: int) -> None:
    """Runs first in each hashing process."""
    # Ctrl-C reaches the whole process group; the service decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        # Die with the service even when it is killed outright (SIGKILL, OOM killer).
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != service_pid:  # it died before that took effect
            os._exit(0)
    try:
        # A burst of logins yields the CPU to the processes serving every other call.
        os.nice(BCRYPT_NICENESS)
    except OSError:
        pass  # not allowed: hashing simply keeps normal priority


def _ready() -> bool:
    return True


def _ignore_outcome(future: asyncio.Future[bool]) -> None:
    # A failed warm-up shows again, and is handled, at the first real hash.
    if not future.cancelled():
        future.exception()


class PasswordHasher:
    def __init__(self, rounds: int = 10, workers: int | None = None) -> None:
        self._rounds = rounds
        self._workers = workers or default_bcrypt_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._decoy: bytes | None = None
        self._outstanding = 0  # hashes handed to the pool and not finished

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def in_flight(self) -> int:
        """Hashes a worker is computing now: each worker takes one at a time."""
        return min(self._outstanding, self._workers)

    @property
    def queued(self) -> int:
        """Hashes waiting for a free worker."""
        return max(0, self._outstanding - self._workers)

    async def start(self) -> None:
        self._pool = self._new_pool()
        # Start the workers now, without holding up readiness: the first login must not pay
        # for a process start.
        warming = asyncio.get_running_loop().run_in_executor(self._pool, _ready)
        warming.add_done_callback(_ignore_outcome)

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Workers finish the hash in hand (tens of ms) and exit; nothing waits for them here.
            pool.shutdown(wait=False, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
            initializer=_worker_setup,
            initargs=(os.getpid(),),
        )

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        self._outstanding += 1
        try:
            return await self._run_in_pool(function, *args)
        finally:
            self._outstanding -= 1

    async def _run_in_pool(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            await self.start()
        try:
            return await loop.run_in_executor(self._pool, function, *args)
        except BrokenProcessPool:
            # A worker died (killed from outside): a fresh pool, and this hash once more.
            logger.error("a password hashing process died; starting new ones")
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, function, *args)

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await self._run(bcrypt.hashpw, password.encode(), salt)
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        """True when password matches hashed; with no hash, spends the same time and fails."""
        if len(password.encode()) > MAX_BCRYPT_BYTES:
            return False  # bcrypt refuses such input; no stored password can be that long
        if hashed is None:
            # Unknown email: compare against a decoy so timing does not reveal which was wrong.
            if self._decoy is None:
                self._decoy = await self._run(bcrypt.hashpw, b"decoy", bcrypt.gensalt(self._rounds))
            await self._run(bcrypt.checkpw, password.encode(), self._decoy)
            return False
        try:
            return await self._run(bcrypt.checkpw, password.encode(), hashed.encode())
        except ValueError:  # a stored value that is not a bcrypt hash
            return False
