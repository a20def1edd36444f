"""grpc.aio server interceptors: request ids and logging, error mapping, authentication.

Each wraps the behaviour of a unary-unary method once and reuses the wrapped handler for every
later call of that method; per-call data (metadata, the caller) is read from the context."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
from grpc.aio import AbortError

from global_errors import DomainError, Language, MessageKey, Unauthenticated
from global_errors.status import to_grpc_status
from global_utils.auth import TokenVerifier, bind_principal, reset_principal, token_from_metadata
from global_utils.logs import request_id

logger = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

REQUEST_ID_HEADER = "x-request-id"
# Methods anyone may call: health and reflection (services add theirs, e.g. Auth).
ALWAYS_PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the behaviour of unary-unary methods (the only kind the services define)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self.wrap(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        raise NotImplementedError


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return ""


class RequestLoggingInterceptor(_UnaryInterceptor):
    """Gives each call a request id (the caller's x-request-id, or a new one) and logs it."""

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = _metadata_value(context, REQUEST_ID_HEADER)[:64] or uuid.uuid4().hex[:16]
            token = request_id.set(rid)
            started = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s %.1fms",
                        method,
                        context.code() or grpc.StatusCode.OK,
                        (time.perf_counter() - started) * 1000,
                    )
                request_id.reset(token)

        return behavior


class ErrorMappingInterceptor(_UnaryInterceptor):
    """Turns domain errors into status codes; anything unexpected becomes INTERNAL."""

    def __init__(self, language: Language) -> None:
        super().__init__()
        self._language = language

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except AbortError:
                raise
            except DomainError as exc:
                logger.warning("%s: %s", method, exc)
                await self._abort(context, exc)
            except Exception as exc:
                logger.exception("%s failed", method)
                await self._abort(context, exc)

        return behavior

    async def _abort(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        status = to_grpc_status(exc, self._language)
        await context.abort(status.code, status.details, status.trailing_metadata)


class AuthInterceptor(_UnaryInterceptor):
    """Requires a valid token on every method not in the allow-list."""

    def __init__(self, verifier: TokenVerifier, public_methods: Collection[str] = ()) -> None:
        super().__init__()
        self._verifier = verifier
        self._public = frozenset(public_methods)

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    def wrap(self, inner: Behavior, method: str) -> Behavior:
        if self.is_public(method):
            return inner

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = token_from_metadata(context.invocation_metadata() or ())
            if token is None:
                raise Unauthenticated(MessageKey.TOKEN_MISSING)
            principal = await self._verifier.verify(token)
            bound = bind_principal(principal)
            try:
                return await inner(request, context)
            finally:
                reset_principal(bound)

        return behavior
