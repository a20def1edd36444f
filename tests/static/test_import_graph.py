"""Every import points down: shared code (global_utils, global_errors) imports no service, and no
module of the project imports itself round a circle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.suite import load_suite

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PACKAGES = ("global_utils", "global_errors")
SERVICES = frozenset(load_suite().names)


PROJECT_PACKAGES = (*SHARED_PACKAGES, *sorted(SERVICES), "devtools", "provision")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only, never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imported_modules(path: Path, package: str, *, runtime_only: bool = False) -> list[str]:
    """The absolute names of every module path imports, relative imports resolved."""
    names: list[str] = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in _runtime_nodes(tree) if runtime_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
            else:
                parts = []
            module = ".".join([*parts, *([node.module] if node.module else [])])
            names.append(module)
            # `from .. import user` names a module in the alias, not in node.module
            names += [f"{module}.{alias.name}".lstrip(".") for alias in node.names]
    return names


def shared_modules() -> list[tuple[Path, str]]:
    """Every module of the shared packages, with the package its relative imports start from."""
    return [
        (path, ".".join(path.relative_to(REPO_ROOT).parts[:-1]))
        for top in SHARED_PACKAGES
        for path in sorted((REPO_ROOT / top).rglob("*.py"))
    ]


def test_shared_packages_have_modules() -> None:
    assert len(shared_modules()) > len(SHARED_PACKAGES)


@pytest.mark.parametrize(
    ("path", "package"),
    shared_modules(),
    ids=[str(p.relative_to(REPO_ROOT)) for p, _ in shared_modules()],
)
def test_shared_module_imports_no_service(path: Path, package: str) -> None:
    services = sorted(
        name for name in imported_modules(path, package) if name.split(".")[0] in SERVICES
    )
    assert services == [], f"{path.relative_to(REPO_ROOT)} imports {services}"


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import user.proto.user_pb2\n"
        "from promotion.proto import promotion_pb2\n"
        "from ... import audit\n"
        "def f():\n    import user\n"
    )
    found = {name.split(".")[0] for name in imported_modules(module, "global_utils.sub")}
    assert {"user", "promotion", "audit"} <= found


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages by dotted name (a package by its __init__)."""
    modules: dict[str, Path] = {}
    for top in PROJECT_PACKAGES:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports when it runs (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in imported_modules(path, package, runtime_only=True):
            # `from a.b import c` names a.b.c when c is a module, else a.b
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as [a, b, ..., a], or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str]:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        on_path.discard(path.pop())
        done.add(node)
        return []

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return []


def test_no_import_circle_in_the_project() -> None:
    graph = import_graph(project_modules())
    assert len(graph) > 100
    assert find_cycle(graph) == []


def test_the_circle_check_finds_a_circle_and_ignores_type_only_imports(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from global_utils.data import database\n"
        "def f():\n    from global_utils.messaging import outbox\n"
    )
    names = imported_modules(module, "x", runtime_only=True)
    assert "global_utils.messaging.outbox" in names
    assert "global_utils.data.database" not in names


# Test and `make certs` dependencies only: tokens are signed and verified with libsodium
# (global_utils/identity/jws.py), which the NATS client loads anyway; either of these would
# add about 9 MB to every process.
NOT_IN_SERVICES = ("jwt", "cryptography")


def test_no_service_nor_the_gateway_loads_a_test_only_library() -> None:
    modules = [f"{name}.server.bootstrap" for name in sorted(SERVICES)] + ["gateway.__main__"]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "nacl" in loaded  # the check sees what a service loads
    assert loaded.isdisjoint(NOT_IN_SERVICES), loaded & set(NOT_IN_SERVICES)
