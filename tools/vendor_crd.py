"""Writes the schema of a CustomResourceDefinition into tools/crds/, for tools/validate_crds.mjs.

Most custom resources clipmesh ships are validated with schemas npm packages provide
(@kubernetes-models); for the rest the CRD's own openAPIV3Schema is kept here, one JSON file
per group, version and kind, without its descriptions (they are most of the file and the
validator never reads them). Run it again on the new CRD when moving to a new release:

    python tools/vendor_crd.py postgresql.cnpg.io_clusters.yaml \
        --source "CloudNativePG 1.30.0 (config/crd/bases/postgresql.cnpg.io_clusters.yaml)"
    python tools/vendor_crd.py ray.io_rayjobs.yaml --version v1 \
        --source "KubeRay 1.7.0 (ray-operator/config/crd/bases/ray.io_rayjobs.yaml)"

`--version` keeps only the versions named (KubeRay still serves its deprecated v1alpha1, which
clipmesh never uses); without it every served version is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

CRDS = Path(__file__).resolve().parent / "crds"


def without_descriptions(schema: Any) -> Any:
    """`schema` with every `description` of a property's schema removed (a property *named*
    description is kept)."""
    if isinstance(schema, list):
        return [without_descriptions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            continue
        if key == "properties":
            kept[key] = {name: without_descriptions(prop) for name, prop in value.items()}
        else:
            kept[key] = without_descriptions(value)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd", type=Path, help="the CustomResourceDefinition (YAML)")
    parser.add_argument("--source", required=True, help="where it comes from, e.g. a release")
    parser.add_argument(
        "--version",
        action="append",
        dest="versions",
        metavar="VERSION",
        help="a served version to write (repeatable); default: every served version",
    )
    args = parser.parse_args()
    crd = yaml.safe_load(args.crd.read_text(encoding="utf-8"))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    served = [version for version in crd["spec"]["versions"] if version.get("served")]
    unknown = set(args.versions or ()) - {version["name"] for version in served}
    if unknown:
        parser.error(f"{kind} serves no version {sorted(unknown)}")
    for version in served:
        if args.versions and version["name"] not in args.versions:
            continue
        schema = without_descriptions(version["schema"]["openAPIV3Schema"])
        origin = f"{group}/{version['name']} {kind} of {args.source}, by tools/vendor_crd.py"
        document = {"$comment": origin, **schema}
        target = CRDS / f"{group}_{version['name']}_{kind}.json"
        target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(target.relative_to(CRDS.parent.parent))


if __name__ == "__main__":
    main()
