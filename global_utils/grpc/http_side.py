"""A service's HTTP side port (HTTP_ADDRESS): a few read-only GET paths next to gRPC, such as
the user service's /.well-known/jwks.json. HTTP/1.1, one request per connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from global_utils.discovery.registry import Endpoint, parse_endpoint

logger = logging.getLogger(__name__)

MAX_REQUEST_HEAD_BYTES = 8192
READ_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class HttpResponse:
    body: bytes
    content_type: str = "application/json"
    # seconds a client or proxy may keep it
    max_age: int = 0


Handler = Callable[[], HttpResponse]


class HttpSidePort:
    """Serves routes (path -> handler) on address; a lifecycle component of a ServiceHost."""

    def __init__(self, address: str, routes: Mapping[str, Handler]) -> None:
        self._listen = parse_endpoint(address, default_host="0.0.0.0")
        self._routes = dict(routes)
        self._server: asyncio.Server | None = None
        self.endpoint: Endpoint | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._listen.host, self._listen.port, reuse_address=True
        )
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = Endpoint(self._listen.host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def describe(self) -> str:
        """For the ready line."""
        return f"HTTP {self.endpoint.target if self.endpoint else '(not started)'}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            status, response = self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, response = "400 Bad Request", HttpResponse(b"bad request\n", "text/plain")
        except Exception:
            logger.exception("HTTP side port: handler failed")
            status, response = "500 Internal Server Error", HttpResponse(b"error\n", "text/plain")
        cache = f"max-age={response.max_age}" if response.max_age else "no-store"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\nCache-Control: {cache}\r\n"
            "Connection: close\r\n\r\n".encode()
            + response.body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, HttpResponse]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "400 Bad Request", HttpResponse(b"bad request\n", "text/plain")
        method, target, _ = parts
        handler = self._routes.get(target.split("?", 1)[0])
        if handler is None:
            return "404 Not Found", HttpResponse(b"not found\n", "text/plain")
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", HttpResponse(b"method not allowed\n", "text/plain")
        response = handler()
        if method == "HEAD":
            response = HttpResponse(b"", response.content_type, response.max_age)
        return "200 OK", response
