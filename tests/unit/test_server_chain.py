"""The server's one interceptor: a unary call run by its single coroutine ends exactly as the
concerns' own wrappers nested in the chain's order end it (status, metrics, span, log lines, the
request id and caller the handler sees), for every way a call can end; streaming methods get
those wrappers themselves."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from global_errors import Language, MessageKey, NotFound, Unauthenticated
from global_utils.grpc.chain import ServerChain
from global_utils.grpc.interceptors import (
    AuthInterceptor,
    ErrorMappingInterceptor,
    RequestLoggingInterceptor,
    RequestParsingInterceptor,
)
from global_utils.identity.principal import Principal, Role, current_principal
from global_utils.observability.logs import request_id
from global_utils.observability.metrics import GO_CODE_NAMES, MetricsSettings, ServiceMetrics
from global_utils.observability.rpc_tracing import ServerTracingInterceptor
from global_utils.observability.tracing import Tracing
from global_utils.observability.tracing_setup import TracingSettings
from user.proto import user_pb2

METHOD = "/user.UserSrv/GetUserById"
PUBLIC = "/user.UserSrv/Auth"
GOOD = "good-token"
CALLER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


class FakeContext:
    """What the chain reads of a call: its metadata, its status, abort, the time left."""

    def __init__(self, *metadata: tuple[str, str], remaining: float | None = None) -> None:
        self._metadata = metadata
        self._code: grpc.StatusCode | None = None
        self.details = ""
        self._remaining = remaining

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def time_remaining(self) -> float | None:
        return self._remaining

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing: Any = ()) -> None:
        self._code, self.details = code, details
        raise grpc.aio.AbortError()


class Verifier:
    async def verify(self, token: str) -> Principal:
        if token != GOOD:
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        return Principal("7", role=Role.ADMIN)


@dataclass
class Seen:
    """What the handler saw of the call."""

    request_ids: list[str] = field(default_factory=list)
    callers: list[str] = field(default_factory=list)


def handler_doing(what: str, seen: Seen) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handler(request: user_pb2.SearchId, context: Any) -> user_pb2.User:
        seen.request_ids.append(request_id.get())
        try:
            seen.callers.append(current_principal().user_id)
        except Unauthenticated:
            seen.callers.append("")
        if what == "missing":
            raise NotFound(MessageKey.RECORD_NOT_FOUND, entity="user", id=request.id)
        if what == "broken":
            raise RuntimeError("a bug")
        if what == "cancelled":
            raise asyncio.CancelledError()
        return user_pb2.User(id=request.id)

    return handler


def chain(traced: bool) -> tuple[ServerChain, ServiceMetrics, InMemorySpanExporter]:
    metrics = ServiceMetrics(MetricsSettings())
    spans = InMemorySpanExporter()
    tracing = Tracing.configured(
        TracingSettings(otel_sdk_disabled=False, otel_traces_sampler="always_on"), "user", spans
    )
    return (
        ServerChain(
            tracing=tracing.server_tracing() if traced else None,
            metrics=metrics.server_metrics(),
            logging=RequestLoggingInterceptor(),
            errors=ErrorMappingInterceptor(Language.EN),
            auth=AuthInterceptor(Verifier(), public_methods=[PUBLIC]),
            parsing=RequestParsingInterceptor(Language.EN),
        ),
        metrics,
        spans,
    )


def nested(server_chain: ServerChain, handler: grpc.RpcMethodHandler, method: str) -> Any:
    """The concerns' own wrappers, the first outermost: what separate interceptors ran."""
    for concern in reversed(server_chain.concerns):
        handler = concern.replace(handler, method)
    return handler.unary_unary


def counted(metrics: ServiceMetrics) -> list[str]:
    """The method's counters and observation counts (times aside)."""
    return [
        line
        for line in metrics.exposition().body.decode().splitlines()
        if 'grpc_method="GetUserById"' in line or 'grpc_method="Auth"' in line
        if "_bucket" not in line and "_sum" not in line and not line.endswith(" 0.0")
    ]


OK, UNAUTHENTICATED = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED
# name: (what the handler does, method, metadata, body (b"": a good one), the call's status)
CASES = {
    "served": ("ok", METHOD, (("authorization", f"Bearer {GOOD}"),), b"", OK),
    "served with the caller's request id and trace": (
        "ok",
        METHOD,
        (
            ("x-request-id", "rid-1"),
            ("traceparent", CALLER_TRACE),
            ("authorization", f"Bearer {GOOD}"),
        ),
        b"",
        OK,
    ),
    "no token": ("ok", METHOD, (), b"", UNAUTHENTICATED),
    "a bad token": ("ok", METHOD, (("authorization", "Bearer forged"),), b"", UNAUTHENTICATED),
    "legacy token header": ("ok", METHOD, (("token", GOOD),), b"", OK),
    "not found": (
        "missing",
        METHOD,
        (("authorization", f"Bearer {GOOD}"),),
        b"",
        grpc.StatusCode.NOT_FOUND,
    ),
    "a bug": (
        "broken",
        METHOD,
        (("authorization", f"Bearer {GOOD}"),),
        b"",
        grpc.StatusCode.INTERNAL,
    ),
    "cancelled": (
        "cancelled",
        METHOD,
        (("authorization", f"Bearer {GOOD}"),),
        b"",
        grpc.StatusCode.CANCELLED,
    ),
    "unparsable body": (
        "ok",
        METHOD,
        (("authorization", f"Bearer {GOOD}"),),
        b"\xff\xff",
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "unparsable body without a token": ("ok", METHOD, (), b"\xff\xff", UNAUTHENTICATED),
    "public method": ("ok", PUBLIC, (), b"", OK),
}


async def run(
    behavior: Any, body: bytes, metadata: tuple[tuple[str, str], ...]
) -> tuple[str, grpc.StatusCode | None, str]:
    context = FakeContext(*metadata)
    try:
        response = await behavior(body or user_pb2.SearchId(id=42).SerializeToString(), context)
        outcome = f"returned {response}"
    except grpc.aio.AbortError:
        outcome = "aborted"
    except asyncio.CancelledError:
        outcome = "cancelled"
    return outcome, context.code(), context.details


@pytest.mark.parametrize("traced", [True, False])
@pytest.mark.parametrize("case", list(CASES))
async def test_one_coroutine_ends_a_call_as_the_nested_concerns_do(
    case: str, traced: bool, caplog: pytest.LogCaptureFixture
) -> None:
    what, method, metadata, body, code = CASES[case]
    results = []
    for fused in (True, False):
        server_chain, metrics, spans = chain(traced)
        seen = Seen()
        handler = grpc.unary_unary_rpc_method_handler(
            handler_doing(what, seen),
            request_deserializer=user_pb2.SearchId.FromString,
            response_serializer=user_pb2.User.SerializeToString,
        )
        behavior = (
            server_chain.replace(handler, method).unary_unary
            if fused
            else nested(server_chain, handler, method)
        )
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="global_utils.grpc.interceptors"):
            outcome = await run(behavior, body, metadata)
        finished = [
            (
                span.name,
                span.status.status_code,
                span.status.description,
                dict(span.attributes or {}),
                span.parent.span_id if span.parent else None,
            )
            for span in spans.get_finished_spans()
        ]
        logs = [
            (r.levelname, re.sub(r"\d+\.\dms", "<ms>", r.getMessage()))
            for r in caplog.records
            if r.name == "global_utils.grpc.interceptors"
        ]
        ids = ["16 hex" if re.fullmatch("[0-9a-f]{16}", i) else i for i in seen.request_ids]
        results.append((outcome, counted(metrics), finished, logs, ids, seen.callers))
    assert results[0] == results[1]
    (_, status, _), counters, finished, logs, _, _ = results[0]
    # the comparison is about something: each case ends as its name says
    assert (status or OK) is code or (code is grpc.StatusCode.CANCELLED and status is None)
    assert any(
        f'grpc_code="{GO_CODE_NAMES[code]}"' in line and line.endswith(" 1.0") for line in counters
    )
    assert logs
    assert bool(finished) is traced and request_id.get() == "-"


async def test_the_caller_and_request_id_reach_the_handler_and_are_gone_after() -> None:
    server_chain, _, _ = chain(traced=False)
    seen = Seen()
    handler = grpc.unary_unary_rpc_method_handler(
        handler_doing("ok", seen), request_deserializer=user_pb2.SearchId.FromString
    )
    behavior = server_chain.replace(handler, METHOD).unary_unary
    metadata = (("x-request-id", "r" * 80), ("authorization", f"Bearer {GOOD}"))
    outcome = await run(behavior, b"", metadata)
    assert outcome[0].startswith("returned") and outcome[1] is None
    assert seen.request_ids == ["r" * 64] and seen.callers == ["7"]
    await run(behavior, b"", (("authorization", f"Bearer {GOOD}"),))
    assert re.fullmatch("[0-9a-f]{16}", seen.request_ids[1])
    with pytest.raises(Unauthenticated):
        current_principal()


def test_a_method_is_wrapped_once_and_streaming_methods_get_the_concerns_wrappers() -> None:
    server_chain, _, _ = chain(traced=True)
    assert [type(c) for c in server_chain.concerns] == [
        ServerTracingInterceptor,
        type(server_chain.concerns[1]),
        RequestLoggingInterceptor,
        ErrorMappingInterceptor,
        AuthInterceptor,
        RequestParsingInterceptor,
    ]

    async def watch(request: Any, context: Any) -> Any:
        yield request

    streaming = grpc.unary_stream_rpc_method_handler(
        watch, request_deserializer=user_pb2.SearchId.FromString
    )
    replaced = server_chain.replace(streaming, "/grpc.health.v1.Health/Watch")
    assert replaced.unary_stream is not None and replaced.unary_stream is not watch
    # parsing moved inside the call, as the parsing concern does for streamed responses
    assert replaced.request_deserializer is None
