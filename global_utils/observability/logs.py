"""Process-wide logging setup: one format, the request id on every line, and the trace and
span ids while a span is active (tracing on)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s%(trace_ids)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the request id on each record, and what trace_ids returns (with tracing on,
    global_utils.observability.propagation.log_ids: ' trace_id=<32 hex> span_id=<16 hex>' inside a
    span, '')."""

    def __init__(self, trace_ids: Callable[[], str] | None = None) -> None:
        super().__init__()
        self._trace_ids = trace_ids

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.trace_ids = "" if self._trace_ids is None else self._trace_ids()
        return True


def log_handler(trace_ids: Callable[[], str] | None = None) -> logging.Handler:
    """The handler every process logs through (standard error, LOG_FORMAT)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter(trace_ids))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


class _OutageWithoutTraceback(logging.Filter):
    """asyncpg's pool logs a full traceback each time it cannot restore its idle connections,
    which during a database outage is every few seconds. The outage is reported where it is
    handled (health turns NOT_SERVING with the reason, calls answer UNAVAILABLE): here one
    line suffices."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str = "INFO", trace_ids: Callable[[], str] | None = None) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(trace_ids)]
    root.setLevel(level)
    # Third-party chatter stays quiet unless something is wrong.
    for noisy in ("asyncio", "nats", "zeroconf", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("asyncpg.pool").addFilter(_OutageWithoutTraceback())
