"""docs/configuration.md is written from the settings classes and cannot drift from them: the
committed page is what make generate writes, it names every variable each process reads, and a
variable without a description stops the generator."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from devtools import configdoc, generate
from devtools.paths import REPO_ROOT
from devtools.suite import load_suite
from global_utils.config.groups import GROUP_CONFIG, GroupedSettings


def committed() -> str:
    return (REPO_ROOT / configdoc.PAGE).read_text()


def test_the_committed_page_is_what_make_generate_writes() -> None:
    assert generate.rendered()[configdoc.PAGE] == committed(), (
        "docs/configuration.md differs from the settings classes: run make generate"
    )


def test_the_page_names_every_variable_of_every_process_with_a_description() -> None:
    page = committed()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| [^|]+ \| (.+) \|$", page, re.MULTILINE))
    programs = configdoc.processes(load_suite())
    assert {"user service", "promotion service", "audit service", "CLIs", "provisioning"} <= {
        program.title for program in programs
    }
    for program in programs:
        assert f"## {program.title}\n" in page
        for group in program.groups.values():
            for name in group.model_fields:
                assert name.upper() in rows, f"{program.title}: {name.upper()} is not on the page"
                assert rows[name.upper()].strip(), name
    for process in ("user", "promotion", "audit"):
        settings = configdoc.service_settings(process)
        assert settings is not None and settings.variables() <= {v.lower() for v in rows}


class Undescribed(BaseSettings):
    model_config = GROUP_CONFIG

    described: int = 1
    """Has a description."""
    bare: int = 2


class WithUndescribed(GroupedSettings):
    odd: Undescribed


def test_a_variable_without_a_description_stops_the_generator() -> None:
    with pytest.raises(ValueError, match=r"Undescribed\.bare has no description"):
        configdoc.table(Undescribed)
    program = configdoc.Process("odd", "python -m odd", WithUndescribed)
    assert list(program.groups) == ["odd"]


def test_defaults_are_spelled_as_the_environment_would() -> None:
    fields = {
        name: configdoc.default_text(field)
        for group in configdoc.Process("user", "", _user_settings()).groups.values()
        for name, field in group.model_fields.items()
    }
    assert fields["postgres_connect"] == "**required**"
    assert fields["tls_client_auth"] == "`false`"
    assert fields["tls_ca_file"] == "unset"
    assert fields["micro_registry_address"] == "empty"
    assert fields["shutdown_grace_seconds"] == "`5`"
    assert fields["app_language"] == "`en`"
    assert fields["bcrypt_workers"] == "computed at start"  # depends on the machine's cores


def _user_settings() -> type[GroupedSettings]:
    settings = configdoc.service_settings("user")
    assert settings is not None
    return settings
