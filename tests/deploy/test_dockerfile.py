"""Static checks of the container images (deploy/docker/Dockerfile and the root .dockerignore).

No image is built here (that needs a Docker daemon and the package indexes); instead the
Dockerfile is parsed stage by stage and held to what the Kubernetes manifests and the services
rely on: the two targets, a numeric non-root user, the entrypoint, no build tools or weights in
what ships, caches under /tmp, a build context that holds every file the build copies, and the
CPU torch selection that never falls back silently.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.specifiers import SpecifierSet

from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.runtime.config import fields_of

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
README = ROOT / "deploy" / "docker" / "README.md"
ANIMATIC = ROOT / "services" / "clipmesh" / "generator" / "backends" / "animatic.py"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

TARGETS = ("cpu", "cuda")
IMAGE_NAMES = {"cpu": "clipmesh", "cuda": "clipmesh-cuda"}
APP_UID = 10001
VENV = "/opt/clipmesh"

# Debian packages that ship a CJK font, and the file each installs (bookworm).
FONT_PACKAGES = {
    "fonts-wqy-microhei": "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "fonts-wqy-zenhei": "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "fonts-droid-fallback": "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
}
# Compilers, build systems and fetchers that must not be installed or run in a shipped stage.
BUILD_TOOLS = re.compile(
    r"(?<![\w.-])((gcc|g\+\+|cpp|clang)(-\d+)?|cc|c\+\+|build-essential|make|cmake|ninja|git|"
    r"curl|wget|cargo|rustc|gfortran|pkg-config|python3?-dev|libpython3[\d.]*-dev)(?![\w.+-])"
)
PIP_INSTALL = re.compile(r"\b(pip3?|uv\s+pip|conda|mamba|micromamba)\b[^;&|]*\binstall\b")
WEIGHT_FETCH = re.compile(r"pretrained|huggingface|hf_hub|hf-hub|safetensors", re.I)
WEIGHT_FILE = re.compile(r"\.(safetensors|pt|pth|bin|ckpt|npz|onnx)\b", re.I)


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


# --------------------------------------------------------------------------------------------
# .dockerignore, matched the way Docker matches it (moby/patternmatcher): the last pattern that
# matches a path or one of its parent folders decides; `!` patterns let paths back in.
# --------------------------------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:].strip()
        pattern = posixpath.normpath(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
        patterns.append((negated, re.compile(_pattern_regex(pattern))))
    return patterns


def _pattern_regex(pattern: str) -> str:
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out.append(".*" if i + 1 >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := pattern.find("]", i + 1)) != -1:
            body = pattern[i + 1 : end]
            if body[:1] in ("^", "!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + "$"


def _excluded(path: str) -> bool:
    """Whether the build context leaves out `path` (relative to the repository root)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in _ignore_patterns():
        if excluded != negated:  # only a `!` can undo an exclusion, only a plain one add one
            continue
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _is_cache(path: Path) -> bool:
    return (
        "__pycache__" in path.parts
        or path.suffix in (".pyc", ".pyo")
        or any(p.endswith(".egg-info") for p in path.parts)
    )


def _context_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context, in every stage."""
    copies = []
    for stage in _stages():
        for value in stage.own("COPY") + stage.own("ADD"):
            if "from" in _copy_flags(value):
                continue
            *sources, destination = _copy_paths(value)
            copies += [(source, destination) for source in sources]
    return copies


def _source_files(source: str) -> list[Path]:
    path = ROOT / source
    if path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file() and not _is_cache(p.relative_to(ROOT))]


# --------------------------------------------------------------------------------------------
# Stages and targets.
# --------------------------------------------------------------------------------------------


def test_multi_stage_with_cpu_and_cuda_targets_and_cpu_is_the_default() -> None:
    stages = _stages()
    names = [s.name for s in stages]
    assert set(TARGETS) <= set(names)
    assert len(names) == len(set(names)), f"duplicate stage names: {names}"
    assert stages[-1].name == "cpu", (
        "a plain `docker build` (no --target) should give the cpu image"
    )
    for target in TARGETS:
        builder = _builder_of(target)
        assert builder.index not in {s.index for s in _runtime_stages()}, (
            f"{target}'s builder {builder.name} is also a shipped stage"
        )


def test_base_image_is_pinned_and_shared_by_builders_and_runtime() -> None:
    bases = {s.external_base() for s in _stages()}
    assert len(bases) == 1, f"builders and runtime must share one base image, got {bases}"
    base = bases.pop()
    repository, _, tag = base.partition(":")
    assert repository == "python" and tag and tag != "latest", f"unpinned base image {base}"
    assert tag.endswith("-slim-bookworm"), base
    python = re.match(r"\d+\.\d+", tag).group(0)
    assert f"{python}.0" in SpecifierSet(PYPROJECT["project"]["requires-python"]), (
        f"{base} does not satisfy requires-python"
    )
    for target in TARGETS:  # the venv's interpreter links point into the base image
        assert _builder_of(target).external_base() == _stage(target).external_base()


def test_runtime_stages_install_no_build_tools_and_run_no_installer() -> None:
    for stage in _runtime_stages():
        for value in stage.own("RUN"):
            command = _shell(value) or value
            assert not BUILD_TOOLS.search(command), (
                f"stage {stage.name}: build tool or fetcher in RUN: "
                f"{BUILD_TOOLS.search(command).group(0)!r}"
            )
            assert not PIP_INSTALL.search(command), (
                f"stage {stage.name}: dependencies must arrive by COPY --from a builder: {value}"
            )
            for package in _apt_packages(command):
                assert not package.endswith("-dev"), f"{stage.name} installs {package}"
        assert not stage.own("ADD"), f"stage {stage.name} uses ADD; use COPY"


def test_runtime_gets_dependencies_only_as_the_venv_from_its_own_builder() -> None:
    for stage in _runtime_stages():
        for value in stage.own("COPY"):
            flags = _copy_flags(value)
            assert "from" in flags, f"stage {stage.name} copies from the build context: {value}"
            assert _copy_paths(value) == [VENV, VENV], value
    cpu_builder, cuda_builder = _builder_of("cpu"), _builder_of("cuda")
    assert cpu_builder.index != cuda_builder.index
    assert any("TORCH_INDEX_URL" in v for v in cpu_builder.all("ARG"))
    assert not any("TORCH_INDEX_URL" in v for v in cuda_builder.all("ARG")), (
        "the cuda builder must take torch from the default index (the CUDA build)"
    )
    for target in TARGETS:
        assert _stage(target).env()["PATH"].startswith(f"{VENV}/bin:")


def test_builders_install_the_project_non_editable_with_the_milvus_extra() -> None:
    for target in TARGETS:
        builder = _builder_of(target)
        installs = [v for v in builder.all("RUN") if re.search(r"\bpip\s+install\b", v)]
        assert any("[milvus]" in v for v in installs), f"{builder.name}: no install of .[milvus]"
        for value in installs:
            assert not re.search(r"(^|\s)(-e|--editable)(\s|=)", _shell(value) or ""), value
            assert "--mount=type=cache" in value or "--no-cache-dir" in value, (
                f"{builder.name}: a pip install without a cache mount leaves its cache in a layer"
            )
        copied = {src for s in builder.chain() for v in s.own("COPY") for src in _copy_paths(v)}
        assert "pyproject.toml" in copied
        assert PYPROJECT["project"]["readme"] in copied, "pyproject's readme is needed to build"


def test_final_user_is_numeric_non_root_10001() -> None:
    for target in TARGETS:
        user = _single(_stage(target).all("USER"), f"USER in {target}")
        uid, _, gid = user.partition(":")
        assert uid == str(APP_UID), f"{target}: USER {user} (numeric uid {APP_UID} expected)"
        assert not gid or gid == str(APP_UID), f"{target}: USER {user}"
        # The user exists in /etc/passwd (getpass and friends look it up).
        assert any(f"--uid {APP_UID}" in (_shell(v) or "") for v in _stage(target).all("RUN")), (
            f"{target}: no useradd --uid {APP_UID}"
        )


def test_entrypoint_is_exec_form_clipmesh_serve_with_a_service_as_cmd() -> None:
    for target in TARGETS:
        stage = _stage(target)
        entrypoint = _single(stage.all("ENTRYPOINT"), f"ENTRYPOINT in {target}")
        assert json.loads(entrypoint) == ["clipmesh", "serve"], entrypoint
        cmd = json.loads(_single(stage.all("CMD"), f"CMD in {target}"))
        assert cmd == ["orchestrator"]
        assert cmd[0] in CONFIG_TYPES
        assert stage.all("STOPSIGNAL")[-1:] == ["SIGTERM"]


def test_the_console_script_exists() -> None:
    target = PYPROJECT["project"]["scripts"]["clipmesh"]
    module, _, function = target.partition(":")
    source = ROOT / "services" / Path(*module.split(".")).with_suffix(".py")
    assert re.search(rf"^def {function}\(", source.read_text(), re.M), target


def test_every_service_port_is_exposed() -> None:
    wanted = set()
    for config_type in CONFIG_TYPES.values():
        defaults = {f.name: f.default for f in fields_of(config_type)}
        wanted |= {defaults["port"], defaults["metrics_port"]}
    assert wanted == {50050, 50051, 50052, 50053, 50054, 9150, 9151, 9152, 9153, 9154}
    for target in TARGETS:
        exposed = {int(p.split("/")[0]) for v in _stage(target).all("EXPOSE") for p in v.split()}
        assert exposed == wanted, f"{target} exposes {sorted(exposed)}"


# --------------------------------------------------------------------------------------------
# Weights, environment, OS packages.
# --------------------------------------------------------------------------------------------


def test_no_weights_are_configured_or_fetched() -> None:
    global_args, stages = _parsed()
    settings = [f"{k}={v}" for k, v in global_args.items()]
    for stage in stages:
        settings += stage.own("ARG")
        settings += [f"{k}={v}" for k, v in stage.env().items()]
        for value in stage.own("RUN"):
            assert not WEIGHT_FETCH.search(value), f"stage {stage.name} fetches weights: {value}"
            assert not WEIGHT_FILE.search(value), f"stage {stage.name}: {value}"
        for value in stage.own("COPY") + stage.own("ADD"):
            assert not WEIGHT_FILE.search(value), f"stage {stage.name} copies weights: {value}"
            assert "://" not in value, f"stage {stage.name} downloads: {value}"
    for setting in settings:
        assert "CLIPMESH_ENCODER_WEIGHTS" not in setting, setting
        assert "random:" not in setting, setting


def test_home_caches_and_state_are_where_a_read_only_root_can_write() -> None:
    for target in TARGETS:
        env = _stage(target).env()
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["HOME"] == "/tmp" or env["HOME"].startswith("/tmp/")
        for name in ("XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME"):
            assert name in env, f"{target}: {name} not set"
        caches = {k: v for k, v in env.items() if k.endswith("_HOME") or "CACHE" in k}
        for name, value in caches.items():
            assert value.startswith("/tmp/") or value == "/tmp", f"{target}: {name}={value}"
        for config_type in CONFIG_TYPES.values():
            name = config_type.env_name("data_dir")
            assert env.get(name, "").startswith("/var/lib/clipmesh/"), f"{target}: {name}"


def test_cuda_target_asks_for_gpus_and_cpu_target_does_not() -> None:
    cuda = _stage("cuda").env()
    assert cuda["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert {"compute", "utility"} <= set(cuda["NVIDIA_DRIVER_CAPABILITIES"].split(","))
    assert not any(k.startswith("NVIDIA_") for k in _stage("cpu").env())


def test_apt_installs_no_recommends_and_removes_its_lists() -> None:
    for stage in _stages():
        for value in stage.own("RUN"):
            if re.search(r"apt(-get)?\s+install", value):
                assert "--no-install-recommends" in value, value
                assert "rm -rf /var/lib/apt/lists/*" in value, value


def test_the_animatic_cjk_font_comes_from_a_package_the_runtime_installs() -> None:
    wanted = set(re.findall(r"/usr/share/fonts/[\w./-]+\.tt[cf]", ANIMATIC.read_text()))
    assert FONT_PACKAGES["fonts-wqy-microhei"] in wanted, "the animatic backend's font list moved"
    for target in TARGETS:
        packages = {p for v in _stage(target).all("RUN") for p in _apt_packages(v)}
        fonts = {FONT_PACKAGES[p] for p in packages if p in FONT_PACKAGES}
        assert fonts & wanted, f"{target} installs no font the animatic backend looks for"


def test_run_commands_are_valid_sh() -> None:
    for stage in _stages():
        for value in stage.own("RUN"):
            command = _shell(value)
            if command is None:
                json.loads(re.sub(r"^(?:--\S+\s+)*", "", value))
                continue
            result = subprocess.run(
                ["sh", "-n", "-c", command], check=False, capture_output=True, text=True
            )
            assert result.returncode == 0, f"stage {stage.name}: {result.stderr}\n{command}"


# --------------------------------------------------------------------------------------------
# The CPU torch selection, run with a stand-in `python` that records what it is asked to do.
# --------------------------------------------------------------------------------------------


def _torch_step(builder: Stage) -> str:
    steps = [_shell(v) for v in builder.own("RUN") if "TORCH_VERSION" in v]
    assert len(steps) == 1, f"{builder.name}: expected one torch install step, got {len(steps)}"
    return steps[0]


def _run_torch_step(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, list[str]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "python.log"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_LOG"\n'
        # A `python -c` script that can exit non-zero (a check) fails when FAKE_CHECK_RC says so.
        'case "$1" in -c) case "$2" in *sys.exit*) exit "${FAKE_CHECK_RC:-0}";; esac;; esac\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    log.unlink(missing_ok=True)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_LOG": str(log)}
    base |= {"PYTHON_INDEX_URL": "", "TORCH_INDEX_URL": "", "TORCH_VERSION": ""}
    result = subprocess.run(
        ["sh", "-c", _torch_step(_builder_of("cpu"))],
        check=False,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, result.stdout + result.stderr, calls


def test_cpu_torch_comes_from_the_cpu_index_when_given(tmp_path: Path) -> None:
    index = "http://torch-cpu-index.invalid/whl"
    rc, output, calls = _run_torch_step(tmp_path, {"TORCH_INDEX_URL": index})
    assert rc == 0, output
    installs = [c for c in calls if c.startswith("-m pip install")]
    assert installs == [f"-m pip install --index-url {index} torch torchvision"], calls
    checks = [c for c in calls if "sys.exit" in c and "torch.version.cuda" in c]
    assert checks, "no check that the wheel is CPU-only"
    assert calls.index(checks[0]) > calls.index(installs[0])
    assert "WARNING" not in output

    rc, output, calls = _run_torch_step(
        tmp_path, {"TORCH_INDEX_URL": index, "TORCH_VERSION": "2.5.1"}
    )
    assert rc == 0, output
    assert f"-m pip install --index-url {index} torch==2.5.1 torchvision" in calls


def test_cpu_torch_from_a_cuda_index_fails_the_build(tmp_path: Path) -> None:
    rc, _, calls = _run_torch_step(
        tmp_path, {"TORCH_INDEX_URL": "http://not-cpu.invalid/whl", "FAKE_CHECK_RC": "1"}
    )
    assert rc != 0, "a CUDA torch from TORCH_INDEX_URL must fail the build"
    assert "sys.exit" in calls[-1] and "torch.version.cuda" in calls[-1], calls


def test_cpu_torch_without_an_index_says_so_in_the_build_log(tmp_path: Path) -> None:
    rc, output, calls = _run_torch_step(tmp_path, {})
    assert rc == 0, output
    assert "WARNING" in output and "TORCH_INDEX_URL" in output, output
    installs = [c for c in calls if c.startswith("-m pip install")]
    assert installs == ["-m pip install torch torchvision"], calls


# --------------------------------------------------------------------------------------------
# The build context.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "node_modules/left-pad/index.js",
        "build/lib/clipmesh/__init__.py",
        "dist/clipmesh-0.1.0-py3-none-any.whl",
        "clipmesh-data/index/wal.log",
        "clipmesh-demo/clips/a.mp4",
        "bench/results/encoder.json",
        "tests/unit/test_config.py",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        "clipmesh.egg-info/PKG-INFO",
        "services/clipmesh/__pycache__/__init__.cpython-311.pyc",
        "services/clipmesh.egg-info/PKG-INFO",
        "models/vit-b-32.safetensors",
    ],
)
def test_dockerignore_leaves_out(path: str) -> None:
    assert _excluded(path), f"{path} would be sent to the builder"


def test_every_path_copied_from_the_context_exists_and_is_in_the_context() -> None:
    copies = _context_copies()
    assert copies, "the Dockerfile copies nothing from the build context"
    for source, _ in copies:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
        files = _source_files(source)
        assert files, f"COPY {source}: nothing to copy"
        for path in files:
            relative = path.relative_to(ROOT).as_posix()
            assert not _excluded(relative), f"COPY {source}: .dockerignore leaves out {relative}"


def test_the_context_is_all_the_project_build_needs(tmp_path: Path) -> None:
    """The files the Dockerfile copies, filtered by .dockerignore, build a complete wheel."""
    pytest.importorskip("setuptools", minversion="77")
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    for source, destination in _context_copies():
        assert destination.rstrip("/") in ("./" + source, ".", "/src/" + source, "/src"), (
            f"COPY {source} {destination}: the builder expects sources at /src/<same path>"
        )
        for path in _source_files(source):
            relative = path.relative_to(ROOT).as_posix()
            if not _excluded(relative):
                (src / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / relative)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip_wheel, "--no-index", "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(src)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ | {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("clipmesh-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    expected = set()
    for root in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]:
        for path in (ROOT / root).rglob("*"):
            if path.is_file() and not _is_cache(path.relative_to(ROOT)):
                expected.add(path.relative_to(ROOT / root).as_posix())
    assert expected - packaged == set(), "files the image would lack"
    entry_points = next(n for n in packaged if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "clipmesh = clipmesh.cli.main:main" in archive.read(entry_points).decode()


# --------------------------------------------------------------------------------------------
# Documentation and versions.
# --------------------------------------------------------------------------------------------


def test_version_label_and_documented_image_names_match_the_project() -> None:
    version = PYPROJECT["project"]["version"]
    labels = [v for s in _runtime_stages() for v in s.own("ARG") if v.startswith("CLIPMESH_VER")]
    assert labels == [f"CLIPMESH_VERSION={version}"], labels
    readme = README.read_text()
    for target, image in IMAGE_NAMES.items():
        assert f"--target {target}" in readme
        assert f"{image}:{version}" in readme, f"README does not show {image}:{version}"


def test_no_index_or_registry_address_is_written_down() -> None:
    """Indexes are named only through build args; no URL or host name is hard-coded."""
    host = re.compile(r"\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(org|com|io|net|dev|ai|co)\b", re.I)
    for path in (DOCKERFILE, DOCKERIGNORE, README):
        text = path.read_text()
        assert "://" not in text, f"{path.name} has a URL"
        assert not host.search(text), f"{path.name} names a host: {host.search(text).group(0)}"
