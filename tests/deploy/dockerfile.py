"""deploy/docker/Dockerfile parsed into stages, for the tests of the images.

`_stages()` is every stage in order, each knowing the stage it is built on, so a check can read
an instruction across a target's whole chain (`Stage.all`); `_runtime_stages()` is what ships,
`_builder_of(target)` the stage a target copies its venv from. The helpers that take
instructions apart (COPY flags and paths, shell-form RUN, apt installs) are here too.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

TARGETS = ("cpu", "cuda")


# --------------------------------------------------------------------------------------------
# Parsing the Dockerfile into stages.
# --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # the external image (ARGs substituted) or the name of an earlier stage
    parent: Stage | None
    instructions: list[dict] = field(default_factory=list)

    def chain(self) -> list[Stage]:
        """This stage and the stages it is built on, the oldest first."""
        stages: list[Stage] = []
        stage: Stage | None = self
        while stage is not None:
            stages.insert(0, stage)
            stage = stage.parent
        return stages

    def own(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def all(self, instruction: str) -> list[str]:
        """`instruction`'s values in this stage and the stages it is built on."""
        return [value for stage in self.chain() for value in stage.own(instruction)]

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for value in self.all("ENV"):
            merged.update(_parse_env(value))
        return merged

    def external_base(self) -> str:
        return self.chain()[0].base


def _parse_env(value: str) -> dict[str, str]:
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
        return {tokens[0]: value.split(None, 1)[1] if len(tokens) > 1 else ""}
    return dict(token.split("=", 1) for token in tokens)


def _substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text
    )


@cache
def _parsed() -> tuple[dict[str, str], tuple[Stage, ...]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}
    for instruction in parser.structure:
        kind = instruction["instruction"]
        if kind == "FROM":
            tokens = [t for t in instruction["value"].split() if not t.startswith("--")]
            image = _substitute(tokens[0], global_args)
            name = tokens[2] if len(tokens) >= 3 and tokens[1].lower() == "as" else None
            stage = Stage(len(stages), name, image, by_name.get(image))
            stages.append(stage)
            if name:
                by_name[name] = stage
        elif not stages:
            if kind == "ARG":
                key, _, default = instruction["value"].partition("=")
                global_args[key.strip()] = default.strip().strip("\"'")
        else:
            stages[-1].instructions.append(instruction)
    return global_args, tuple(stages)


def _stages() -> tuple[Stage, ...]:
    return _parsed()[1]


def _stage(name: str) -> Stage:
    matches = [s for s in _stages() if s.name == name]
    assert matches, f"the Dockerfile has no stage named {name!r}"
    return matches[0]


def _runtime_stages() -> list[Stage]:
    """Every stage that ends up in a shipped image: the targets and what they are built on."""
    seen: dict[int, Stage] = {}
    for target in TARGETS:
        for stage in _stage(target).chain():
            seen[stage.index] = stage
    return list(seen.values())


def _builder_of(target: str) -> Stage:
    """The stage the target copies its venv from."""
    sources = [_copy_flags(v).get("from") for v in _stage(target).all("COPY")]
    builders = [s for s in sources if s]
    assert len(builders) == 1, f"{target} should copy from exactly one builder, got {builders}"
    return _stage(builders[0])


def _copy_flags(value: str) -> dict[str, str]:
    flags = {}
    for token in shlex.split(value):
        if not token.startswith("--"):
            break
        key, _, flag_value = token[2:].partition("=")
        flags[key] = flag_value
    return flags


def _copy_paths(value: str) -> list[str]:
    """Sources and destination of a COPY, flags dropped (shell or JSON form)."""
    rest = re.sub(r"^(?:--\S+\s+)*", "", value.strip())
    if rest.startswith("["):
        return json.loads(rest)
    return shlex.split(rest)


def _shell(value: str) -> str | None:
    """The shell command of a shell-form RUN (flags such as --mount dropped), else None."""
    rest = re.sub(r"^(?:--\S+\s+)*", "", value.strip())
    return None if rest.startswith("[") else rest


def _apt_packages(command: str) -> list[str]:
    packages: list[str] = []
    for match in re.finditer(r"apt(?:-get)?\s+install\b([^;&|]*)", command):
        packages += [t for t in match.group(1).split() if not t.startswith("-")]
    return packages


def _single(values: list[str], what: str) -> str:
    assert values, f"no {what}"
    return values[-1]
