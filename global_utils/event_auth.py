"""Audit event authentication: the canonical bytes a producer's HMAC-SHA256 covers, and the
producer's signer with its settings (the audit service verifies in audit/server/authenticity.py).

MAC input, version 1 (documented in README, "Event authentication"): the ASCII tag
`gotemp-audit-mac-v1`, then each of these header values as it travels (UTF-8), in this
order, each preceded by its length as 4 bytes big-endian: eventId, actionTime, service,
actionFunc, actionType, objectName, objectId, performedBy, payloadType; then the payload
bytes, preceded by their length the same way. The MAC travels as lowercase hex in the `mac`
header, the key's id in `keyId`."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from global_utils.audit import AuditHeader

MIN_AUDIT_KEY_BYTES = 32
KEY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
KEY_ID_RE = re.compile(KEY_ID_PATTERN)
MAC_TAG = b"gotemp-audit-mac-v1"

# The headers the MAC covers, in MAC order (the payload follows them).
SIGNED_HEADERS: tuple[AuditHeader, ...] = (
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


def mac_message(values: Sequence[str], payload: bytes) -> bytes:
    """The bytes the MAC covers: values in SIGNED_HEADERS' order, then the payload."""
    parts = [MAC_TAG]
    for value in values:
        encoded = value.encode()
        parts.append(len(encoded).to_bytes(4, "big"))
        parts.append(encoded)
    parts.append(len(payload).to_bytes(4, "big"))
    parts.append(payload)
    return b"".join(parts)


def compute_mac(key: bytes, values: Sequence[str], payload: bytes) -> str:
    return hmac.new(key, mac_message(values, payload), hashlib.sha256).hexdigest()


class EventSigner:
    """Adds keyId and mac to an event's headers, with the key this producer shares only with
    the audit service."""

    def __init__(self, key_id: str, key: bytes) -> None:
        if KEY_ID_RE.fullmatch(key_id) is None:
            raise ValueError(f"key id must match {KEY_ID_PATTERN}")
        if len(key) < MIN_AUDIT_KEY_BYTES:
            raise ValueError(f"the key must be at least {MIN_AUDIT_KEY_BYTES} bytes")
        self.key_id = key_id
        self._key = key

    def sign(self, headers: Mapping[str, str], payload: bytes) -> dict[str, str]:
        # Values as the consumer reads them back (its header parser strips surroundings).
        values = [headers[header].strip() for header in SIGNED_HEADERS]
        return {
            **headers,
            AuditHeader.KEY_ID.value: self.key_id,
            AuditHeader.MAC.value: compute_mac(self._key, values, payload),
        }


def read_secret(variable: str, value: str, path: Path | None) -> str:
    """A secret setting given directly or as a file (`<variable>_FILE`, which wins)."""
    if path is None:
        return value
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from None


class AuditSigningSettings(BaseSettings):
    """A producer's audit signing key (AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE) and its id
    (AUDIT_SIGNING_KEY_ID), which the audit service maps to this service."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    audit_signing_key_id: str = ""
    audit_signing_key: str = Field(default="", repr=False)
    audit_signing_key_file: Path | None = None

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
        return EventSigner(self.audit_signing_key_id, self.audit_signing_key.encode())
