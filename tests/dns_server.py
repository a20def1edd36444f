"""A small DNS server on loopback for discovery tests: A records the test changes as it goes,
served over UDP and TCP (dnslib) on 127.0.0.1 and a free port."""

from __future__ import annotations

import threading

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from devtools.stack import free_port


class LoopbackDns(BaseResolver):
    """Answers A queries from a name → addresses map; nothing else, no forwarding."""

    def __init__(self) -> None:
        self.port = free_port()
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
        self._servers = [
            DNSServer(self, port=self.port, address="127.0.0.1", tcp=tcp, logger=quiet)
            for tcp in (False, True)
        ]

    def set(self, name: str, addresses: list[str]) -> None:
        with self._lock:
            self._records[name.rstrip(".")] = list(addresses)

    def target(self, name: str, port: int) -> str:
        """The gRPC target asking this server for name (c-ares takes the DNS server from the
        target's authority)."""
        return f"dns://127.0.0.1:{self.port}/{name}:{port}"

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        question = request.q
        if question.qtype == QTYPE.A:
            with self._lock:
                addresses = self._records.get(str(question.qname).rstrip("."), [])
            for address in addresses:
                reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=1))
        return reply

    def start(self) -> LoopbackDns:
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
