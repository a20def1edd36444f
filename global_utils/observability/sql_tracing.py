"""Spans per SQL statement: the pool's connection class when tracing is on."""

from __future__ import annotations

import re
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)

from global_utils.data.database import PooledConnection

if TYPE_CHECKING:
    pass


_TABLE_RE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_CTE_BODY_RE = re.compile(r"\b(INSERT|UPDATE|DELETE|SELECT)\b", re.IGNORECASE)


@lru_cache(maxsize=512)
def statement_summary(query: str) -> str:
    """A SQL span's name: the operation and its first table ('SELECT appuser', 'COMMIT');
    a statement starting WITH is named by the first operation inside it."""
    words = query.split(None, 1)
    if not words:
        return "SQL"
    operation = words[0].rstrip(";").upper()
    if operation == "WITH" and (body := _CTE_BODY_RE.search(query)) is not None:
        operation = body.group(1).upper()
    if operation == "COPY" and len(words) > 1:
        return f"COPY {words[1].split()[0]}"
    table = _TABLE_RE.search(query)
    return f"{operation} {table.group(1)}" if table else operation


@lru_cache(maxsize=512)
def _statement_span(query: str) -> tuple[str, dict[str, str]]:
    """A statement's span name and attributes, made once per statement text."""
    return statement_summary(query), {"db.system.name": "postgresql", "db.query.text": query}


class _StatementSpan:
    """A statement's CLIENT span, current while it runs (a plain class: cheaper than a
    generator-based context manager on a path every traced statement takes)."""

    __slots__ = ("_span", "_token")

    def __init__(self, tracer: Tracer, query: str) -> None:
        name, attributes = _statement_span(query)
        self._span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._token = attach(trace.set_span_in_context(self._span))

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        detach(self._token)
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._span.end()


def _recording() -> bool:
    return trace.get_current_span().is_recording()


class _TracedConnection(PooledConnection):
    """A pooled connection whose statements are spans (CLIENT, db.* attributes) while a traced
    operation is under way; outside one (health checks, relay polls, calls not sampled) they
    are not traced and cost one check."""

    _tracer: ClassVar[Tracer]

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().execute(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().execute(query, *args, **kwargs)

    async def executemany(self, command: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().executemany(command, *args, **kwargs)
        with _StatementSpan(self._tracer, command):
            return await super().executemany(command, *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetch(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetchrow(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetchval(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetchval(query, *args, **kwargs)

    async def copy_records_to_table(self, table_name: str, **kwargs: Any) -> Any:
        if not _recording():
            return await super().copy_records_to_table(table_name, **kwargs)
        with _StatementSpan(self._tracer, f"COPY {table_name}"):
            return await super().copy_records_to_table(table_name, **kwargs)


def traced_connection_class(tracer: Tracer) -> type[PooledConnection]:
    """The pool's connection class for a process tracing with tracer."""
    return type("TracedConnection", (_TracedConnection,), {"_tracer": tracer})
