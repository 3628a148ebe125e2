"""Writes docs/errors.md, the list of every error reason each service can answer, from the code.

A reason is the stable `ErrorInfo.reason` a caller branches on. Hand-kept lists drift from the
code, so this one is read out of it: every call that passes a literal `reason` to an error (a
`ServiceError` subclass, or a helper or class with a `reason` parameter), every
`default_reason`, module constants passed as a reason, and literals assigned to a local
`reason` in a function that builds an error. The status code comes from the
error class called (or the one a helper builds). Reasons made at run time (`f"{service}_…"`)
cannot be read statically; the page names their pattern in its text.

Usage:
    python tools/error_reasons.py            # rewrite docs/errors.md
    python tools/error_reasons.py --check    # exit 1 if docs/errors.md is out of date
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "services" / "clipmesh"
TARGET = ROOT / "docs" / "errors.md"
REASON = re.compile(r"[A-Z][A-Z0-9_]{2,}")

# Each status code's error class (services/clipmesh/runtime/errors.py).
CODES = {
    "ServiceError": "INTERNAL",
    "InvalidArgument": "INVALID_ARGUMENT",
    "NotFound": "NOT_FOUND",
    "AlreadyExists": "ALREADY_EXISTS",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "PermissionDenied": "PERMISSION_DENIED",
    "Unauthenticated": "UNAUTHENTICATED",
    "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "Unavailable": "UNAVAILABLE",
    "DeadlineExceeded": "DEADLINE_EXCEEDED",
    "Aborted": "ABORTED",
    "Unimplemented": "UNIMPLEMENTED",
}

# (package, heading, who answers with these reasons), in the page's order.
SECTIONS = [
    ("runtime", "Every service", "any RPC of any service: parsing, auth, policy, admission"),
    ("encoder", "EncoderService", "domain `encoder.clipmesh`"),
    ("index", "IndexService", "domain `index.clipmesh`"),
    (
        "generator",
        "GeneratorService",
        "domain `generator.clipmesh`; the orchestrator's public GeneratorService relays them",
    ),
    (
        "orchestrator",
        "SearchService, IngestService, AccountService",
        "domain `orchestrator.clipmesh`",
    ),
    (
        "media",
        "Media intake",
        "IngestVideos (per file, in the failed progress event) and previs (shot videos)",
    ),
    ("previs", "PrevisService", "domain `previs.clipmesh`"),
    (
        "bulk",
        "clipmesh bulk-ingest",
        "not a gRPC service: the per-file outcomes of its JSON-lines report",
    ),
]


@dataclass(frozen=True)
class Raised:
    """One reason raised somewhere: its status code (or "" when not a status) and module."""

    reason: str
    code: str
    module: str


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _error_classes(trees: dict[str, ast.Module]) -> dict[str, str]:
    """Every ServiceError subclass in the package (by name) and its status code."""
    codes = dict(CODES)
    changed = True
    while changed:  # subclasses of subclasses, in any order
        changed = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in codes:
                    for base in node.bases:
                        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                        if name in codes:
                            codes[node.name] = codes[name]
                            changed = True
    return codes


def _reason_positions(trees: dict[str, ast.Module]) -> dict[str, int]:
    """Functions and classes with a `reason` parameter, and its position (self not counted)."""
    positions = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                params = [a.arg for a in node.args.args if a.arg not in ("self", "cls")]
                if "reason" in params:
                    name = node.name
                    positions[name] = params.index("reason")
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        params = [a.arg for a in item.args.args if a.arg != "self"]
                        if "reason" in params:
                            positions[node.name] = params.index("reason")
    return positions


def _helper_codes(tree: ast.Module, codes: dict[str, str]) -> dict[str, str]:
    """This module's functions that build an error, and the code of the error they build."""
    helpers = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and _callee(call) in codes:
                    helpers[node.name] = codes[_callee(call)]
                    break
    return helpers


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "TEXT"` assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _literal(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.Name):
        value = constants.get(node.id, "")
    else:
        return None
    return value if REASON.fullmatch(value) else None


def _default_reasons(cls: ast.ClassDef, constants: dict[str, str]) -> list[str]:
    """`default_reason = "X"` in an error class."""
    return [
        reason
        for item in cls.body
        if isinstance(item, ast.Assign)
        and any(getattr(t, "id", "") == "default_reason" for t in item.targets)
        and (reason := _literal(item.value, constants))
    ]


def _function_reasons(function: ast.FunctionDef, constants: dict[str, str]) -> list[str]:
    """A helper's default `reason` (`def bad(message, reason="X")`), and literals assigned to
    a local `reason` (chosen in a branch, then passed as `reason=reason`)."""
    arguments = function.args
    positional = [a.arg for a in arguments.args]
    defaults = dict(
        zip(
            positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True
        )
    )
    defaults |= {
        a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d
    }
    reasons = [reason] if (reason := _literal(defaults.get("reason"), constants)) else []
    for assign in ast.walk(function):
        if (
            isinstance(assign, ast.Assign)
            and any(getattr(t, "id", "") == "reason" for t in assign.targets)
            and (reason := _literal(assign.value, constants))
        ):
            reasons.append(reason)
    return reasons


def _call_reasons(call: ast.Call, positions: dict[str, int], constants: dict[str, str]):
    """The literal reasons a call passes, by keyword or by a `reason` parameter's position."""
    candidates = [k.value for k in call.keywords if k.arg == "reason"]
    position = positions.get(_callee(call))
    if position is not None and len(call.args) > position:
        candidates.append(call.args[position])
    return [reason for c in candidates if (reason := _literal(c, constants))]


def collect() -> dict[str, set[Raised]]:
    """Every literal reason in the package, by its top-level subpackage."""
    trees = {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    codes = _error_classes(trees)
    positions = _reason_positions(trees)
    found: dict[str, set[Raised]] = defaultdict(set)
    for module, tree in trees.items():
        package = module.split("/")[0]
        helpers = {**codes, **_helper_codes(tree, codes)}
        constants = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in codes:
                for reason in _default_reasons(node, constants):
                    found[package].add(Raised(reason, codes[node.name], module))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                calls = [c for c in ast.walk(node) if isinstance(c, ast.Call)]
                code = next((helpers[_callee(c)] for c in calls if _callee(c) in helpers), "")
                for reason in _function_reasons(node, constants):
                    found[package].add(Raised(reason, code, module))
            elif isinstance(node, ast.Call):
                for reason in _call_reasons(node, positions, constants):
                    found[package].add(Raised(reason, helpers.get(_callee(node), ""), module))
    return found


def render(found: dict[str, set[Raised]]) -> str:
    lines = [
        "# Error reasons",
        "",
        "<!-- Generated by tools/error_reasons.py from the code: do not edit; run"
        " `make generate`. -->",
        "",
        "Every failed call answers with a canonical gRPC status code and, in the",
        "`grpc-status-details-bin` trailer, a `google.rpc.Status` whose details carry:",
        "",
        "- an `ErrorInfo` always: `reason` (below: stable, UPPER_SNAKE_CASE, the thing to branch",
        "  on), `domain` (`<service>.clipmesh`, the service that decided) and `metadata`: `field`",
        "  names the offending request field for INVALID_ARGUMENT (`parts[2].image`,",
        "  `spec.duration_s`), other keys add facts (`service`, `video_id`, `permission`, …);",
        "- a `RetryInfo` (`retry_delay`) when a retry can succeed after a known delay",
        "  (RESOURCE_EXHAUSTED: admission, a full encoder or generator queue, a quota);",
        "- a `QuotaFailure` (`violations[].subject`, `.description`) when a caller's quota",
        "  refused the call.",
        "",
        "The protos to decode them ship in `protos/google/rpc/` (copied unchanged from",
        "googleapis-common-protos), so a client built from `protos/` alone can read them:",
        "`tests/integration/test_node_client.py` does so from Node.js. The Python SDK raises",
        "them as typed exceptions (`clipmesh_client.errors`). Messages are for people: they may",
        "change; reasons do not.",
        "",
        "A request larger than the service's message limit (64 MiB by default) is refused by",
        "gRPC itself, before any service code: RESOURCE_EXHAUSTED with no details.",
        "",
        "Reasons made at run time are not listed in the tables: a dependency that is down or",
        "failing is `<SERVICE>_UNAVAILABLE` (UNAVAILABLE) or `<SERVICE>_FAILED` (INTERNAL),",
        "for example `ENCODER_UNAVAILABLE`, and a refusal relayed from a dependency keeps the",
        "dependency's reason (the orchestrator answers a corrupt query image with the encoder's",
        "`CORRUPT_IMAGE`, naming the caller's field).",
    ]
    for package, heading, who in SECTIONS:
        raised = found.get(package, set())
        by_reason: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
        for item in raised:
            if item.code:
                by_reason[item.reason][0].add(item.code)
            by_reason[item.reason][1].add(item.module)
        lines += ["", f"## {heading}", "", f"{who[0].upper()}{who[1:]}.", ""]
        lines += ["| Reason | Status code | Raised in |", "| --- | --- | --- |"]
        for reason in sorted(by_reason):
            status, modules = by_reason[reason]
            where = ", ".join(f"`{m}`" for m in sorted(modules))
            code = ", ".join(sorted(status)) or "— (a failure reason in a result)"
            lines.append(f"| `{reason}` | {code} | {where} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/errors.md drifted")
    args = parser.parse_args()
    page = render(collect())
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != page:
            print("docs/errors.md is out of date with the code; run `make generate`")
            return 1
        print("docs/errors.md matches the code.")
        return 0
    TARGET.write_text(page)
    print(f"Wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
