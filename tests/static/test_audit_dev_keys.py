"""The development audit event keys: compose secrets from secrets/dev/, marked DEVELOPMENT ONLY,
named by each service's *_FILE settings, and the audit service's list holds the producers'."""

from __future__ import annotations

from pathlib import Path

from audit.server.events.authenticity import parse_producer_keys
from devtools.dev_secrets import development_keys
from devtools.stack import REPO_ROOT
from tests.static.test_deploy_files import model, read_env

SECRETS = {
    "usersrv": ("user", "audit_signing_key_user"),
    "promotionsrv": ("promotion", "audit_signing_key_promotion"),
}


def test_each_producer_mounts_its_own_development_key() -> None:
    compose = model()
    keys = development_keys()
    for service, (name, secret) in SECRETS.items():
        sources = [s["source"] for s in compose["services"][service]["secrets"]]
        assert secret in sources and not {"audit_producer_keys"} & set(sources)
        key_file = Path(compose["secrets"][secret]["file"])
        assert key_file == keys.key_file(name)
        assert key_file.relative_to(REPO_ROOT).parts[:2] == ("secrets", "dev")
        assert "DEVELOPMENT-ONLY" in key_file.name and "DEVELOPMENT-ONLY" in key_file.read_text()
        env = read_env(REPO_ROOT / name / "docker-compose.env")
        assert env["AUDIT_SIGNING_KEY_FILE"] == f"/run/secrets/{secret}"
        assert env["AUDIT_SIGNING_KEY_ID"] == keys.key_id(name)
        assert "AUDIT_SIGNING_KEY" not in env


def test_the_audit_service_knows_each_development_producer_key() -> None:
    compose = model()
    audit = compose["services"]["auditsrv"]
    sources = [s["source"] for s in audit["secrets"]]
    assert sources == ["audit_producer_keys", "db_password_audit_runtime", "nats_seed_audit"]
    keys_file = Path(compose["secrets"]["audit_producer_keys"]["file"])
    assert "DEVELOPMENT-ONLY" in keys_file.name and "DEVELOPMENT-ONLY" in keys_file.read_text()
    env = read_env(REPO_ROOT / "audit" / "docker-compose.env")
    assert env["AUDIT_PRODUCER_KEYS_FILE"] == "/run/secrets/audit_producer_keys"
    known = parse_producer_keys(keys_file.read_text())
    dev = development_keys()
    for name, _ in SECRETS.values():
        entry = known[dev.key_id(name)]
        assert entry.service == name and entry.key.decode() == dev.key(name)
        assert dev.key(name).startswith("DEVELOPMENT-ONLY-")
