"""serve_until_signalled: what start-up made is kept out of the garbage collector's passes
while the host serves, and a signal stops the host."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

from global_utils.grpc.host import serve_until_signalled


class RecordingHost:
    """A Lifecycle that notes the collector's frozen objects while it is being stopped."""

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
