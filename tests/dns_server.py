"""A small DNS server on loopback for discovery tests: A records the test changes as it goes,
served over UDP and TCP (dnslib) on 127.0.0.1 and a free port."""

from __future__ import annotations

import errno
import logging
import threading

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from devtools.stack import BIND_ATTEMPTS

logger = logging.getLogger(__name__)


class LoopbackDns(BaseResolver):
    """Answers A queries from a name → addresses map; nothing else, no forwarding."""

    def __init__(self) -> None:
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.port, self._servers = self._bind()

    def _bind(self) -> tuple[int, list[DNSServer]]:
        """UDP on a port the system chooses, TCP on the same number; another UDP port when a
        process holds that number for TCP (up to BIND_ATTEMPTS times)."""
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            udp = DNSServer(self, port=0, address="127.0.0.1", tcp=False, logger=quiet)
            port = int(udp.server.server_address[1])
            try:
                tcp = DNSServer(self, port=port, address="127.0.0.1", tcp=True, logger=quiet)
            except OSError as exc:
                udp.server.server_close()
                if exc.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS:
                    raise
                logger.warning("DNS on 127.0.0.1: TCP port %s taken, retrying on another", port)
                continue
            return port, [udp, tcp]
        raise AssertionError("unreachable")

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
