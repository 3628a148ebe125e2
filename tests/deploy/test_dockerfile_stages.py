"""Static checks of deploy/docker/Dockerfile's stages: what the cpu and cuda images ship.

No image is built (that needs a Docker daemon and the package indexes); the Dockerfile is parsed
stage by stage (tests/deploy/dockerfile.py) and held to what the Kubernetes manifests and the
services rely on: the two targets on one pinned base, a numeric non-root user, the entrypoint
and ports, no build tools, installers or weights in what ships, caches under /tmp, and the OS
packages the runtime needs. How the images are built: test_dockerfile_build.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from packaging.specifiers import SpecifierSet

from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.runtime.config import fields_of
from tests.deploy.dockerfile import (
    PYPROJECT,
    ROOT,
    TARGETS,
    _apt_packages,
    _builder_of,
    _copy_flags,
    _copy_paths,
    _parsed,
    _runtime_stages,
    _shell,
    _single,
    _stage,
    _stages,
)

ANIMATIC = ROOT / "services" / "clipmesh" / "generator" / "backends" / "animatic.py"
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


def test_builders_install_the_project_non_editable_with_the_milvus_and_bulk_extras() -> None:
    # milvus: the index's Milvus backend; bulk: Ray, which KubeRay's RayJob pods run the image on.
    for target in TARGETS:
        builder = _builder_of(target)
        installs = [v for v in builder.all("RUN") if re.search(r"\bpip\s+install\b", v)]
        assert any("[milvus,bulk]" in v for v in installs), (
            f"{builder.name}: no install of .[milvus,bulk]"
        )
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
