"""Stopping background tasks without ever hanging a shutdown."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[object] | None, timeout: float = 5.0) -> None:
    """Cancels tasks and waits up to timeout for them to end. A task still running then (a
    library that swallowed its cancellation) is logged and left behind: stop() never hangs."""
    pending = [task for task in tasks if task is not None and not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, still_running = await asyncio.wait(pending, timeout=timeout)
    for task in still_running:
        logger.warning("task %s did not stop within %.0f s", task.get_name(), timeout)
