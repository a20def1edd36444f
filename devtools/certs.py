"""Development TLS material (`make certs`): a CA and one certificate per component, each
valid for its compose names, its Kubernetes service names, its registry name (clients use the
service's name as the TLS server name: mDNS and DNS give them bare addresses), localhost and
127.0.0.1. DEVELOPMENT ONLY: the CA's key is in the repository, so anyone can mint certificates
it signs; production certificates come from your own CA and never enter the repository."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devtools.stack import REPO_ROOT
from devtools.suite import load_suite

DEFAULT_DIR = REPO_ROOT / "secrets" / "dev" / "tls-DEVELOPMENT-ONLY"
MARK = "DEVELOPMENT ONLY"
VALID_DAYS = 3650
NAMESPACE = "gotemp"


@dataclass(frozen=True)
class Component:
    name: str  # the registry name clients verify (user, promotion, audit) or the host name
    aliases: tuple[str, ...] = ()

    def dns_names(self) -> list[str]:
        kubernetes = [
            f"{self.name}.{NAMESPACE}.svc",
            f"{self.name}.{NAMESPACE}.svc.cluster.local",
            f"{self.name}-headless",
            f"{self.name}-headless.{NAMESPACE}.svc",
            f"{self.name}-headless.{NAMESPACE}.svc.cluster.local",
        ]
        return [self.name, *self.aliases, *kubernetes, "localhost"]


_SUITE = load_suite()
COMPONENTS = (
    *(Component(service.name, (service.server,)) for service in _SUITE.services),
    Component("postgres", ("pgdb",)),
    Component("timescaledb"),
    Component("nats"),
    # the CLIs' identity when the services require client certificates (mutual TLS)
    Component("cli", tuple(service.client for service in _SUITE.with_cli)),
)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"goTemp-py {MARK}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"goTemp-py {MARK} CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    component: Component,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in component.dns_names()]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(component.name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # one certificate serves a component as a server and, for mutual TLS, as a client
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def write(folder: Path = DEFAULT_DIR, *, missing: bool = False) -> list[Path]:
    """A fresh CA and a key + certificate per component in folder: ca.pem (and ca.key),
    <name>.pem and <name>.key. With missing, the CA in folder (if there is one) and every
    existing certificate stay, and only components without one get theirs (a service new to the
    suite). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    files: dict[str, bytes] = {}
    if missing and (folder / "ca.pem").is_file() and (folder / "ca.key").is_file():
        ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        loaded = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{folder / 'ca.key'} is not the EC key make certs writes")
        ca_key = loaded
    else:
        ca_key, ca_cert = make_ca(now)
        files = {"ca.pem": _cert_pem(ca_cert), "ca.key": _key_pem(ca_key)}
    for component in COMPONENTS:
        if missing and _current(folder / f"{component.name}.pem", component):
            continue
        key, cert = make_leaf(component, ca_key, ca_cert, now)
        files[f"{component.name}.pem"] = _cert_pem(cert)
        files[f"{component.name}.key"] = _key_pem(key)
    written = []
    # PEM readers (OpenSSL, BoringSSL, Go) skip text before the BEGIN line: every file says
    # what it is where anyone opening it will read it.
    banner = f"{MARK}: goTemp-py development TLS (make certs); the CA key is public.\n"
    for name, data in files.items():
        path = folder / name
        path.write_bytes(banner.encode() + data)
        # readable by the non-root users of the containers and the embedded servers
        path.chmod(0o644)
        written.append(path)
    (folder / "README").write_text(
        f"{MARK}: made by `make certs` (devtools/certs.py) for local runs, tests and the TLS\n"
        "compose variant. The CA key is public, so these prove nothing outside development.\n"
    )
    return written


def _current(path: Path, component: Component) -> bool:
    """Whether path holds a certificate for exactly the names component needs now (the CLI's
    grows with every CLI of the suite)."""
    if not path.is_file():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) == set(component.dns_names())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--missing",
        action="store_true",
        help="keep the CA and every certificate there is; make only those components lack",
    )
    args = parser.parse_args()
    for path in write(args.out, missing=args.missing):
        print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
    sys.exit(0)


if __name__ == "__main__":
    main()
