"""Every server entry point (each service of the suite, the gateway) catches stop signals before
it imports anything else: a container's SIGTERM during the imports is otherwise lost to PID 1
(global_utils/runtime/stop_signals.py; tests/e2e/test_user_process.py runs it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devtools.paths import REPO_ROOT
from devtools.suite import load_suite

ENTRY_POINTS = [
    *(Path(name, "server", "__main__.py") for name in load_suite().names),
    Path("gateway", "__main__.py"),
]


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=str)
def test_stop_signals_are_caught_before_any_other_import(path: Path) -> None:
    module = ast.parse((REPO_ROOT / path).read_text())
    imports = [
        (node.module, [alias.name for alias in node.names])
        for node in module.body
        if isinstance(node, ast.ImportFrom)
    ]
    assert not any(isinstance(node, ast.Import) for node in module.body)
    assert [entry for entry in imports if entry[0] != "__future__"] == [
        ("global_utils.runtime.stop_signals", ["catch_stop_signals"])
    ]
    main = next(
        node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "main"
    )
    first = main.body[0]
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
    assert isinstance(first.value.func, ast.Name) and first.value.func.id == "catch_stop_signals"
