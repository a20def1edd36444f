"""Every import points down: shared code (global_utils, global_errors) imports no service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PACKAGES = ("global_utils", "global_errors")
SERVICES = frozenset({"user", "promotion", "audit"})


def imported_modules(path: Path, package: str) -> list[str]:
    """The absolute names of every module path imports, relative imports resolved."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
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
    assert SERVICES <= found
