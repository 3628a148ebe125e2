"""Generates the Python API package `clipmesh_api` from `protos/`, or checks it for drift.

protoc names Python modules after proto paths (`clipmesh.encoder.v1.encoder_pb2`), which would
collide with the services' own `clipmesh` package. So the code is generated into a scratch
directory, the `clipmesh/` tree is moved to `clients/clipmesh_api/`, and the generated imports
(`from clipmesh.<area>.v1 import …`, the only form protoc emits) are rewritten to
`from clipmesh_api.<area>.v1 import …`. Every service and the SDK import it from there.

The error contract's protos (`google/rpc/status.proto`, `error_details.proto`, `code.proto`)
are copied unchanged from the installed googleapis-common-protos (pinned in the `dev` extra)
into `protos/google/rpc/`, so `buf` and clients in other languages that load only `protos/`
can decode the `google.rpc.Status` in `grpc-status-details-bin`. Python code is generated for
clipmesh's own protos only: Python callers import `google.rpc` from that package.

Usage:
    python tools/generate_protos.py            # regenerate clients/clipmesh_api, copy google/rpc
    python tools/generate_protos.py --check    # exit 1 if either differs from what is committed
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
GOOGLE_RPC_TARGET = PROTO_ROOT / "google" / "rpc"
GOOGLE_RPC_PROTOS = ("code.proto", "error_details.proto", "status.proto")
PACKAGE_DOC = (
    '"""Generated gRPC stubs and messages for clipmesh. Do not edit: run `make generate`."""\n'
)


def installed_google_rpc() -> Path:
    """The directory of googleapis-common-protos' `google/rpc` protos in this environment."""
    from google.rpc import status_pb2

    return Path(status_pb2.__file__).parent


def google_rpc_drift() -> list[str]:
    """The `protos/google/rpc` files that differ from the installed package's."""
    source = installed_google_rpc()
    return [
        f"differs from googleapis-common-protos: protos/google/rpc/{name}"
        for name in GOOGLE_RPC_PROTOS
        if not (GOOGLE_RPC_TARGET / name).exists()
        or (GOOGLE_RPC_TARGET / name).read_bytes() != (source / name).read_bytes()
    ]


def copy_google_rpc() -> None:
    """Copies the error contract's protos, unchanged, into `protos/google/rpc`."""
    GOOGLE_RPC_TARGET.mkdir(parents=True, exist_ok=True)
    for name in GOOGLE_RPC_PROTOS:
        shutil.copyfile(installed_google_rpc() / name, GOOGLE_RPC_TARGET / name)


def generate_into(out_dir: Path) -> None:
    """Generates the package into `out_dir` (which must not exist yet)."""
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "clipmesh").rglob("*.proto")
    )
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
            drift += google_rpc_drift()
            if drift:
                print("Generated code is out of date; run `make generate`:", *drift, sep="\n  ")
                return 1
            print(
                "Generated code matches protos/, and protos/google/rpc the installed "
                "googleapis-common-protos."
            )
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(fresh, TARGET)
        print(f"Generated {TARGET.relative_to(ROOT)} from {PROTO_ROOT.relative_to(ROOT)}/")
    copy_google_rpc()
    print(f"Copied {', '.join(GOOGLE_RPC_PROTOS)} into {GOOGLE_RPC_TARGET.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
