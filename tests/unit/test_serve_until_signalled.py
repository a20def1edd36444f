"""serve_until_signalled: what start-up made is kept out of the garbage collector's passes
while the host serves, a signal stops the host, and one caught while the process was starting
(stop_signals) stops it before it starts."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

import pytest

from global_utils.grpc.host import serve_until_signalled
from global_utils.runtime import stop_signals


class RecordingHost:
    """A Lifecycle that notes the collector's frozen objects while it is being stopped."""

    name = "recording"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.frozen_while_serving = -1

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        self.frozen_while_serving = gc.get_freeze_count()


async def test_start_up_is_frozen_while_serving_and_released_after() -> None:
    assert gc.get_freeze_count() == 0
    host = RecordingHost()
    serving = asyncio.create_task(serve_until_signalled(host))
    await asyncio.wait_for(host.started.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 5)
    assert host.frozen_while_serving > 1000  # this test process's modules, at least
    assert gc.get_freeze_count() == 0
    # the handlers went with it: SIGTERM is the process's own again
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)


def test_a_stop_signal_caught_while_starting_is_remembered(monkeypatch) -> None:
    monkeypatch.setattr(stop_signals, "_caught", [])
    before = {sig: signal.getsignal(sig) for sig in stop_signals.STOP_SIGNALS}
    try:
        stop_signals.catch_stop_signals()
        assert stop_signals.caught_before_serving() is None
        os.kill(os.getpid(), signal.SIGTERM)  # the process goes on: remembered, not ended
        assert stop_signals.caught_before_serving() == "SIGTERM"
        signal.raise_signal(signal.SIGINT)  # nor a KeyboardInterrupt; the first one counts
        assert stop_signals.caught_before_serving() == "SIGTERM"
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


async def test_a_stop_signal_caught_while_starting_stops_before_the_start(
    monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stop_signals, "_caught", [signal.SIGTERM])
    host = RecordingHost()
    with caplog.at_level(logging.INFO, logger="global_utils.grpc.host"):
        await asyncio.wait_for(serve_until_signalled(host), 5)
    assert not host.started.is_set()
    assert host.frozen_while_serving == -1  # never stopped either: nothing was started
    assert "recording stopped: SIGTERM came while it was starting" in caplog.messages
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)
