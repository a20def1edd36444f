"""The audit service knows every producer's record type (generated from suite.toml), so a
record of any service of the suite is shown as JSON, in a process that imports nothing else."""

from __future__ import annotations

import subprocess
import sys

from devtools.paths import REPO_ROOT
from devtools.suite import load_suite

PROBE = """
import sys
from google.protobuf import descriptor_pool
from audit.server import payload_types
def known(name):
    try:
        descriptor_pool.Default().FindMessageTypeByName(name)
        return True
    except KeyError:
        return False
names = sys.argv[1:]
before = [known(n) for n in names]
payload_types.register()
print(before, [known(n) for n in names])
"""


def test_every_producers_record_type_is_registered_by_the_audit_service() -> None:
    suite = load_suite()
    records = [f"{s.name}.{s.name.capitalize()}" for s in suite.producers]
    assert {"user.User", "customer.Customer", "product.Product"} <= set(records)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *records],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before, after = result.stdout.strip().split("] [")
    assert "True" not in before
    assert after.rstrip("]").split(", ") == ["True"] * len(records)
