"""Regenerates the committed protobuf/gRPC Python code from each service's .proto."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("user", "promotion", "audit")


def proto_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every service .proto, relative to the repository root."""
    return sorted(
        p.relative_to(root) for svc in SERVICES for p in (root / svc / "proto").glob("*.proto")
    )


def generate(out_dir: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto under out_dir."""
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
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")
        stem = proto.with_suffix("")
        written += [
            out_dir / f"{stem}_pb2.py",
            out_dir / f"{stem}_pb2.pyi",
            out_dir / f"{stem}_pb2_grpc.py",
        ]
    return written


if __name__ == "__main__":
    for path in generate(REPO_ROOT):
        print(path.relative_to(REPO_ROOT))
    sys.exit(0)
