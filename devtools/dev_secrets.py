"""Audit event keys for development and tests: `make secrets` rewrites those of secrets/dev/
(DEVELOPMENT ONLY: compose mounts them as secrets, `make run` reads them); tests and benches
make their own in a scratch folder.

Per producing service, a key file (its AUDIT_SIGNING_KEY_FILE) and key id; for the audit
service, one file listing `KEY_ID SERVICE KEY` for every producer (AUDIT_PRODUCER_KEYS_FILE)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from devtools.stack import REPO_ROOT
from global_utils.token_keys import new_signing_key_pem

DEV_SECRETS = REPO_ROOT / "secrets" / "dev"
PRODUCERS = ("user", "promotion")
DEV_MARK = "DEVELOPMENT-ONLY"


@dataclass(frozen=True)
class AuditKeys:
    """Key files in folder: producer_env(service) and consumer_env() are the settings that
    point at them."""

    folder: Path
    suffix: str = ""
    id_tag: str = "1"

    def key_id(self, service: str) -> str:
        return f"{service}-{self.id_tag}"

    def key_file(self, service: str) -> Path:
        return self.folder / f"audit-signing-key-{service}{self.suffix}"

    @property
    def producer_keys_file(self) -> Path:
        return self.folder / f"audit-producer-keys{self.suffix}"

    def producer_env(self, service: str) -> dict[str, str]:
        return {
            "AUDIT_SIGNING_KEY_ID": self.key_id(service),
            "AUDIT_SIGNING_KEY_FILE": str(self.key_file(service)),
        }

    def consumer_env(self) -> dict[str, str]:
        return {"AUDIT_PRODUCER_KEYS_FILE": str(self.producer_keys_file)}

    def producer_settings(self, service: str) -> dict[str, object]:
        """producer_env as settings keyword arguments."""
        return {k.lower(): v for k, v in self.producer_env(service).items()}

    def consumer_settings(self) -> dict[str, object]:
        return {k.lower(): v for k, v in self.consumer_env().items()}

    def key(self, service: str) -> str:
        return self.key_file(service).read_text().strip()


def make_audit_keys(
    folder: Path,
    services: Iterable[str] = PRODUCERS,
    *,
    development: bool = False,
) -> AuditKeys:
    """Writes a fresh key per service and the audit service's list of them into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = (
        AuditKeys(folder, suffix=f".{DEV_MARK}", id_tag="dev-1")
        if development
        else AuditKeys(folder)
    )
    mark = f"{DEV_MARK}-" if development else ""
    header = (
        f"# {DEV_MARK}: development audit keys (make secrets). Never use them elsewhere.\n"
        if development
        else ""
    )
    lines = [header, "# KEY_ID SERVICE KEY\n"]
    for service in services:
        key = f"{mark}{secrets.token_hex(32)}"
        keys.key_file(service).write_text(f"{key}\n")
        lines.append(f"{keys.key_id(service)} {service} {key}\n")
    keys.producer_keys_file.write_text("".join(lines))
    return keys


def development_keys() -> AuditKeys:
    """The committed development keys (secrets/dev/)."""
    return AuditKeys(DEV_SECRETS, suffix=f".{DEV_MARK}", id_tag="dev-1")


DEV_JWT_SIGNING_KEY = DEV_SECRETS / f"jwt-signing-key.{DEV_MARK}.pem"


def make_jwt_signing_key(path: Path = DEV_JWT_SIGNING_KEY) -> Path:
    """A fresh Ed25519 token signing key (the user service's JWT_PRIVATE_KEY_FILE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = f"{DEV_MARK}: token signing key (make secrets). Never use it elsewhere."
    path.write_text(new_signing_key_pem(comment))
    return path


# Database passwords: the two servers' superusers (the PostgreSQL containers' POSTGRES_PASSWORD_FILE
# and the provisioner's admin credential), and every service database role (provision/databases.py).
DB_SUPERUSERS = ("postgres-superuser", "timescaledb-superuser")


def db_password_file(role: str, folder: Path = DEV_SECRETS) -> Path:
    """The development password file of role (`appuser_owner` or a DB_SUPERUSERS entry)."""
    return folder / f"db-password-{role.replace('_', '-')}.{DEV_MARK}"


def make_db_passwords(roles: Iterable[str], folder: Path = DEV_SECRETS) -> list[Path]:
    """A fresh random password per role (letters and digits: safe in any URL or shell)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for role in roles:
        path = db_password_file(role, folder)
        path.write_text(f"{DEV_MARK}-{secrets.token_hex(16)}\n")
        written.append(path)
    return written


if __name__ == "__main__":
    from provision.databases import ROLES

    make_db_passwords((*DB_SUPERUSERS, *ROLES))
    print(f"development database passwords written to {DEV_SECRETS.relative_to(REPO_ROOT)}/")
    written = make_audit_keys(DEV_SECRETS, development=True)
    print(f"development audit keys written to {written.folder.relative_to(REPO_ROOT)}/")
    print(
        f"development token signing key written to {make_jwt_signing_key().relative_to(REPO_ROOT)}"
    )
