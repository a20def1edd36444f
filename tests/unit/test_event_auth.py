"""Audit event authentication: what the MAC covers, who may sign what, and the key settings."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from audit.server.events.authenticity import (
    EventAuthenticator,
    ProducerKey,
    RejectKind,
    parse_producer_keys,
)
from audit.server.events.wire import header_block, parse_delivery
from audit.server.settings import AuditSettings
from global_utils.config.loading import load_settings
from global_utils.events.audit_event import ActionType, AuditEvent, AuditHeader
from global_utils.events.signing import (
    PUBLISHED_HEADERS,
    AuditSigningSettings,
    EventSigner,
    MacKey,
    in_published_order,
)

USER_KEY = b"u" * 32
PROMOTION_KEY = b"p" * 32
USER = EventSigner("user-1", USER_KEY)
PROMOTION = EventSigner("promotion-1", PROMOTION_KEY)
AUTHENTICATOR = EventAuthenticator(
    {
        "user-1": ProducerKey("user", USER_KEY),
        "promotion-1": ProducerKey("promotion", PROMOTION_KEY),
    }
)


def _event(service: str = "user") -> AuditEvent:
    return AuditEvent(
        service=service,
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name="user",
        object_id="42",
        performed_by="7",
        payload_type="user.User",
        payload=b"\x08\x2a",
    )


def _check(headers: dict[str, str], payload: bytes) -> RejectKind | None:
    event, seal = parse_delivery(header_block(headers), payload)
    refusal = AUTHENTICATOR.check(event, seal)
    return None if refusal is None else refusal[0]


def test_a_genuine_event_is_accepted() -> None:
    event = _event()
    assert _check(USER.sign(event.headers(), event.payload), event.payload) is None


def test_the_mac_is_hmac_sha256_over_the_documented_encoding() -> None:
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    fields = [
        headers[h]
        for h in (
            "service",
            "actionFunc",
            "actionType",
            "objectName",
            "objectId",
            "performedBy",
            "actionTime",
            "eventId",
            "payloadType",
        )
    ]
    message = b"gotemp-audit-mac-v2\n" + "".join(f + "\n" for f in fields).encode() + event.payload
    assert headers["mac"] == "v2:" + hmac.new(USER_KEY, message, hashlib.sha256).hexdigest()
    assert headers["keyId"] == "user-1"


def test_the_first_release_encoding_still_verifies() -> None:
    """Events signed before an upgrade (waiting in an outbox or the stream) are accepted, and
    their MAC is still the first release's: length-prefixed values, a bare hex mac header."""
    event = _event()
    headers = EventSigner("user-1", USER_KEY, mac_version=1).sign(event.headers(), event.payload)
    fields = [
        headers[h]
        for h in (
            "eventId",
            "actionTime",
            "service",
            "actionFunc",
            "actionType",
            "objectName",
            "objectId",
            "performedBy",
            "payloadType",
        )
    ]
    message = b"gotemp-audit-mac-v1"
    for value in [*(f.encode() for f in fields), event.payload]:
        message += len(value).to_bytes(4, "big") + value
    assert headers["mac"] == hmac.new(USER_KEY, message, hashlib.sha256).hexdigest()
    assert _check(headers, event.payload) is None
    assert _check({**headers, "objectId": "43"}, event.payload) is RejectKind.ALTERED


def test_a_version_1_mac_cannot_pass_for_version_2_or_back() -> None:
    event = _event()
    v1 = EventSigner("user-1", USER_KEY, mac_version=1).sign(event.headers(), event.payload)
    v2 = USER.sign(event.headers(), event.payload)
    assert _check({**v1, "mac": "v2:" + v1["mac"]}, event.payload) is RejectKind.ALTERED
    assert _check({**v2, "mac": v2["mac"].removeprefix("v2:")}, event.payload) is (
        RejectKind.ALTERED
    )


def test_mac_key_is_hmac_sha256_for_any_key_length() -> None:
    for key in (b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(256)) * 2):
        message = b"some message\n\x00\xff"
        assert MacKey(key).hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()


def test_a_newline_in_a_signed_value_is_refused_on_both_sides() -> None:
    """Version 2 joins values with newlines: a value holding one could shift the fields, so the
    signer refuses to sign it and the consumer reads such an event as malformed, even where
    the header's own check would let it through (uuid accepts "urn:" and leading space)."""
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    with pytest.raises(ValueError, match="newline"):
        USER.sign({**event.headers(), "objectId": "4\n2"}, event.payload)
    # a lone LF inside a header value reaches the general header parser
    spelled = "urn:\n" + headers["eventId"].replace("-", "")[1:]
    block = header_block({**headers, "eventId": spelled})
    with pytest.raises(ValueError, match="newline"):
        parse_delivery(block, event.payload)


def test_a_mac_with_non_ascii_characters_is_altered_not_a_crash() -> None:
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    assert _check({**headers, "mac": "v2:" + "é" * 64}, event.payload) is RejectKind.ALTERED
    assert _check({**headers, "mac": "é" * 64}, event.payload) is RejectKind.ALTERED


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (AuditHeader.EVENT_ID, "00000000-0000-4000-8000-000000000099"),
        (AuditHeader.ACTION_TIME, "2030-01-01T00:00:00+00:00"),
        (AuditHeader.ACTION_FUNC, "AfterDeleteUser"),
        (AuditHeader.ACTION_TYPE, "delete"),
        (AuditHeader.OBJECT_NAME, "promotion"),
        (AuditHeader.OBJECT_ID, "43"),
        (AuditHeader.PERFORMED_BY, "8"),
        (AuditHeader.PAYLOAD_TYPE, "user.Users"),
    ],
)
def test_an_altered_field_is_refused(header: AuditHeader, value: str) -> None:
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    assert _check({**headers, header.value: value}, event.payload) is RejectKind.ALTERED


def test_an_altered_payload_is_refused() -> None:
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    assert _check(headers, event.payload + b"\x00") is RejectKind.ALTERED


def test_unsigned_and_unknown_key_events_are_unauthenticated() -> None:
    event = _event()
    assert _check(event.headers(), event.payload) is RejectKind.UNAUTHENTICATED
    stranger = EventSigner("user-9", b"s" * 32)
    assert (
        _check(stranger.sign(event.headers(), event.payload), event.payload)
        is RejectKind.UNAUTHENTICATED
    )


def test_a_service_signing_for_another_is_refused() -> None:
    event = _event(service="user")
    headers = PROMOTION.sign(event.headers(), event.payload)
    assert _check(headers, event.payload) is RejectKind.WRONG_SERVICE


def test_renaming_the_service_breaks_the_mac() -> None:
    event = _event(service="user")
    headers = USER.sign(event.headers(), event.payload)
    assert _check({**headers, "service": "promotion"}, event.payload) is RejectKind.ALTERED


def test_header_order_and_spacing_do_not_change_the_seal() -> None:
    event = _event()
    headers = USER.sign(event.headers(), event.payload)
    fast = parse_delivery(header_block(headers), event.payload)
    shuffled = dict(reversed(list(headers.items())))
    block = header_block(shuffled).replace(b"objectId: 42", b"objectId:   42  ")
    slow = parse_delivery(block, event.payload)
    assert fast == slow


def test_producer_keys_parse_and_reject_bad_entries() -> None:
    text = (
        f"# comment\nuser-1 user {'a' * 32}\n"
        f"user-2 user {'b' * 32}; promotion-1 promotion {'c' * 32}"
    )
    keys = parse_producer_keys(text)
    assert {k: v.service for k, v in keys.items()} == {
        "user-1": "user",
        "user-2": "user",
        "promotion-1": "promotion",
    }
    for bad, message in [
        ("user-1 user", "expected KEY_ID SERVICE KEY"),
        ("user-1 user short", "at least 32 bytes"),
        (f"user/1 user {'a' * 32}", "key id must match"),
        (f"u user {'a' * 32}\nu user {'b' * 32}", "given twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_producer_keys(bad)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with no audit key settings, and the audit service's database."""
    for name in (
        "AUDIT_SIGNING_KEY",
        "AUDIT_SIGNING_KEY_FILE",
        "AUDIT_SIGNING_KEY_ID",
        "AUDIT_MAC_VERSION",
        "AUDIT_PRODUCER_KEYS",
        "AUDIT_PRODUCER_KEYS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_CONNECT", "postgresql://u@127.0.0.1/audit")
    return monkeypatch


def _exit_message(cls: type) -> str:
    with pytest.raises(SystemExit) as exc:
        load_settings(cls)
    return str(exc.value.code)


def test_a_producer_without_a_signing_key_refuses_to_start(env: pytest.MonkeyPatch) -> None:
    assert _exit_message(AuditSigningSettings) == (
        "configuration error: AUDIT_SIGNING_KEY: no audit signing key:"
        " set AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE"
    )
    env.setenv("AUDIT_SIGNING_KEY", "k" * 32)
    assert "AUDIT_SIGNING_KEY_ID" in _exit_message(AuditSigningSettings)
    env.setenv("AUDIT_SIGNING_KEY", "short")
    env.setenv("AUDIT_SIGNING_KEY_ID", "user-1")
    assert "at least 32 bytes" in _exit_message(AuditSigningSettings)


def test_the_signing_key_file_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 40 + "\n")
    env.setenv("AUDIT_SIGNING_KEY_FILE", str(tmp_path / "key"))
    env.setenv("AUDIT_SIGNING_KEY_ID", "user-2")
    settings = load_settings(AuditSigningSettings)
    assert settings.audit_signer().key_id == "user-2"
    assert "k" * 40 not in repr(settings)
    env.setenv("AUDIT_SIGNING_KEY_FILE", str(tmp_path / "absent"))
    assert "AUDIT_SIGNING_KEY_FILE: cannot read" in _exit_message(AuditSigningSettings)


def test_the_audit_service_needs_producer_keys(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _exit_message(AuditSettings) == (
        "configuration error: AUDIT_PRODUCER_KEYS: no producer keys:"
        " set AUDIT_PRODUCER_KEYS or AUDIT_PRODUCER_KEYS_FILE"
    )
    env.setenv("AUDIT_PRODUCER_KEYS", "user-1 user short")
    assert "entry 1: the key must be at least 32 bytes" in _exit_message(AuditSettings)
    (tmp_path / "keys").write_text(f"user-1 user {'k' * 32}\n")
    env.setenv("AUDIT_PRODUCER_KEYS_FILE", str(tmp_path / "keys"))
    assert set(load_settings(AuditSettings).ingest.producer_keys) == {"user-1"}


def test_producers_can_sign_as_the_previous_release_during_an_upgrade(
    env: pytest.MonkeyPatch,
) -> None:
    """AUDIT_MAC_VERSION=1 while audit instances of the previous release may still consume:
    they verify only version 1; the new ones verify both."""
    env.setenv("AUDIT_SIGNING_KEY", USER_KEY.decode())
    env.setenv("AUDIT_SIGNING_KEY_ID", "user-1")
    event = _event()
    default = load_settings(AuditSigningSettings).audit_signer()
    assert default.sign(event.headers(), event.payload)["mac"].startswith("v2:")
    env.setenv("AUDIT_MAC_VERSION", "1")
    previous = load_settings(AuditSigningSettings).audit_signer()
    headers = previous.sign(event.headers(), event.payload)
    assert ":" not in headers["mac"] and _check(headers, event.payload) is None
    env.setenv("AUDIT_MAC_VERSION", "3")
    assert "AUDIT_MAC_VERSION: Input should be less than or equal to 2" in _exit_message(
        AuditSigningSettings
    )


def test_headers_are_published_in_the_signers_order_whatever_order_they_are_stored_in() -> None:
    event = _event()
    signed = USER.sign(event.headers(), event.payload)
    assert list(signed) == list(PUBLISHED_HEADERS)
    from_jsonb = dict(sorted(signed.items(), key=lambda item: (len(item[0]), item[0])))
    from_jsonb["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert list(in_published_order(from_jsonb)) == [*PUBLISHED_HEADERS, "traceparent"]
    assert in_published_order(from_jsonb) == from_jsonb
