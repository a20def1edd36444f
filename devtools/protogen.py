"""Regenerates the committed protobuf/gRPC Python code from each service's .proto: the
messages (_pb2), the grpc.aio stubs (_pb2_grpc) and the Connect services the gateway serves
(_connect, protoc-gen-connectrpc on the same _pb2 classes)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

from devtools.paths import REPO_ROOT
from devtools.suite import load_suite

# protoc-gen-connectrpc (pinned in pyproject) installs beside this interpreter.
CONNECT_PLUGIN = "protoc-gen-connectrpc"
# Reuse the google.protobuf _pb2 classes (not protobuf-py's); the gateway is asyncio only.
CONNECT_OPTIONS = "protobuf=google,io=async"


def proto_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every service .proto (the services of suite.toml), relative to the repository root."""
    return sorted(
        p.relative_to(root)
        for svc in load_suite().names
        for p in (root / svc / "proto").glob("*.proto")
    )


def connect_plugin() -> str:
    """The path of protoc-gen-connectrpc."""
    beside = Path(sys.executable).parent / CONNECT_PLUGIN
    found = str(beside) if beside.exists() else shutil.which(CONNECT_PLUGIN)
    if not found:
        raise RuntimeError(f"{CONNECT_PLUGIN} is not installed (pip install -e '.[dev]')")
    return found


def generate(out_dir: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Writes *_pb2.py, *_pb2.pyi, *_pb2_grpc.py and *_connect.py for every proto under
    out_dir."""
    include = Path(protoc.__file__).resolve().parent / "_proto"
    written: list[Path] = []
    for proto in proto_files(root):
        args = [
            "protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--plugin=protoc-gen-connectrpc={connect_plugin()}",
            f"--connectrpc_out={out_dir}",
            f"--connectrpc_opt={CONNECT_OPTIONS}",
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")
        stem = proto.with_suffix("")
        written += [
            out_dir / f"{stem}_pb2.py",
            out_dir / f"{stem}_pb2.pyi",
            out_dir / f"{stem}_pb2_grpc.py",
            out_dir / f"{stem}_connect.py",
        ]
    return written


if __name__ == "__main__":
    for path in generate(REPO_ROOT):
        print(path.relative_to(REPO_ROOT))
    sys.exit(0)
