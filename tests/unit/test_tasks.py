"""Stopping background tasks: cancelled ones end, a task ignoring cancellation cannot hang."""

from __future__ import annotations

import asyncio

from global_utils.runtime.tasks import cancel_and_wait


async def test_cancelled_tasks_are_waited_for() -> None:
    cleaned = asyncio.Event()

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await cancel_and_wait(task, None)
    assert task.cancelled() and cleaned.is_set()


async def test_a_task_that_swallows_cancellation_does_not_hang_the_caller() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # what a library bug looks like from outside

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task, timeout=0.2)
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.done()
