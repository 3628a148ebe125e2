"""components/multilingual (deploy/k8s/README.md, "Chinese and other languages"): the encoder
loads xlm-roberta-base-ViT-B-32 from its checkpoint and tokenizer directory on the read-only
models volume, with settings its config accepts; on CPU it gets the memory the fp32 model needs
and nothing else of the base changes; with components/gpu, in either order, the GPU's sizes
stay; and a bulk ingest built with the component embeds with the encoder's model, whether the
job is an overlay of its own beside prod or built with the mesh.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.text_tower import hugging_face_family
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.languages import MULTILINGUAL
from tests.deploy.conftest import _build
from tests.deploy.manifests import (
    BASE,
    K8S_DIR,
    PROD,
    Manifest,
    claim_at,
    compose,
    containers,
    describe,
    find,
    mount_holding,
    of_kind,
    pod_config,
    quantity,
    settings_of,
    workload_of,
)
from tests.deploy.test_bulk_ingest_manifests import (
    BULK,
    GROUPS,
    RAYJOB,
    encoder_config,
    model_settings,
    pods_of,
    ray_container,
)
from tests.deploy.test_kustomize_workloads import read_paths

COMPONENT = K8S_DIR / "components" / "multilingual"
GPU = K8S_DIR / "components" / "gpu"
BULK_INGEST = K8S_DIR / "components" / "bulk-ingest"
MODEL = "xlm-roberta-base-ViT-B-32"
MODEL_FIELDS = ("model", "weights", "tokenizer", "text_languages")
MODELS_CLAIM = "clipmesh-models"
# xlm-roberta-base-ViT-B-32 in fp32, as components/multilingual/encoder-memory.yaml counts it
# (bench/encoder_text.py): 366 M parameters are 1.5 GB of weights, about 3 GB are resident once
# loaded, and while loading the checkpoint's state dict is held beside the model.
FP32_WEIGHTS_BYTES = 1.5e9
LOADED_BYTES = 3.0e9
LOAD_PEAK_BYTES = LOADED_BYTES + FP32_WEIGHTS_BYTES
# The base's startup probe gives a model 10 minutes to load before the pod is restarted.
STARTUP_WINDOW_S = 600


@pytest.fixture(scope="module")
def cpu(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """Base with the component: the encoder on CPU."""
    return compose(tmp_path_factory.mktemp("cpu"), resources=[BASE], components=[COMPONENT])


@pytest.fixture(scope="module")
def prod_multilingual(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """Prod (GPU encoders) with the component added, as an overlay of prod would add it."""
    return compose(tmp_path_factory.mktemp("prod"), resources=[PROD], components=[COMPONENT])


@pytest.fixture(scope="module")
def bulk_multilingual(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """overlays/bulk-ingest with the component: the job run into `prod_multilingual`."""
    return compose(tmp_path_factory.mktemp("bulk"), resources=[BULK], components=[COMPONENT])


@pytest.fixture(scope="module")
def mesh_with_job(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """One build of a plaintext GPU mesh and its bulk ingest, the component last."""
    return compose(
        tmp_path_factory.mktemp("mesh-with-job"),
        resources=[BASE],
        components=[GPU, BULK_INGEST, COMPONENT],
        namespace="clipmesh",
    )


@pytest.fixture(params=["cpu", "prod_multilingual"], ids=["cpu", "prod"])
def mesh(request: pytest.FixtureRequest) -> list[Manifest]:
    """A mesh with the component, on CPU and in prod."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["overlays", "one-build"])
def mesh_and_job(request: pytest.FixtureRequest) -> tuple[list[Manifest], list[Manifest]]:
    """(the mesh's objects, the job's) with the component in both: prod and overlays/bulk-ingest
    each with it, or both in one build."""
    if request.param == "overlays":
        return request.getfixturevalue("prod_multilingual"), request.getfixturevalue(
            "bulk_multilingual"
        )
    both = request.getfixturevalue("mesh_with_job")
    return both, both


def encoder_of(objects: list[Manifest]) -> tuple[Manifest, dict[str, Any], EncoderConfig]:
    """(Deployment, container, the config its settings load) of the encoder."""
    workload = workload_of(objects, "encoder")
    [container] = containers(workload)
    config = pod_config(objects, workload, container)
    assert isinstance(config, EncoderConfig)
    return workload, container, config


def files_of(config: EncoderConfig) -> list[str]:
    """The model's files: the checkpoint and the tokenizer directory."""
    return [WeightsSpec.parse(config.weights).ref, config.tokenizer]


def config_map_names(objects: list[Manifest]) -> set[str]:
    return {obj["metadata"]["name"] for obj in of_kind(objects, "ConfigMap")}


# --- the encoder ----------------------------------------------------------------------------


def test_the_encoder_loads_the_multilingual_model(mesh: list[Manifest]) -> None:
    """The four settings reach the pod and its config accepts them; the directory is named
    for the Hugging Face model open_clip builds this model's text tower from, which the
    encoder requires a directory for (and refuses one for open_clip's own tokenizer)."""
    _, container, config = encoder_of(mesh)
    environ = settings_of(mesh, container)
    for field in MODEL_FIELDS:
        assert EncoderConfig.env_name(field) in environ, field
    assert config.model == MODEL
    assert WeightsSpec.parse(config.weights).kind == "checkpoint"
    family = hugging_face_family(config.model)
    assert family is not None
    assert config.tokenizer_dir is not None and config.tokenizer_dir.name == family
    assert config.declared_languages == (MULTILINGUAL,)


def test_the_model_files_are_on_the_read_only_models_volume(mesh: list[Manifest]) -> None:
    """The checkpoint and the tokenizer directory come from the claim the SRE fills, mounted
    read-only; every other path the encoder reads is mounted too."""
    workload, container, config = encoder_of(mesh)
    for path in files_of(config):
        mount = mount_holding(container, path)
        assert mount is not None and mount.get("readOnly"), path
        claim = claim_at(mesh, workload, container, path)
        assert claim is not None and claim["metadata"]["name"] == MODELS_CLAIM, path
        assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    for path in read_paths(config):
        assert mount_holding(container, path) is not None, path


def test_the_tokenizer_is_set_exactly_for_hugging_face_text_towers(
    objects: list[Manifest],
) -> None:
    """Without the component (base, dev, prod: ViT-B-32) no directory is set, which the
    encoder would refuse beside open_clip's own tokenizer."""
    _, _, config = encoder_of(objects)
    assert (hugging_face_family(config.model) is None) == (config.tokenizer_dir is None)


# --- resources ------------------------------------------------------------------------------


def test_on_cpu_the_encoder_has_the_memory_of_the_fp32_model(cpu: list[Manifest]) -> None:
    """The base runs fp32 on CPU: the request holds the loaded model, the limit the moment
    the checkpoint is read beside it; the startup probe keeps its 10 minutes."""
    _, container, config = encoder_of(cpu)
    assert (config.device, config.precision) == ("cpu", "fp32")
    resources = container["resources"]
    assert quantity(resources["requests"]["memory"]) >= LOADED_BYTES
    assert quantity(resources["limits"]["memory"]) >= LOAD_PEAK_BYTES
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= STARTUP_WINDOW_S


def test_on_cpu_only_the_encoders_settings_and_memory_change(cpu: list[Manifest]) -> None:
    """Everything else renders as in the base; the encoder's ConfigMap gets a new name, so
    applying the component rolls the encoder's pods."""
    base = _build(BASE)

    def untouched(objects: list[Manifest]) -> dict[str, Manifest]:
        return {
            describe(obj): obj
            for obj in objects
            if obj["kind"] != "ConfigMap" and describe(obj) != "Deployment/clipmesh-encoder"
        }

    assert untouched(cpu) == untouched(base)
    names, base_names = config_map_names(cpu), config_map_names(base)
    [added], [removed] = names - base_names, base_names - names
    assert added.startswith("clipmesh-encoder-") and removed.startswith("clipmesh-encoder-")
    encoder, base_encoder = copy.deepcopy(workload_of(cpu, "encoder")), workload_of(base, "encoder")
    [container], [base_container] = containers(encoder), containers(base_encoder)
    assert container["envFrom"] == [{"configMapRef": {"name": added}}]
    container["envFrom"] = base_container["envFrom"]
    for kind in ("requests", "limits"):
        memory = container["resources"][kind]["memory"]
        assert quantity(memory) > quantity(base_container["resources"][kind]["memory"]), kind
        container["resources"][kind]["memory"] = base_container["resources"][kind]["memory"]
    assert encoder == base_encoder


@pytest.mark.parametrize(
    "order", [(GPU, COMPONENT), (COMPONENT, GPU)], ids=["gpu-first", "multilingual-first"]
)
def test_on_a_gpu_the_gpu_sizes_stay(order: tuple[Path, Path], tmp_path: Path) -> None:
    """components/gpu sizes a GPU node's encoder larger than the CPU's: the component changes
    the model there and leaves the sizes, wherever it is listed."""
    gpu_only = compose(tmp_path / "gpu", resources=[BASE], components=[GPU])
    both = compose(tmp_path / "both", resources=[BASE], components=list(order))
    _, container, config = encoder_of(both)
    assert container["resources"] == encoder_of(gpu_only)[1]["resources"]
    assert (config.model, config.device, config.precision) == (MODEL, "cuda", "fp16")
    assert quantity(container["resources"]["limits"]["memory"]) >= LOAD_PEAK_BYTES


def test_prod_keeps_its_encoder_sizes(prod_multilingual: list[Manifest]) -> None:
    _, container, config = encoder_of(prod_multilingual)
    assert container["resources"] == encoder_of(_build(PROD))[1]["resources"]
    assert config.model == MODEL


# --- bulk ingest ----------------------------------------------------------------------------


def test_in_the_jobs_overlay_only_the_jobs_settings_change(
    bulk_multilingual: list[Manifest],
) -> None:
    """Nothing of the mesh appears: the component's encoder patches find nothing there."""
    plain = _build(BULK)
    assert sorted(describe(obj) for obj in bulk_multilingual) == sorted(
        describe(obj) for obj in plain
    )
    for kind in ("RayJob", "Certificate", "PersistentVolumeClaim"):
        assert of_kind(bulk_multilingual, kind) == of_kind(plain, kind), kind


def test_a_bulk_ingest_embeds_with_the_encoders_model(
    mesh_and_job: tuple[list[Manifest], list[Manifest]],
) -> None:
    """Every Ray pod gets the encoder's model, files, languages and precision: the vectors
    written are the ones searches compare against."""
    mesh, job = mesh_and_job
    _, _, encoder = encoder_of(mesh)
    assert encoder.model == MODEL
    rayjob = find(job, "RayJob", RAYJOB)
    for group in GROUPS:
        config = encoder_config(job, ray_container(rayjob, group))
        assert model_settings(config) == model_settings(encoder), group


def test_the_embedding_workers_mount_the_model_files(
    mesh_and_job: tuple[list[Manifest], list[Manifest]],
) -> None:
    """The GPU workers load the model: its checkpoint and tokenizer directory are on the
    read-only models claim there too, with memory for the fp32 load."""
    mesh, job = mesh_and_job
    rayjob = find(job, "RayJob", RAYJOB)
    embed, embedder = pods_of(rayjob, "gpu-embed"), ray_container(rayjob, "gpu-embed")
    config = encoder_config(job, embedder)
    for path in files_of(config):
        mount = mount_holding(embedder, path)
        assert mount is not None and mount.get("readOnly"), path
        claim = claim_at(mesh + job, embed, embedder, path)
        assert claim is not None and claim["metadata"]["name"] == MODELS_CLAIM, path
    assert quantity(embedder["resources"]["limits"]["memory"]) >= LOAD_PEAK_BYTES
