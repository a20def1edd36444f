"""Process-wide logging setup: one format, the request id on every line."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter stays quiet unless something is wrong.
    for noisy in ("asyncio", "nats", "zeroconf", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("asyncpg.pool").addFilter(_OutageWithoutTraceback())
