"""The committed development certificates (make certs): what the TLS compose variant and the
Kubernetes TLS component mount. They must say what they are and still be good."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509

from devtools.certs import COMPONENTS, DEFAULT_DIR, MARK, Component


def load(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((DEFAULT_DIR / name).read_bytes())


def test_every_file_says_development_only() -> None:
    files = sorted(DEFAULT_DIR.iterdir())
    assert files, "run make certs"
    assert "DEVELOPMENT-ONLY" in DEFAULT_DIR.name
    for path in files:
        text = path.read_text()
        if path.name == "kustomization.yaml":
            # the Kustomization making the Kubernetes TLS overlay's Secrets (generated: make
            # generate's line first) says it in a comment
            if text.startswith("# Generated from suite.toml"):
                text = text.split("\n", 1)[1]
            assert text.startswith(f"# {MARK}"), path.name
        else:
            assert text.startswith(MARK), path.name


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_each_certificate_is_signed_by_the_ca_for_its_names(component: Component) -> None:
    ca, cert = load("ca.pem"), load(f"{component.name}.pem")
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(component.dns_names()) <= set(names.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    # a year of margin, so a stale set fails here long before it fails a user
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
