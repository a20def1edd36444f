"""Committed generated files (protobuf code, Dockerfiles) are what `make proto` and
`make dockerfiles` would write now."""

from __future__ import annotations

from pathlib import Path

from devtools import dockerfiles
from devtools.protogen import REPO_ROOT, generate, proto_files


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    assert proto_files(), "no .proto files found"
    for generated in generate(tmp_path):
        relative = generated.relative_to(tmp_path)
        committed = REPO_ROOT / relative
        assert committed.exists(), f"{relative} is not committed; run make proto"
        assert committed.read_text() == generated.read_text(), (
            f"{relative} is stale; run make proto"
        )


def test_committed_dockerfiles_are_what_the_template_writes() -> None:
    for relative, text in dockerfiles.rendered().items():
        committed = REPO_ROOT / relative
        assert committed.exists(), f"{relative} is not committed; run make dockerfiles"
        assert committed.read_text() == text, f"{relative} is stale; run make dockerfiles"
