"""grpc.aio server interceptors: request ids and logging, error mapping, authentication."""

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
Metadata = tuple[tuple[str, str | bytes], ...]

REQUEST_ID_HEADER = "x-request-id"
# Methods anyone may call: login, token checks (the token is in the request), health, reflection.
ALWAYS_PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the behaviour of unary-unary methods (the only kind the services define)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = self.wrap(
            handler.unary_unary,
            handler_call_details.method,
            tuple(handler_call_details.invocation_metadata or ()),
        )
        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def wrap(self, inner: Behavior, method: str, metadata: Metadata) -> Behavior:
        raise NotImplementedError


class RequestLoggingInterceptor(_UnaryInterceptor):
    """Gives each call a request id (the caller's x-request-id, or a new one) and logs it."""

    def wrap(self, inner: Behavior, method: str, metadata: Metadata) -> Behavior:
        given = next((v for k, v in metadata if k == REQUEST_ID_HEADER and isinstance(v, str)), "")
        rid = given[:64] or uuid.uuid4().hex[:16]

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
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
        self._language = language

    def wrap(self, inner: Behavior, method: str, metadata: Metadata) -> Behavior:
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
        self._verifier = verifier
        self._public = frozenset(public_methods)

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    def wrap(self, inner: Behavior, method: str, metadata: Metadata) -> Behavior:
        if self.is_public(method):
            return inner

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = token_from_metadata(metadata)
            if token is None:
                raise Unauthenticated(MessageKey.TOKEN_MISSING)
            principal = await self._verifier.verify(token)
            bound = bind_principal(principal)
            try:
                return await inner(request, context)
            finally:
                reset_principal(bound)

        return behavior
