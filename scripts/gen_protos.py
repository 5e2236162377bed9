"""Regenerate the Python code for every .proto under protos/ into services/.

Run `python scripts/gen_protos.py` after changing a proto; `--check` (used by CI) regenerates
into a scratch copy and fails if the committed code differs. The output lands beside the
package's own code (protos/sensorium/pdf/v1 -> services/sensorium/pdf/v1), so the generated
imports are right as generated.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
SERVICES = ROOT / "services"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    out.mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    for proto in files:
        # Every directory on the way needs an __init__.py to be importable as a package.
        parts = Path(proto).parent.parts
        for depth in range(1, len(parts) + 1):
            (out.joinpath(*parts[:depth]) / "__init__.py").touch(exist_ok=True)


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.name.endswith(SUFFIXES)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    if not args.check:
        generate(SERVICES)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = generated_files(Path(tmp)), generated_files(SERVICES)
        stale = sorted(
            str(p) for p in fresh | committed
            if p not in fresh or p not in committed
            or not filecmp.cmp(Path(tmp) / p, SERVICES / p, shallow=False)
        )
    if stale:
        print("generated code is stale; run `python scripts/gen_protos.py`:", *stale, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
