"""One Connect call forwarded to its service over gRPC: the caller's credentials, request id
and trace context go along; the service's answer, status code, message and google.rpc details
come back unchanged. The gateway decides nothing itself."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.trace import SpanKind, Tracer
from protobuf.wkt import Any as ConnectAny

from global_errors import Language
from global_errors.errors import DomainError
from global_errors.status import to_grpc_status
from global_utils.grpc.client import ServiceChannels
from global_utils.grpc.interceptors import REQUEST_ID_HEADER
from global_utils.observability.logs import request_id
from global_utils.observability.metrics import ServiceMetrics
from global_utils.observability.propagation import context_from, span_or_nothing

logger = logging.getLogger(__name__)

# Request headers passed on as gRPC metadata as they came: the credentials (goTemp's clients
# send `token`, ours `authorization`) and the W3C trace context (with tracing on, the gateway's
# own client span replaces traceparent, keeping the caller's trace).
FORWARDED_HEADERS = ("authorization", "token", "traceparent", "tracestate")
STATUS_DETAILS_KEY = "grpc-status-details-bin"
MAX_REQUEST_ID = 64

CONNECT_CODES: dict[grpc.StatusCode, Code] = {
    code: Code.CANCELED if code is grpc.StatusCode.CANCELLED else Code[code.name]
    for code in grpc.StatusCode
    if code is not grpc.StatusCode.OK
}
GRPC_CODES: dict[Code, grpc.StatusCode] = {code: status for status, code in CONNECT_CODES.items()}


def connect_error(
    code: grpc.StatusCode, message: str, trailing: grpc.aio.Metadata | None
) -> ConnectError:
    """The Connect error of a gRPC status: same code and message, and each google.rpc.Status
    detail (BadRequest's field violations, ...) as a Connect error detail of the same type."""
    details: list[ErrorDetail] = []
    for key, value in trailing or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer: the code and message still stand
                logger.warning("unreadable %s from a service", STATUS_DETAILS_KEY)
                continue
            details += [
                ErrorDetail(ConnectAny(type_url=any.type_url, value=any.value))
                for any in status.details
            ]
    return ConnectError(CONNECT_CODES.get(code, Code.UNKNOWN), message, details)


def local_error(error: BaseException, language: Language) -> ConnectError:
    """What the services would answer for an error met in the gateway itself (no instance of
    the service answering, ...); anything unexpected is INTERNAL with the standard text."""
    status = to_grpc_status(error, language)
    return connect_error(status.code, status.details or "", status.trailing_metadata)


class Forwarder:
    """Implements every method of every Connect service the gateway serves: the generated
    *ASGIApplication classes ask it for their handlers by method name, and each one forwards
    the call to ctx.method's service and method."""

    def __init__(
        self,
        channels: Mapping[str, ServiceChannels],
        *,
        call_timeout: float,
        language: Language,
        metrics: ServiceMetrics,
        tracer: Tracer | None,
    ) -> None:
        """channels: by full proto service name (user.UserSrv)."""
        self._channels = dict(channels)
        self._call_timeout = call_timeout
        self._language = language
        self._metrics = metrics
        self._tracer = tracer

    def __getattr__(self, name: str) -> Callable[[Message, RequestContext[Any, Any]], Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.forward

    async def forward(self, request: Message, ctx: RequestContext[Any, Any]) -> Message:
        method = ctx.method
        rid = _request_id(ctx.request_headers.get(REQUEST_ID_HEADER, ""))
        token = request_id.set(rid)
        ctx.response_headers[REQUEST_ID_HEADER] = rid
        started = time.perf_counter()
        counted = self._metrics.server_method(method.service_name, method.name)
        code = grpc.StatusCode.OK
        try:
            with span_or_nothing(
                self._tracer,
                f"{method.service_name}/{method.name}",
                kind=SpanKind.SERVER,
                context=context_from(dict(ctx.request_headers.items())),
                attributes={
                    "rpc.system": "connect",
                    "rpc.service": method.service_name,
                    "rpc.method": method.name,
                },
            ):
                return await self._call(request, ctx, rid)
        except ConnectError as error:
            code = GRPC_CODES.get(error.code, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            if counted is not None:
                counted.handled(code, started)
            request_id.reset(token)

    async def _call(self, request: Message, ctx: RequestContext[Any, Any], rid: str) -> Message:
        method = ctx.method
        timeout = self._call_timeout
        if ctx.timeout_ms is not None:
            if ctx.timeout_ms <= 0:
                raise ConnectError(Code.DEADLINE_EXCEEDED, "deadline exceeded")
            timeout = min(timeout, ctx.timeout_ms / 1000)
        metadata = grpc.aio.Metadata((REQUEST_ID_HEADER, rid))
        for name in FORWARDED_HEADERS:
            for value in ctx.request_headers.getall(name):
                if not value.isascii() or not value.isprintable():
                    raise ConnectError(
                        Code.INVALID_ARGUMENT, f"header {name} is not printable ASCII"
                    )
                metadata.add(name, value)
        channels = self._channels[method.service_name]
        path = f"/{method.service_name}/{method.name}"
        output: type[Message] = method.output

        def invoke(channel: grpc.aio.Channel) -> Awaitable[Message]:
            call = channel.unary_unary(
                path,
                request_serializer=_serialize,
                response_deserializer=output.FromString,
            )
            return call(request, metadata=metadata, timeout=timeout)

        try:
            return await channels.call(invoke)
        except grpc.aio.AioRpcError as error:
            raise connect_error(
                error.code(), error.details() or "", error.trailing_metadata()
            ) from None
        except DomainError as error:
            logger.warning("%s: %s", path, error)
            raise local_error(error, self._language) from None
        except Exception as error:
            logger.error("%s failed", path, exc_info=error)
            raise local_error(error, self._language) from None


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _request_id(given: str) -> str:
    """The caller's request id (cut to the length the services keep), or a new one."""
    given = given[:MAX_REQUEST_ID]
    if given and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex[:16]
