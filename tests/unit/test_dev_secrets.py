"""make secrets for the suite (devtools/dev_secrets.py): every service gets its seed, every
producer its signing key, and --missing keeps what exists while adding what a new service lacks."""

from __future__ import annotations

from pathlib import Path

from devtools.dev_secrets import (
    NATS_USERS,
    PRODUCERS,
    make_audit_keys,
    make_db_passwords,
    make_nats_keys,
)
from devtools.suite import load_suite


def test_every_service_of_the_suite_has_a_nats_user_and_every_producer_a_key() -> None:
    suite = load_suite()
    assert NATS_USERS == ("admin", *suite.names)
    assert PRODUCERS == tuple(service.name for service in suite.producers)


def test_keep_existing_adds_a_new_producers_key_and_lists_every_producer(tmp_path: Path) -> None:
    first = make_audit_keys(tmp_path, ["user"], development=True)
    user_key = first.key("user")
    keys = make_audit_keys(tmp_path, ["user", "widget"], development=True, keep_existing=True)
    assert keys.key("user") == user_key
    listed = [
        line.split() for line in keys.producer_keys_file.read_text().splitlines() if line[:1] != "#"
    ]
    assert listed == [
        ["user-dev-1", "user", user_key],
        ["widget-dev-1", "widget", keys.key("widget")],
    ]
    fresh = make_audit_keys(tmp_path, ["user", "widget"], development=True)
    assert fresh.key("user") != user_key


def test_keep_existing_keeps_seeds_and_passwords(tmp_path: Path) -> None:
    keys = make_nats_keys(tmp_path)
    seeds = {user: keys.seed(user) for user in NATS_USERS}
    removed = keys.seed_file(NATS_USERS[-1])
    removed.unlink()
    again = make_nats_keys(tmp_path, keep_existing=True)
    assert {user: again.seed(user) for user in NATS_USERS[:-1]} == {
        user: seeds[user] for user in NATS_USERS[:-1]
    }
    assert again.seed(NATS_USERS[-1]).startswith("SU")
    (password,) = make_db_passwords(["widget_owner"], tmp_path)
    before = password.read_text()
    assert make_db_passwords(["widget_owner", "widget_runtime"], tmp_path, keep_existing=True) == [
        tmp_path / "db-password-widget-runtime.DEVELOPMENT-ONLY"
    ]
    assert password.read_text() == before
