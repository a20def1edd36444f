"""grpc.aio server interceptors: request ids and logging, error mapping, authentication,
request parsing.

Each wraps the behaviour of a method once and reuses the wrapped handler for every later call of
that method; per-call data (metadata, the caller) is read from the context."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
)
from random import getrandbits
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from grpc.aio import AbortError

from global_errors import (
    DomainError,
    Failure,
    Language,
    MessageKey,
    Unauthenticated,
    ValidationFailed,
)
from global_errors.status import to_grpc_status
from global_utils.identity.principal import (
    TokenVerifier,
    bind_principal,
    reset_principal,
    token_from_metadata,
)
from global_utils.observability.logs import request_id

logger = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Deserializer = Callable[[bytes], Any]

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 64  # characters of a caller's x-request-id kept
# Methods anyone may call: health and reflection (services add theirs, e.g. Auth).
ALWAYS_PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """Replaces a method's handler once and reuses the replacement while the handler is the
    same."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.replace(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError


class _UnaryInterceptor(HandlerInterceptor):
    """Wraps the behaviour of unary-unary methods (the only kind the services define)."""

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        raise NotImplementedError


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return ""


def new_request_id() -> str:
    """16 hex digits for a call that brought no x-request-id: a log correlation id, not a
    secret, so a fast pseudo-random draw (no system call per call)."""
    return f"{getrandbits(64):016x}"


def call_request_id(sent: str) -> str:
    """The request id of a call whose x-request-id header was sent ("" when none was)."""
    return sent[:MAX_REQUEST_ID] or new_request_id()


class RequestLoggingInterceptor(_UnaryInterceptor):
    """Gives each call a request id (the caller's x-request-id, or a new one) and logs it."""

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = call_request_id(_metadata_value(context, REQUEST_ID_HEADER))
            token = request_id.set(rid)
            started = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                log_handled(method, context, started)
                request_id.reset(token)

        return behavior


def log_handled(method: str, context: grpc.aio.ServicerContext, started: float) -> None:
    """A handled call's DEBUG line (method, status, milliseconds since started), if DEBUG is on."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s %.1fms",
            method,
            context.code() or grpc.StatusCode.OK,
            (time.perf_counter() - started) * 1000,
        )


async def abort_with(
    context: grpc.aio.ServicerContext, method: str, exc: Exception, language: Language
) -> NoReturn:
    """Ends the call with exc's status: a domain error logged as one warning, anything else
    with its traceback (and INTERNAL)."""
    if isinstance(exc, DomainError):
        logger.warning("%s: %s", method, exc)
    else:
        logger.error("%s failed", method, exc_info=exc)
    status = to_grpc_status(exc, language)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("context.abort returned")  # it always raises AbortError


class ErrorMappingInterceptor(_UnaryInterceptor):
    """Turns domain errors into status codes; anything unexpected becomes INTERNAL."""

    def __init__(self, language: Language) -> None:
        super().__init__()
        self._language = language

    @property
    def language(self) -> Language:
        return self._language

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except AbortError:
                raise
            except Exception as exc:
                await abort_with(context, method, exc, self._language)

        return behavior


class AuthInterceptor(_UnaryInterceptor):
    """Requires a valid token on every method not in the allow-list: checked by verifier, or
    by the one method_verifiers names for the method."""

    def __init__(
        self,
        verifier: TokenVerifier,
        public_methods: Collection[str] = (),
        method_verifiers: Mapping[str, TokenVerifier] | None = None,
    ) -> None:
        super().__init__()
        self._verifier = verifier
        self._public = frozenset(public_methods)
        self._by_method = dict(method_verifiers or {})

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    def verifier_for(self, method: str) -> TokenVerifier | None:
        """What checks the token of method's calls; None: anyone may call it."""
        if self.is_public(method):
            return None
        return self._by_method.get(method, self._verifier)

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        verifier = self.verifier_for(method)
        if verifier is None:
            return inner

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = token_from_metadata(context.invocation_metadata() or ())
            if token is None:
                raise Unauthenticated(MessageKey.TOKEN_MISSING)
            principal = await verifier.verify(token)
            bound = bind_principal(principal)
            try:
                return await inner(request, context)
            finally:
                reset_principal(bound)

        return behavior


class _Unparsable:
    """Stands in for a streamed request message that did not parse."""

    __slots__ = ()


_UNPARSABLE = _Unparsable()


class RequestParsingInterceptor(HandlerInterceptor):
    """Parses request messages inside the call instead of before it, so a body that is not the
    method's request message is INVALID_ARGUMENT (one warning) rather than grpc's UNKNOWN with
    a traceback, and for a unary request only after the interceptors listed before this one
    (authentication) let the call in: it must be the last interceptor.

    Unary requests reach the behaviour as bytes (no deserializer) and are parsed there; a
    failure is raised as a domain error for the error mapping around it, or, for a streamed
    response (which that mapping does not wrap), ends the call here. Streamed requests are
    parsed by a deserializer that marks a bad message instead of raising, and the request
    iterator the behaviour reads ends the call when it meets one (a behaviour reading with
    context.read() would get the marker itself)."""

    def __init__(self, language: Language) -> None:
        super().__init__()
        self._language = language

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        if parse is None:
            return handler
        serialize = handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_unary(handler.unary_unary, parse),
                response_serializer=serialize,
            )
        if handler.unary_stream is not None and inspect.iscoroutinefunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(handler.unary_stream, parse, method),
                response_serializer=serialize,
            )
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream_generator(handler.unary_stream, parse, method),
                response_serializer=serialize,
            )
        streamed = handler.stream_unary or handler.stream_stream
        if streamed is not None and (
            inspect.iscoroutinefunction(streamed) or inspect.isasyncgenfunction(streamed)
        ):
            make = (
                grpc.stream_unary_rpc_method_handler
                if handler.stream_unary is not None
                else grpc.stream_stream_rpc_method_handler
            )
            return make(
                self._stream_request(streamed, parse, method),
                request_deserializer=_marking_bad_messages(parse),
                response_serializer=serialize,
            )
        return handler  # a synchronous behaviour: not something a grpc.aio service registers

    def _unary_unary(self, inner: Behavior, parse: Deserializer) -> Behavior:
        async def behavior(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await inner(parse_unary(parse, body), context)

        return behavior

    def _unary_stream(self, inner: Behavior, parse: Deserializer, method: str) -> Behavior:
        async def behavior(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                request = parse(body)
            except DecodeError:
                await abort_with(context, method, _unparsable_error(parse), self._language)
            return await inner(request, context)

        return behavior

    def _unary_stream_generator(
        self, inner: Callable[..., AsyncIterator[Any]], parse: Deserializer, method: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def behavior(body: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                request = parse(body)
            except DecodeError:
                await abort_with(context, method, _unparsable_error(parse), self._language)
            async for response in inner(request, context):
                yield response

        return behavior

    def _stream_request(
        self, inner: Callable[..., Any], parse: Deserializer, method: str
    ) -> Callable[..., Any]:
        language = self._language

        async def checked(
            requests: AsyncIterable[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for request in requests:
                if request is _UNPARSABLE:
                    await abort_with(context, method, _unparsable_error(parse), language)
                yield request

        if inspect.isasyncgenfunction(inner):

            async def generator(
                requests: AsyncIterable[Any], context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                async for response in inner(checked(requests, context), context):
                    yield response

            return generator

        async def coroutine(requests: AsyncIterable[Any], context: grpc.aio.ServicerContext) -> Any:
            return await inner(checked(requests, context), context)

        return coroutine


def parse_unary(parse: Deserializer, body: bytes) -> Any:
    """A unary request parsed; a body that is not the method's request message raises the
    validation error the error mapping turns into INVALID_ARGUMENT."""
    try:
        return parse(body)
    except DecodeError:
        raise _unparsable_error(parse) from None


def _marking_bad_messages(parse: Deserializer) -> Deserializer:
    def deserialize(body: bytes) -> Any:
        try:
            return parse(body)
        except DecodeError:
            return _UNPARSABLE

    return deserialize


def _unparsable_error(parse: Deserializer) -> ValidationFailed:
    # Generated code deserializes with the message class's FromString, which names the type.
    descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    message = getattr(descriptor, "full_name", "request")
    return ValidationFailed(
        [Failure("request", MessageKey.REQUEST_UNPARSABLE, {"message": message})]
    )
