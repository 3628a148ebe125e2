"""Static checks of how deploy/docker/Dockerfile builds its images.

The CPU torch step runs with a stand-in `python` and must never fall back silently; the root
.dockerignore is matched the way Docker matches it, and the files it lets into the build
context must build a complete wheel; the documented image names follow the project's version,
and no index or registry address is written down. What the images ship:
test_dockerfile_stages.py.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.dockerfile import (
    DOCKERFILE,
    PYPROJECT,
    ROOT,
    Stage,
    _builder_of,
    _copy_flags,
    _copy_paths,
    _runtime_stages,
    _shell,
    _stages,
)

DOCKERIGNORE = ROOT / ".dockerignore"
README = ROOT / "deploy" / "docker" / "README.md"
IMAGE_NAMES = {"cpu": "clipmesh", "cuda": "clipmesh-cuda"}


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
