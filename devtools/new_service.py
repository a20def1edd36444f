"""`make new-service NAME=<name>`: a new service in the shape of the others, added to the suite.

Renders templates/service/ (the service folder, its migrations, its unit and integration
tests) for the name, adds the service to suite.toml, regenerates the protobuf code and every
generated wiring file (`make generate`), and says what to write next. A name that is taken or
is not a valid service name is refused with one line, and nothing is changed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from devtools.paths import REPO_ROOT
from devtools.suite import Suite, SuiteError, parse_suite

TEMPLATES = Path("templates") / "service"
FIRST_NEW_PORT = 50061
# Folders a service may not take though none exists yet (the web UI and its gateway).
PLANNED_FOLDERS = frozenset({"gateway", "web"})


class Refused(Exception):
    """The service cannot be made; the message says why."""


@dataclass(frozen=True)
class NewService:
    name: str
    port: int

    @property
    def context(self) -> dict[str, object]:
        entity = self.name.capitalize()
        return {
            "name": self.name,
            "NAME": self.name.upper(),
            "Entity": entity,
            "plural": f"{self.name}s",
            "Plural": f"{entity}s",
            "port": self.port,
        }


def check_name(name: str, suite_text: str, root: Path) -> Suite:
    """The suite with a service called name added; Refused (saying why) when name cannot be one:
    suite.toml's own rules (devtools/suite.py) decide what a service name may be."""
    suite = parse_suite(suite_text)
    if name in suite.names:
        raise Refused(f"a service named {name!r} is already in suite.toml")
    if name in PLANNED_FOLDERS or (root / name).exists():
        raise Refused(f"{name}/ is taken in the repository: choose another name")
    if name in sys.stdlib_module_names:
        raise Refused(f"{name!r} is a module of Python's standard library: choose another name")
    try:
        return parse_suite(suite_text + suite_entry(NewService(name, next_port(suite))))
    except SuiteError as error:
        raise Refused(str(error).partition(": ")[2] or str(error)) from None


def next_port(suite: Suite) -> int:
    """The next free odd port from 50061 (goTemp's ports are odd, one service each)."""
    taken = {service.port for service in suite.services}
    port = FIRST_NEW_PORT
    while port in taken:
        port += 2
    return port


def render(service: NewService, root: Path = REPO_ROOT) -> dict[Path, str]:
    """Every file of the new service, by path relative to root, as the templates make it."""
    folder = root / TEMPLATES
    env = Environment(
        loader=FileSystemLoader(folder),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # the output is code and SQL, not HTML
    )
    files: dict[Path, str] = {}
    for template in sorted(folder.rglob("*.j2")):
        relative = template.relative_to(folder)
        target = Path(str(relative.with_suffix("")).replace("__name__", service.name))
        files[target] = env.get_template(relative.as_posix()).render(service.context)
    return files


def suite_entry(service: NewService) -> str:
    return (
        "\n[[service]]\n"
        f'name = "{service.name}"\n'
        f'grpc_service = "{service.name}.{service.context["Entity"]}Srv"\n'
        f"port = {service.port}\n"
        f'database = "{service.name}"\n'
        'database_server = "postgres"\n'
        'audit_events = "produces"\n'
        'calls = ["user"]\n'
        "issues_tokens = false\n"
        'writers = ["admin"]\n'
        "cli = true\n"
    )


def write(files: dict[Path, str], root: Path) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def tidy(paths: list[Path], root: Path) -> None:
    """Imports sorted for the new name (it sorts elsewhere than the template's), formatted, with
    the repository's settings and its packages first-party even when root is a scratch folder."""
    python = [str(p) for p in paths if p.suffix == ".py"]
    packages = sorted(
        {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")}
        | {p.parts[0] for p in paths if len(p.parts) > 1}
    )
    config = [
        "--config",
        str(REPO_ROOT / "pyproject.toml"),
        "--config",
        f"lint.isort.known-first-party = {packages!r}".replace("'", '"'),
    ]
    ruff = [sys.executable, "-m", "ruff"]
    fix_imports = [*ruff, "check", *config, "--quiet", "--select", "I", "--fix", *python]
    subprocess.run(fix_imports, cwd=root, check=True)
    subprocess.run([*ruff, "format", *config, "--quiet", *python], cwd=root, check=True)


def create(name: str, root: Path = REPO_ROOT) -> NewService:
    suite_file = root / "suite.toml"
    suite_text = suite_file.read_text()
    suite = check_name(name, suite_text, root)
    service = NewService(name, suite.service(name).port)
    files = render(service, root)
    clashes = [str(path) for path in files if (root / path).exists()]
    if clashes:
        raise Refused(f"these files exist already: {', '.join(map(str, clashes))}")
    write(files, root)
    suite_file.write_text(suite_text + suite_entry(service))
    tidy(list(files), root)
    # generate twice: the development secrets follow the generated databases list, and the
    # NATS public keys and certificates they add are read by generated files
    for command in (
        ["devtools.protogen"],
        ["devtools.webgen"],
        ["devtools.generate"],
        ["devtools.dev_secrets", "--missing"],
        ["devtools.certs", "--missing"],
        ["devtools.generate"],
    ):
        subprocess.run([sys.executable, "-m", *command], cwd=root, check=True)
    return service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make new-service NAME=<name>", description=__doc__)
    parser.add_argument("name")
    args = parser.parse_args(argv)
    try:
        service = create(args.name)
    except Refused as exc:
        raise SystemExit(f"new-service: {exc}; nothing was changed") from None
    name = service.name
    print(
        f"made the {name} service ({name}.{service.context['Entity']}Srv on port {service.port}):\n"
        f"  {name}/            proto, server (servicer, use cases, rules, repository, unit of"
        " work, bootstrap, settings), client (CLI scenario), README\n"
        f"  provision/versions/{name}/   baseline migration and runtime grants\n"
        f"  tests/unit/test_{name}_rules.py, tests/integration/test_{name}_rpcs.py\n"
        "  suite.toml entry, and every generated wiring file (make generate)\n"
        "next: write your fields in the proto (make proto), your rules in server/validation.py,"
        " your columns in a new migration; make test"
    )


if __name__ == "__main__":
    main()
