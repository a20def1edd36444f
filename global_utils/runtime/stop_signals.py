"""SIGTERM and SIGINT, caught from a server process's first line on.

In a container the server is PID 1, and the kernel drops any signal PID 1 has no handler for.
Until the event loop installs its handlers (global_utils/grpc/host.py's serve_until_signalled),
a second or more of imports and configuration, a SIGTERM would be lost: `docker compose stop`
(or a recreate, a rolling update) just after a start, and the engine kills the server once its
grace period is over, without the clean stop. Every entry point calls catch_stop_signals()
before its imports; a signal caught then is remembered, and serve_until_signalled stops
without starting."""

from __future__ import annotations

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_caught: list[int] = []


def catch_stop_signals() -> None:
    """From now until the event loop takes them over, a stop signal is remembered."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _remember)


def _remember(signum: int, _frame: FrameType | None) -> None:
    _caught.append(signum)


def caught_before_serving() -> str | None:
    """The name of the first stop signal caught before the event loop's handlers, or None."""
    return signal.Signals(_caught[0]).name if _caught else None
