"""docs/configuration.md, written from the settings classes (part of `make generate`): for each
process, every environment variable it reads, with its default and its description (the field's
docstring), grouped as its settings class groups them.

`python -m devtools.configdoc` prints the page; `make generate` writes it with the other
generated files, and tests/static/test_generated_files.py fails when the committed page differs.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from devtools.suite import Suite, load_suite
from gateway.settings import GatewaySettings
from global_utils.config.groups import GroupedSettings
from global_utils.grpc.client import ClientSettings
from global_utils.grpc.tls import TlsSettings
from provision.settings import ProvisionSettings
from provision.wait import WaitSettings

PAGE = "docs/configuration.md"


@dataclass(frozen=True)
class Process:
    """A program of the suite and the settings class it reads."""

    title: str
    command: str
    settings: type[GroupedSettings] | type[BaseSettings]

    @property
    def groups(self) -> dict[str, type[BaseSettings]]:
        """Its groups by attribute name; a single BaseSettings is one group, named settings."""
        if issubclass(self.settings, GroupedSettings):
            return self.settings.groups()
        return {"settings": self.settings}

    @property
    def class_path(self) -> str:
        return f"{self.settings.__module__}.{self.settings.__qualname__}"


def service_settings(name: str) -> type[GroupedSettings] | None:
    """A service's settings class, <name>.server.settings.<Name>Settings; None while the
    service's package does not exist yet (a service just added to suite.toml)."""
    module_name = f"{name}.server.settings"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise
    found: type[GroupedSettings] = getattr(module, f"{name.capitalize()}Settings")
    return found


def processes(suite: Suite) -> list[Process]:
    """Every program that reads settings: the services of the suite (those whose package
    exists), then the others."""
    return [
        *(
            Process(f"{service.name} service", f"python -m {service.name}.server", settings)
            for service in suite.services
            for settings in [service_settings(service.name)]
            if settings is not None
        ),
        Process("gateway", "python -m gateway", GatewaySettings),
        Process("CLIs", "python -m <service>.client", ClientSettings),
        Process("provisioning", "python -m provision", ProvisionSettings),
        Process(
            "database wait (Kubernetes init container)",
            "python -m provision.wait DATABASE",
            WaitSettings,
        ),
        Process("health probe", "python -m global_utils.grpc.healthprobe", TlsSettings),
    ]


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def cell(text: str) -> str:
    """text as one table cell: one line, its pipes escaped."""
    return one_line(text).replace("|", "\\|")


def choices(annotation: Any) -> list[str]:
    """The values a Literal or an Enum field takes ([] for other types)."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return []


def default_text(field: FieldInfo) -> str:
    """The default as the environment would spell it."""
    if field.default_factory is not None:
        return "computed at start"
    value = field.default
    if value is PydanticUndefined:
        return "**required**"
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def description(group: type[BaseSettings], name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"{group.__qualname__}.{name} has no description (a field docstring)")
    text = one_line(field.description)
    values = choices(field.annotation)
    if values:
        spelled = ", ".join(f"`{value}`" if value else "empty" for value in values)
        text = f"{text} One of: {spelled}."
    return text


def table(group: type[BaseSettings]) -> list[str]:
    lines = ["| variable | default | description |", "|---|---|---|"]
    for name, field in group.model_fields.items():
        lines.append(
            f"| `{name.upper()}` | {cell(default_text(field))}"
            f" | {cell(description(group, name, field))} |"
        )
    return lines


def anchor(group: type[BaseSettings]) -> str:
    """The link target of a shared group's heading (its class name, lower-cased)."""
    return group.__qualname__.lower()


def group_heading(attribute: str, group: type[BaseSettings], shared: bool) -> list[str]:
    """A shared group's heading is its class name (the target of the processes' links); a
    process's own group's is its attribute name."""
    summary = one_line((inspect.getdoc(group) or "").split("\n\n")[0])
    title = group.__qualname__ if shared else f"`{attribute}`"
    return [
        f"### {title}",
        "",
        f"`settings.{attribute}`, {group.__module__}.{group.__qualname__}: {summary}",
        "",
    ]


def shared_groups(programs: Iterable[Process]) -> dict[type[BaseSettings], str]:
    """Groups more than one program reads, with the attribute name they first appear under."""
    seen: dict[type[BaseSettings], list[str]] = {}
    for program in programs:
        for attribute, group in program.groups.items():
            seen.setdefault(group, []).append(attribute)
    return {group: names[0] for group, names in seen.items() if len(names) > 1}


def render(suite: Suite | None = None, generated: str = "") -> str:
    """The page; generated: the sentence saying it is generated (make generate's header)."""
    programs = processes(suite or load_suite())
    shared = shared_groups(programs)
    lines = [
        *([f"<!-- {generated} -->", ""] if generated else []),
        "# Configuration",
        "",
        "Every process reads environment variables only, validated once at start: a bad or",
        "missing value stops it with one line naming the variable",
        "(`configuration error: JWT_PRIVATE_KEY: ...`). Names are matched whatever their case.",
        "A secret's variable has a `_FILE` form naming a file that holds it (compose and",
        "Kubernetes mount secrets as files).",
        "",
        "Each process's settings are one class made of named groups (`settings.db`,",
        "`settings.tls`, ...; global_utils/config/groups.py); each variable is read by one",
        "group. This page is written from those classes, the descriptions being the fields'",
        "docstrings: change them there and run `make generate`.",
        "",
    ]
    for program in programs:
        lines += [
            f"## {program.title}",
            "",
            f"`{program.command}` reads `{program.class_path}`:",
            "",
        ]
        own: list[tuple[str, type[BaseSettings]]] = []
        for attribute, group in program.groups.items():
            if group in shared:
                lines.append(f"- `{attribute}`: [{group.__qualname__}](#{anchor(group)})")
            else:
                lines.append(f"- `{attribute}`: below")
                own.append((attribute, group))
        lines.append("")
        for attribute, group in own:
            lines += [*group_heading(attribute, group, shared=False), *table(group), ""]
    lines += ["## Groups several processes read", ""]
    for group, attribute in shared.items():
        lines += [*group_heading(attribute, group, shared=True), *table(group), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
