"""bcrypt hashing on a small thread pool of its own, so the event loop never waits on it and
logins cannot take every core from it."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt

MAX_BCRYPT_BYTES = 72
BCRYPT_NICENESS = 10


def _lower_priority() -> None:
    """Runs in each hashing thread: on Linux niceness is per thread, so a burst of logins
    yields the CPU to the event loop thread serving every other call."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: hashing simply keeps normal priority


def default_bcrypt_threads() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


class PasswordHasher:
    def __init__(self, rounds: int = 10, threads: int | None = None) -> None:
        self._rounds = rounds
        self._threads = threads or default_bcrypt_threads()
        self._executor: ThreadPoolExecutor | None = None
        self._decoy: bytes | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            self._threads, thread_name_prefix="bcrypt", initializer=_lower_priority
        )

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _run(self, function, *args):  # type: ignore[no-untyped-def]
        if self._executor is None:
            await self.start()
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await self._run(bcrypt.hashpw, password.encode(), salt)
        return str(hashed.decode())

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
            return bool(await self._run(bcrypt.checkpw, password.encode(), hashed.encode()))
        except ValueError:  # a stored value that is not a bcrypt hash
            return False
