"""The gateway's ASGI application: /healthz, gRPC health and every service's Connect
application (Connect JSON and binary, gRPC-Web) by path, and the web UI's static build."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from connectrpc.code import Code
from connectrpc.compat import google_protobuf_codecs
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from grpc_health.v1 import health_pb2

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTHZ = "/healthz"
HEALTH_SERVICE = "grpc.health.v1.Health"
# The first path segment of an RPC: a full proto service name (package.Service).
_RPC_SEGMENT = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+")
_STREAMING_PREFIX = "application/grpc-web"
CONNECT_TIMEOUT_HEADER = b"connect-timeout-ms"
GRPC_TIMEOUT_HEADER = b"grpc-timeout"


class HealthState:
    """The gateway's own serving status: SERVING from ready until it starts to stop."""

    def __init__(self) -> None:
        self.serving = False


ServiceHealth = Callable[[str], Awaitable[int]]


class HealthApplication(ConnectASGIApplication[object]):
    """grpc.health.v1.Health/Check over Connect and gRPC-Web: "" is the gateway itself; a
    fronted service's name asks one of its instances (check_service), others NOT_FOUND."""

    def __init__(self, state: HealthState, check_service: ServiceHealth) -> None:
        self._state = state
        self._check_service = check_service
        super().__init__(
            service=self,
            endpoints=lambda _: {
                f"/{HEALTH_SERVICE}/Check": Endpoint.unary(
                    method=MethodInfo(
                        name="Check",
                        service_name=HEALTH_SERVICE,
                        input=health_pb2.HealthCheckRequest,
                        output=health_pb2.HealthCheckResponse,
                        idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
                        stream_type=StreamType.UNARY,
                    ),
                    function=self.check,
                )
            },
            codecs=google_protobuf_codecs(),
        )

    @property
    def path(self) -> str:
        return f"/{HEALTH_SERVICE}"

    async def check(
        self, request: health_pb2.HealthCheckRequest, ctx: RequestContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        if request.service == "":
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if self._state.serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
        else:
            status = await self._check_service(request.service)
        return health_pb2.HealthCheckResponse(status=status)  # type: ignore[arg-type]  # the enum's int value


class StaticFiles:
    """A folder served read-only: files as they are, and index.html for any other path
    without a file extension (the single-page app's own routes)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def find(self, path: str) -> Path | None:
        """The file to answer path with, or None (404)."""
        relative = path.lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if candidate.is_file():
            return candidate
        # A missing asset (a name with an extension) is a 404, not the app's page.
        if "." in relative.rsplit("/", 1)[-1]:
            return None
        return self.root / "index.html"


class GatewayApp:
    """Routes a request by its path: /healthz, an RPC of a fronted service (or gRPC health),
    else the static folder (GET and HEAD only) when there is one."""

    def __init__(
        self,
        services: Iterable[ConnectASGIApplication[Any]],
        health: HealthState,
        *,
        max_timeout_ms: int,
        static: StaticFiles | None = None,
    ) -> None:
        self._apps: Mapping[str, ConnectASGIApplication[Any]] = {
            app.path.lstrip("/"): app for app in services
        }
        self._health = health
        self._max_timeout_ms = max_timeout_ms
        self._static = static
        # calls being answered now (a stop waits for them, up to its grace)
        self.calls_in_flight = 0

    @property
    def service_names(self) -> list[str]:
        return [name for name in self._apps if name != HEALTH_SERVICE]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # no lifespan, no websockets: the gateway's lifecycle is its host's
            return
        path: str = scope["path"]
        if path == HEALTHZ:
            await self._healthz(scope, send)
            return
        segment = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        app = self._apps.get(segment)
        if app is not None and not _readable_headers(scope):
            # the Connect application would fail on them with an error naming the codec
            await _connect_error(
                send, 400, ConnectError(Code.INVALID_ARGUMENT, "request headers must be UTF-8")
            )
            return
        if app is not None:
            self.calls_in_flight += 1
            try:
                await app(self._with_deadline(scope), receive, send)  # type: ignore[arg-type]  # asgiref's TypedDicts for a plain dict
            finally:
                self.calls_in_flight -= 1
            return
        if _RPC_SEGMENT.fullmatch(segment) and scope["method"] == "POST":
            await _connect_error(
                send, 404, ConnectError(Code.UNIMPLEMENTED, f"no service {segment} here")
            )
            return
        if self._static is not None and scope["method"] in ("GET", "HEAD"):
            await self._serve_file(scope, send)
            return
        await _plain(send, 404, b"not found\n")

    def _with_deadline(self, scope: Scope) -> Scope:
        """The scope with the gateway's longest call time as the request's deadline when the
        caller set none or a longer one (the Connect application then bounds reading the body,
        the call and writing the answer by it)."""
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
        content_type = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
        grpc_web = content_type.startswith(_STREAMING_PREFIX)
        name = GRPC_TIMEOUT_HEADER if grpc_web else CONNECT_TIMEOUT_HEADER
        given = next((v for k, v in headers if k == name), None)
        if given is not None and _timeout_ms(given, grpc_web) is not None:
            if (_timeout_ms(given, grpc_web) or 0) <= self._max_timeout_ms:
                return scope
        value = f"{self._max_timeout_ms}m" if grpc_web else str(self._max_timeout_ms)
        headers = [(k, v) for k, v in headers if k != name] + [(name, value.encode())]
        return {**scope, "headers": headers}

    async def _healthz(self, scope: Scope, send: Send) -> None:
        serving = self._health.serving
        body = json.dumps({"status": "SERVING" if serving else "NOT_SERVING"}).encode()
        await _respond(
            send,
            200 if serving else 503,
            body if scope["method"] != "HEAD" else b"",
            [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        )

    async def _serve_file(self, scope: Scope, send: Send) -> None:
        assert self._static is not None
        found = self._static.find(scope["path"])
        if found is None:
            await _plain(send, 404, b"not found\n")
            return
        body = await asyncio.to_thread(found.read_bytes)
        content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
        ):
            content_type += "; charset=utf-8"
        await _respond(
            send,
            200,
            body if scope["method"] != "HEAD" else b"",
            [
                (b"content-type", content_type.encode()),
                (b"cache-control", b"no-cache"),
                (b"x-content-type-options", b"nosniff"),
            ],
            length=len(body),
        )


def _readable_headers(scope: Scope) -> bool:
    try:
        for _, value in scope.get("headers", ()):
            value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _timeout_ms(value: bytes, grpc_style: bool) -> int | None:
    """A connect-timeout-ms or grpc-timeout value in milliseconds, None when unreadable (the
    Connect application then answers the caller's mistake itself)."""
    text = value.decode("latin-1").strip()
    if not grpc_style:
        return int(text) if text.isdigit() else None
    units = {"H": 3_600_000, "M": 60_000, "S": 1000, "m": 1, "u": 0.001, "n": 0.000001}
    if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in units:
        return None
    return int(int(text[:-1]) * units[text[-1]])


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    length: int | None = None,
) -> None:
    size = len(body) if length is None else length
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(size).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _plain(send: Send, status: int, body: bytes) -> None:
    await _respond(send, status, body, [(b"content-type", b"text/plain; charset=utf-8")])


async def _connect_error(send: Send, status: int, error: ConnectError) -> None:
    body = json.dumps({"code": error.code.value, "message": error.message}).encode()
    await _respond(send, status, body, [(b"content-type", b"application/json")])
