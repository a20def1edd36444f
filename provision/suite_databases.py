# Generated from suite.toml by `make generate`: edit suite.toml or the template
# templates/provision/suite_databases.py.j2, not this file.
"""The suite's databases and the server holding each, from suite.toml: the provisioning step's
list at run time (images carry this module, never suite.toml)."""

from __future__ import annotations

# (database, server): server "postgres" (compose pgdb) or "timescaledb".
SUITE_DATABASES: tuple[tuple[str, str], ...] = (
    ("appuser", "postgres"),
    ("promotion", "postgres"),
    ("audit", "timescaledb"),
    ("customer", "postgres"),
    ("product", "postgres"),
)
