"""Process logging: a database outage is reported in lines, not tracebacks."""

from __future__ import annotations

import io
import logging

from global_utils.observability.logs import configure_logging


def test_asyncpg_pool_outage_is_one_line_without_traceback() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    pool_logger = logging.getLogger("asyncpg.pool")
    saved_filters = pool_logger.filters[:]
    try:
        configure_logging("INFO")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]  # configure_logging installs a StreamHandler
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError:
            pool_logger.warning("Failed to restore the pool connection floor", exc_info=True)
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        assert "Traceback" not in lines[0]
        assert "Failed to restore the pool connection floor (ConnectionRefusedError" in lines[0]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        pool_logger.filters[:] = saved_filters
