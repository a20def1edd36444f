"""Audit event authentication: the canonical bytes a producer's HMAC-SHA256 covers, and the
producer's signer with its settings (the audit service verifies in
audit/server/events/authenticity.py).

MAC input, version 2 (what producers sign; docs/security.md, "Audit events nobody can forge"):
the ASCII tag `gotemp-audit-mac-v2` and a newline, then the header values as they travel (UTF-8), in
the order producers write them: service, actionFunc, actionType, objectName, objectId,
performedBy, actionTime, eventId, payloadType, each followed by a newline; then the payload
bytes. No value may contain a newline (producers' values are printable text, a UUID and an ISO
time; the consumer refuses any other as malformed), so the fields cannot be told apart
differently. The `mac` header carries `v2:` and the lowercase hex MAC, `keyId` the key's id.

Version 1 (the first release; still verified, for events signed before an upgrade and waiting
in an outbox or the stream): the tag `gotemp-audit-mac-v1`, then eventId, actionTime, service,
actionFunc, actionType, objectName, objectId, performedBy, payloadType and the payload, each
preceded by its length as 4 bytes big-endian; the `mac` header is the bare lowercase hex MAC."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG
from global_utils.config.secrets import read_secret
from global_utils.events.audit_event import FIELD_BY_HEADER, AuditHeader
from global_utils.events.envelope import DEFAULT_ENVELOPE_EVENTS, MAX_ENVELOPE_EVENTS

MIN_AUDIT_KEY_BYTES = 32
KEY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
KEY_ID_RE = re.compile(KEY_ID_PATTERN)
MAC_TAG_V1 = b"gotemp-audit-mac-v1"
MAC_TAG_V2 = b"gotemp-audit-mac-v2\n"
# What the mac header of a version 2 MAC starts with (a version 1 MAC is bare hex).
MAC_V2_PREFIX = "v2:"

# The headers a version 1 MAC covers, in its order (the payload follows them).
# The order a signed event's headers travel in: what AuditEvent.headers() and EventSigner.sign()
# write. The audit consumer's fast path reads exactly this order (anything else takes its
# general parser), so a relay publishes stored headers in it (a jsonb column returns an object's
# keys shortest first).
PUBLISHED_HEADERS: tuple[str, ...] = (
    *(header.value for header in FIELD_BY_HEADER),
    AuditHeader.MSG_ID.value,
    AuditHeader.KEY_ID.value,
    AuditHeader.MAC.value,
)


def in_published_order(headers: Mapping[str, str]) -> dict[str, str]:
    """headers in PUBLISHED_HEADERS order, any others after them in their own order."""
    ordered = {name: headers[name] for name in PUBLISHED_HEADERS if name in headers}
    if len(ordered) != len(headers):
        ordered.update((name, value) for name, value in headers.items() if name not in ordered)
    return ordered


SIGNED_HEADERS_V1: tuple[AuditHeader, ...] = (
    AuditHeader.EVENT_ID,
    AuditHeader.ACTION_TIME,
    AuditHeader.SERVICE,
    AuditHeader.ACTION_FUNC,
    AuditHeader.ACTION_TYPE,
    AuditHeader.OBJECT_NAME,
    AuditHeader.OBJECT_ID,
    AuditHeader.PERFORMED_BY,
    AuditHeader.PAYLOAD_TYPE,
)
# Version 2 covers the same headers in the order they travel, so the consumer joins the values
# as it parsed them.
SIGNED_HEADERS: tuple[AuditHeader, ...] = tuple(FIELD_BY_HEADER)


def mac_message(values: Sequence[str], payload: bytes) -> bytes:
    """The bytes a version 2 MAC covers: values in SIGNED_HEADERS' order, then the payload.
    Raises ValueError for a value with a newline (it would make the encoding ambiguous)."""
    text = "\n".join(values)
    if text.count("\n") != len(values) - 1:
        raise ValueError("a signed header value contains a newline")
    return b"".join((MAC_TAG_V2, text.encode(), b"\n", payload))


def mac_message_v1(values: Sequence[str], payload: bytes) -> bytes:
    """The bytes a version 1 MAC covers: values in SIGNED_HEADERS_V1' order, then the payload."""
    parts = [MAC_TAG_V1]
    for value in values:
        encoded = value.encode()
        parts.append(len(encoded).to_bytes(4, "big"))
        parts.append(encoded)
    parts.append(len(payload).to_bytes(4, "big"))
    parts.append(payload)
    return b"".join(parts)


class MacKey:
    """HMAC-SHA256 under one key, its padded key blocks hashed once (RFC 2104): a MAC then costs
    two copied hash states and their updates, half of what hmac.new's per-call setup costs."""

    _BLOCK = 64  # SHA-256's block size

    def __init__(self, key: bytes) -> None:
        if len(key) > self._BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(self._BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def compute_mac(key: bytes, values: Sequence[str], payload: bytes) -> str:
    """The mac header for values (SIGNED_HEADERS' order) and payload: version 2."""
    return MAC_V2_PREFIX + MacKey(key).hexdigest(mac_message(values, payload))


class EventSigner:
    """Adds keyId and mac to an event's headers, with the key this producer shares only with
    the audit service. mac_version 1 signs as the first release did (tests of the upgrade)."""

    def __init__(self, key_id: str, key: bytes, *, mac_version: int = 2) -> None:
        if KEY_ID_RE.fullmatch(key_id) is None:
            raise ValueError(f"key id must match {KEY_ID_PATTERN}")
        if len(key) < MIN_AUDIT_KEY_BYTES:
            raise ValueError(f"the key must be at least {MIN_AUDIT_KEY_BYTES} bytes")
        if mac_version not in (1, 2):
            raise ValueError("mac_version must be 1 or 2")
        self.key_id = key_id
        self._mac = MacKey(key)
        self._version = mac_version

    def sign(self, headers: Mapping[str, str], payload: bytes) -> dict[str, str]:
        # Values as the consumer reads them back (its header parser strips surroundings).
        if self._version == 1:
            values = [headers[header].strip() for header in SIGNED_HEADERS_V1]
            mac = self._mac.hexdigest(mac_message_v1(values, payload))
        else:
            values = [headers[header].strip() for header in SIGNED_HEADERS]
            mac = MAC_V2_PREFIX + self._mac.hexdigest(mac_message(values, payload))
        return {**headers, AuditHeader.KEY_ID.value: self.key_id, AuditHeader.MAC.value: mac}


class AuditSigningSettings(BaseSettings):
    """A producer's audit signing key (AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE), its id
    (AUDIT_SIGNING_KEY_ID), which the audit service maps to this service, the MAC
    encoding (AUDIT_MAC_VERSION) and how many events its relay sends in one message
    (AUDIT_ENVELOPE_EVENTS)."""

    model_config = GROUP_CONFIG

    audit_signing_key_id: str = ""
    """The id of this producer's audit signing key, sent with every event; the audit service
    maps it to this service (AUDIT_PRODUCER_KEYS). Required."""
    audit_signing_key: str = Field(default="", repr=False)
    """This producer's HMAC key for audit events, at least 32 bytes; this or
    AUDIT_SIGNING_KEY_FILE is required."""
    audit_signing_key_file: Path | None = None
    """A file holding AUDIT_SIGNING_KEY (a secret)."""
    audit_mac_version: int = Field(default=2, ge=1, le=2)
    """The MAC encoding signed with: 1 during a rolling upgrade while audit instances of the
    previous release (which verify only version 1) may still be consuming; then 2."""
    audit_envelope_events: int = Field(
        default=DEFAULT_ENVELOPE_EVENTS, ge=1, le=MAX_ENVELOPE_EVENTS
    )
    """The most audit events the outbox relay sends in one NATS message (an envelope, each
    event signed on its own; at most 512 KiB); 1: a message per event, for a rolling upgrade
    while audit instances of a release that reads no envelopes may still be consuming."""

    @model_validator(mode="after")
    def _require_key(self) -> AuditSigningSettings:
        self.audit_signing_key = read_secret(
            "AUDIT_SIGNING_KEY", self.audit_signing_key, self.audit_signing_key_file
        )
        if not self.audit_signing_key:
            raise ValueError(
                "AUDIT_SIGNING_KEY: no audit signing key: set AUDIT_SIGNING_KEY or"
                " AUDIT_SIGNING_KEY_FILE"
            )
        if len(self.audit_signing_key.encode()) < MIN_AUDIT_KEY_BYTES:
            raise ValueError(
                f"AUDIT_SIGNING_KEY: the key must be at least {MIN_AUDIT_KEY_BYTES} bytes"
            )
        if KEY_ID_RE.fullmatch(self.audit_signing_key_id) is None:
            raise ValueError(f"AUDIT_SIGNING_KEY_ID: must match {KEY_ID_PATTERN}")
        return self

    def audit_signer(self) -> EventSigner:
        return EventSigner(
            self.audit_signing_key_id,
            self.audit_signing_key.encode(),
            mac_version=self.audit_mac_version,
        )
