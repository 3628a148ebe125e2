"""Generates the Python API package `clipmesh_api` from `protos/`, or checks it for drift.

protoc names Python modules after proto paths (`clipmesh.encoder.v1.encoder_pb2`), which would
collide with the services' own `clipmesh` package. So the code is generated into a scratch
directory, the `clipmesh/` tree is moved to `clients/clipmesh_api/`, and the generated imports
(`from clipmesh.<area>.v1 import …`, the only form protoc emits) are rewritten to
`from clipmesh_api.<area>.v1 import …`. Every service and the SDK import it from there.

Usage:
    python tools/generate_protos.py            # regenerate clients/clipmesh_api
    python tools/generate_protos.py --check    # exit 1 if the committed code differs
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
TARGET = ROOT / "clients" / "clipmesh_api"
GENERATED_IMPORT = re.compile(r"^from clipmesh\.", re.MULTILINE)
PACKAGE_DOC = (
    '"""Generated gRPC stubs and messages for clipmesh. Do not edit: run `make generate`."""\n'
)


def generate_into(out_dir: Path) -> None:
    """Generates the package into `out_dir` (which must not exist yet)."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as scratch:
        protoc = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={PROTO_ROOT}"]
        subprocess.run(
            [
                *protoc,
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                *protos,
            ],
            check=True,
            cwd=PROTO_ROOT,
        )
        shutil.copytree(Path(scratch) / "clipmesh", out_dir)
    for module in [*out_dir.rglob("*.py"), *out_dir.rglob("*.pyi")]:
        module.write_text(GENERATED_IMPORT.sub("from clipmesh_api.", module.read_text()))
    for package in [out_dir, *(d for d in out_dir.rglob("*") if d.is_dir())]:
        (package / "__init__.py").touch()
    (out_dir / "__init__.py").write_text(PACKAGE_DOC)
    (out_dir / "py.typed").write_text("")


def differences(expected: Path, actual: Path) -> list[str]:
    """Lists files that differ between two generated trees, relative to the trees' roots."""
    found: list[str] = []
    comparison = filecmp.dircmp(expected, actual, ignore=["__pycache__"])
    stack = [(comparison, Path("."))]
    while stack:
        cmp, rel = stack.pop()
        found += [f"only in protos output: {rel / n}" for n in cmp.left_only]
        found += [f"not generated from protos: {rel / n}" for n in cmp.right_only]
        for name in cmp.common_files:
            if (Path(cmp.left) / name).read_bytes() != (Path(cmp.right) / name).read_bytes():
                found.append(f"differs: {rel / name}")
        stack += [(sub, rel / name) for name, sub in cmp.subdirs.items()]
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code drifted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "clipmesh_api"
        generate_into(fresh)
        if args.check:
            drift = (
                differences(fresh, TARGET) if TARGET.exists() else ["clients/clipmesh_api missing"]
            )
            if drift:
                print("Generated code is out of date; run `make generate`:", *drift, sep="\n  ")
                return 1
            print("Generated code matches protos/.")
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(fresh, TARGET)
        print(f"Generated {TARGET.relative_to(ROOT)} from {PROTO_ROOT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
