"""python -m provision.wait's configuration: the service's own database settings; a bad one
stops it at once with one line (its waiting: tests/integration/test_provision_wait.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.databases import DATABASES
from provision.wait import WaitSettings, main

CONNECT = "postgresql://appuser_runtime@db.example:5432/appuser"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No database setting from the machine running the tests."""
    for name in (
        "POSTGRES_CONNECT",
        "POSTGRES_PASSWORD",
        "POSTGRES_PASSWORD_FILE",
        "DB_CONNECT",
        "DB_PASSWORD",
        "DB_PASSWORD_FILE",
        "PROVISION_WAIT_TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_user_and_promotion_settings_are_read_with_the_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("pw-from-file\n")
    monkeypatch.setenv("POSTGRES_CONNECT", CONNECT)
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", str(tmp_path / "password"))
    credential = WaitSettings().credential
    assert (credential.dsn, credential.password) == (CONNECT, "pw-from-file")


def test_audit_settings_are_read_with_the_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("audit-pw\n")
    audit = "postgresql://audit_runtime@tsdb:5432/audit"
    monkeypatch.setenv("DB_CONNECT", audit)
    monkeypatch.setenv("DB_PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv("PROVISION_WAIT_TIMEOUT_SECONDS", "12.5")
    settings = WaitSettings()
    assert (settings.credential.dsn, settings.credential.password) == (audit, "audit-pw")
    assert settings.provision_wait_timeout_seconds == 12.5


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "configuration error: set the service's database URL: POSTGRES_CONNECT"),
        (
            {"POSTGRES_CONNECT": CONNECT, "DB_CONNECT": CONNECT},
            "configuration error: set the service's database URL: POSTGRES_CONNECT",
        ),
        ({"DB_CONNECT": "appuser@db:5432"}, "configuration error: DB_CONNECT: not a postgresql"),
        (
            {"POSTGRES_CONNECT": CONNECT, "POSTGRES_PASSWORD_FILE": "/nonexistent/password"},
            "configuration error: POSTGRES_PASSWORD_FILE: cannot read /nonexistent/password",
        ),
        (
            {"POSTGRES_CONNECT": CONNECT, "PROVISION_WAIT_TIMEOUT_SECONDS": "0"},
            "configuration error: PROVISION_WAIT_TIMEOUT_SECONDS:",
        ),
    ],
)
def test_a_bad_configuration_stops_it_with_one_line(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(["appuser"])
    text = str(stopped.value.code)
    assert text.startswith(message), text
    assert "\n" not in text


def test_an_unknown_database_is_refused_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["users"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'users'" in error
    assert all(database.name in error for database in DATABASES)
