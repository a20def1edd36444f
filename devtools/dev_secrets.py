"""Development and test secrets: `make secrets` rewrites those of secrets/dev/ (DEVELOPMENT
ONLY: compose mounts them as secrets, `make run` reads them, and the Kubernetes development
overlay makes its Secrets of them through secrets/dev/kustomization.yaml, which names the files
and which this rewrites not); tests and benches make their own in a scratch folder.

Audit event keys: per producing service, a key file (its AUDIT_SIGNING_KEY_FILE) and key id;
for the audit service, one file listing `KEY_ID SERVICE KEY` for every producer
(AUDIT_PRODUCER_KEYS_FILE).

NATS nkeys: per NATS user (admin, and every service of the suite) a seed file (its
NATS_NKEY_SEED_FILE), and the public keys the server's configuration (nats/nats.conf) reads from
its environment; for development they are nats/docker-compose.env.

Which services, producers and databases there are comes from the suite (suite.toml). With
--missing, `python -m devtools.dev_secrets` keeps every key and password that exists and makes
only those a service new to the suite lacks (the producer key list and the NATS public keys
are rewritten to name them all)."""

from __future__ import annotations

import argparse
import base64
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nkeys

from devtools.paths import REPO_ROOT
from devtools.suite import load_suite
from global_utils.config.secrets import nkey_seed
from global_utils.messaging.broker import BrokerAccess
from user.server.signing_keys import new_signing_key_pem

DEV_SECRETS = REPO_ROOT / "secrets" / "dev"
_SUITE = load_suite()
# The services that sign audit events (suite.toml: audit_events = "produces").
PRODUCERS = tuple(service.name for service in _SUITE.producers)
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
    keep_existing: bool = False,
) -> AuditKeys:
    """Writes a fresh key per service (keep_existing: only where it has none) and the audit
    service's list of them into folder."""
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
        if keep_existing and keys.key_file(service).exists():
            key = keys.key(service)
        else:
            key = f"{mark}{secrets.token_hex(32)}"
            keys.key_file(service).write_text(f"{key}\n")
        lines.append(f"{keys.key_id(service)} {service} {key}\n")
    keys.producer_keys_file.write_text("".join(lines))
    return keys


def development_keys() -> AuditKeys:
    """The committed development keys (secrets/dev/)."""
    return AuditKeys(DEV_SECRETS, suffix=f".{DEV_MARK}", id_tag="dev-1")


DEV_JWT_SIGNING_KEY = DEV_SECRETS / f"jwt-signing-key.{DEV_MARK}.pem"


def make_jwt_signing_key(path: Path = DEV_JWT_SIGNING_KEY, *, keep_existing: bool = False) -> Path:
    """A fresh Ed25519 token signing key (the user service's JWT_PRIVATE_KEY_FILE)."""
    if keep_existing and path.exists():
        return path
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


def make_db_passwords(
    roles: Iterable[str], folder: Path = DEV_SECRETS, *, keep_existing: bool = False
) -> list[Path]:
    """A fresh random password per role (letters and digits: safe in any URL or shell);
    keep_existing: only for roles that have none."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for role in roles:
        path = db_password_file(role, folder)
        if keep_existing and path.exists():
            continue
        path.write_text(f"{DEV_MARK}-{secrets.token_hex(16)}\n")
        written.append(path)
    return written


# The NATS users of nats/nats.conf: the admin (provisioning) and one per service of the suite.
NATS_USERS = ("admin", *_SUITE.names)
# The NATS server's development environment: the public keys (compose env file; the
# Kubernetes dev overlay makes a ConfigMap of it).
DEV_NATS_ENV = REPO_ROOT / "nats" / "docker-compose.env"


@dataclass(frozen=True)
class NatsKeys:
    """nkey seed files in folder (one per NATS user); server_env() is what nats.conf reads."""

    folder: Path
    suffix: str = ""

    def seed_file(self, user: str) -> Path:
        return self.folder / f"nats-seed-{user}{self.suffix}"

    def seed(self, user: str) -> str:
        return nkey_seed(self.seed_file(user).read_text())

    def public_key(self, user: str) -> str:
        return str(nkeys.from_seed(bytearray(self.seed(user).encode())).public_key.decode())

    def server_env(self) -> dict[str, str]:
        return {f"NATS_{user.upper()}_PUBLIC_NKEY": self.public_key(user) for user in NATS_USERS}

    def client_env(self, user: str) -> dict[str, str]:
        """The settings of a process connecting as user."""
        return {"NATS_NKEY_SEED_FILE": str(self.seed_file(user))}

    def client_settings(self, user: str) -> dict[str, object]:
        return {k.lower(): v for k, v in self.client_env(user).items()}

    def access(self, user: str) -> BrokerAccess:
        """user's credentials and inbox, as its settings would give them."""
        return BrokerAccess(nkey_seed=self.seed(user), inbox_prefix=f"_INBOX.{user}")

    def connect_frame(self, user: str, info_line: bytes) -> bytes:
        """The CONNECT line a hand-written client (raw protocol frames) sends as user after
        the server's INFO line: the nonce in it signed with user's seed."""
        info = json.loads(info_line.partition(b" ")[2])
        pair = nkeys.from_seed(bytearray(self.seed(user).encode()))
        options = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "nkey": pair.public_key.decode(),
            "sig": base64.b64encode(pair.sign(info["nonce"].encode())).decode(),
        }
        return b"CONNECT " + json.dumps(options).encode() + b"\r\n"


def make_nats_keys(
    folder: Path, *, development: bool = False, keep_existing: bool = False
) -> NatsKeys:
    """Writes a fresh nkey seed per NATS user into folder (keep_existing: only where it has
    none)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = NatsKeys(folder, suffix=f".{DEV_MARK}" if development else "")
    for user in NATS_USERS:
        if keep_existing and keys.seed_file(user).exists():
            continue
        seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()
        header = (
            f"# {DEV_MARK}: development NATS nkey seed of {user} (make secrets)."
            " Never use it elsewhere.\n"
            if development
            else ""
        )
        keys.seed_file(user).write_text(f"{header}{seed}\n")
    return keys


def development_nats_keys() -> NatsKeys:
    """The committed development seeds (secrets/dev/)."""
    return NatsKeys(DEV_SECRETS, suffix=f".{DEV_MARK}")


def write_dev_nats_env(keys: NatsKeys, path: Path = DEV_NATS_ENV) -> Path:
    """The NATS server's development environment: the public keys of keys' seeds."""
    lines = [
        "# NATS server settings (docker compose; the Kubernetes dev overlay's ConfigMap\n",
        "# nats-users): the PUBLIC nkeys nats/nats.conf lists. Not secret, but they belong to\n",
        f"# the {DEV_MARK} seeds in secrets/dev/nats-seed-*: `make secrets` rewrites both.\n",
        *(f"{name}={value}\n" for name, value in keys.server_env().items()),
    ]
    path.write_text("".join(lines))
    return path


def main(argv: Iterable[str] | None = None) -> None:
    from provision.databases import ROLES

    parser = argparse.ArgumentParser(prog="python -m devtools.dev_secrets", description=__doc__)
    parser.add_argument(
        "--missing",
        action="store_true",
        help="keep the existing keys and passwords; make only those the suite lacks",
    )
    keep = parser.parse_args(None if argv is None else list(argv)).missing
    made = "made any missing" if keep else "new"
    make_db_passwords((*DB_SUPERUSERS, *ROLES), keep_existing=keep)
    print(f"{made} development database passwords in {DEV_SECRETS.relative_to(REPO_ROOT)}/")
    written = make_audit_keys(DEV_SECRETS, development=True, keep_existing=keep)
    print(f"{made} development audit keys in {written.folder.relative_to(REPO_ROOT)}/")
    nats_keys = make_nats_keys(DEV_SECRETS, development=True, keep_existing=keep)
    print(
        f"{made} development NATS nkey seeds in {nats_keys.folder.relative_to(REPO_ROOT)}/,"
        f" their public keys in {write_dev_nats_env(nats_keys).relative_to(REPO_ROOT)}"
    )
    key = make_jwt_signing_key(keep_existing=keep)
    print(f"{made} development token signing key: {key.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
