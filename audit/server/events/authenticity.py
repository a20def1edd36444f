"""Verifies that an audit event comes from the service it names: its MAC, under a key that
service shares only with the audit service (the broker in between is not trusted)."""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import NamedTuple

from audit.server.events.wire import ReceivedEvent, Seal
from global_utils.events.signing import KEY_ID_PATTERN, KEY_ID_RE, MIN_AUDIT_KEY_BYTES, MacKey


class RejectKind(StrEnum):
    """Why a delivery was terminated (audit_rejects.kind; count them per kind)."""

    MALFORMED = "malformed"  # not an audit event at all
    UNAUTHENTICATED = "unauthenticated"  # no MAC, or a key id this service does not know
    ALTERED = "altered"  # a MAC that does not match the event as received
    WRONG_SERVICE = "wrong-service"  # a genuine MAC by a service other than the one named
    REFUSED = "refused"  # the database refused the row


class ProducerKey(NamedTuple):
    service: str
    key: bytes


def parse_producer_keys(text: str) -> dict[str, ProducerKey]:
    """`KEY_ID SERVICE KEY` entries, one per line (or separated by `;`); `#` starts a comment.
    Several key ids may name one service (rotation); a key id appears once."""
    keys: dict[str, ProducerKey] = {}
    for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"entry {number}: expected KEY_ID SERVICE KEY")
        key_id, service, key = parts
        if KEY_ID_RE.fullmatch(key_id) is None:
            raise ValueError(f"entry {number}: the key id must match {KEY_ID_PATTERN}")
        if len(key.encode()) < MIN_AUDIT_KEY_BYTES:
            raise ValueError(
                f"entry {number}: the key must be at least {MIN_AUDIT_KEY_BYTES} bytes"
            )
        if key_id in keys:
            raise ValueError(f"entry {number}: key id {key_id} given twice")
        keys[key_id] = ProducerKey(service, key.encode())
    return keys


class EventAuthenticator:
    """Checks a delivery's seal against the producers' keys: one HMAC-SHA256 and a
    constant-time comparison per event."""

    def __init__(self, keys: dict[str, ProducerKey]) -> None:
        self._keys = {key_id: (p.service, MacKey(p.key)) for key_id, p in keys.items()}

    def check(self, event: ReceivedEvent, seal: Seal) -> tuple[RejectKind, str] | None:
        """None for an authentic event, else why not (the reason names no secret)."""
        if not seal.mac or not seal.key_id:
            return RejectKind.UNAUTHENTICATED, "no MAC or key id"
        producer = self._keys.get(seal.key_id)
        if producer is None:
            return RejectKind.UNAUTHENTICATED, f"unknown key id {seal.key_id[:64]!r}"
        service, key = producer
        expected = key.hexdigest(seal.message)
        # compare_digest raises TypeError for non-ASCII text: compare the bytes.
        if not hmac.compare_digest(expected.encode(), seal.mac.encode()):
            return RejectKind.ALTERED, f"MAC does not match (key id {seal.key_id})"
        if service != event.service:
            return (
                RejectKind.WRONG_SERVICE,
                f"key id {seal.key_id} belongs to {service!r}, the event names {event.service!r}",
            )
        return None
