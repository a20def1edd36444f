"""Committed generated protobuf code is what `make proto` would write now (the files generated
from suite.toml: tests/static/test_generated_files.py)."""

from __future__ import annotations

from pathlib import Path

from devtools import webgen
from devtools.protogen import REPO_ROOT, generate, proto_files


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    assert proto_files(), "no .proto files found"
    written = generate(tmp_path)
    # every proto's Connect services (the gateway's) are among them
    assert {p.name for p in written} >= {f"{p.stem}_connect.py" for p in proto_files()}
    for generated in written:
        relative = generated.relative_to(tmp_path)
        committed = REPO_ROOT / relative
        assert committed.exists(), f"{relative} is not committed; run make proto"
        assert committed.read_text() == generated.read_text(), (
            f"{relative} is stale; run make proto"
        )


def test_committed_web_clients_are_fresh(tmp_path: Path) -> None:
    written = webgen.generate(tmp_path)
    committed_dir = REPO_ROOT / webgen.OUT
    # one TypeScript client per service proto, and google.rpc's error details
    assert {p.with_name(p.name.replace("_pb.ts", ".proto")) for p in written} >= set(proto_files())
    assert webgen.generated_files(committed_dir) == written, "stale files; run make proto"
    for relative in written:
        committed = committed_dir / relative
        assert committed.read_text() == (tmp_path / relative).read_text(), (
            f"{webgen.OUT / relative} is stale; run make proto"
        )
