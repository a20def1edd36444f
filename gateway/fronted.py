"""A service the gateway fronts: its registry name, proto service and generated Connect
application (gateway/suite_services.py, generated from suite.toml, lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectrpc.server import ConnectASGIApplication


@dataclass(frozen=True)
class FrontedService:
    name: str  # registry name, e.g. "user"
    grpc_service: str  # full proto service name, e.g. "user.UserSrv"
    # the *ASGIApplication class protoc-gen-connectrpc wrote into <name>/proto/<name>_connect.py
    application_class: type[ConnectASGIApplication[Any]]

    def application(self, implementation: object, *, read_max_bytes: int) -> Any:
        """Its Connect application, every method handled by implementation."""
        return self.application_class(  # type: ignore[call-arg]  # the generated subclasses take service=
            service=implementation, read_max_bytes=read_max_bytes
        )
