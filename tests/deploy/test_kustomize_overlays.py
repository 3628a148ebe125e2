"""What each kustomize overlay (deploy/k8s) sets, checked on the rendered objects: previs runs
the previs service; real weights outside dev; in prod the encoder on a GPU, images from the
registry, the index on Milvus and the generator on DashScope with a required key; dev with one
replica of everything, no weights and no GPU. The generator's and previs's replicas and stores:
test_high_availability.py.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ServiceConfig
from tests.deploy.conftest import _build
from tests.deploy.manifests import (
    BASE,
    PROD,
    Manifest,
    autoscaler_of,
    containers,
    describe,
    exists,
    find,
    mount_holding,
    of_kind,
    pod_config,
    pod_spec,
    volume_of_mount,
    workload_of,
    workloads,
)

REGISTRY = "registry.example.com/clipmesh/"


def config_of(objects: list[Manifest], component_name: str) -> ServiceConfig:
    workload = workload_of(objects, component_name)
    [container] = containers(workload)
    return pod_config(objects, workload, container)


def test_previs_runs_the_previs_service(objects: list[Manifest]) -> None:
    assert config_of(objects, "previs").SERVICE == "previs"
    assert config_of(objects, "orchestrator").SERVICE == "orchestrator"


@pytest.mark.parametrize("path", [BASE, PROD], ids=lambda path: path.name)
def test_real_weights_outside_dev(path: Path) -> None:
    spec = WeightsSpec.parse(config_of(_build(path), "encoder").weights)
    assert spec.kind == "checkpoint"
    assert PurePosixPath(spec.ref).is_relative_to("/models")


def test_prod_encoder_runs_on_a_gpu(prod: list[Manifest]) -> None:
    encoder = workload_of(prod, "encoder")
    [container] = containers(encoder)
    assert container["image"].startswith(f"{REGISTRY}clipmesh-cuda:")
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod_spec(encoder)["tolerations"])
    config = config_of(prod, "encoder")
    assert (config.device, config.precision, config.max_batch) == ("cuda", "fp16", 128)
    autoscaler = autoscaler_of(prod, encoder)
    metrics = [m["pods"]["metric"]["name"] for m in autoscaler["spec"]["metrics"] if "pods" in m]
    assert metrics == ["clipmesh_encoder_queue_depth"]


def test_prod_images_come_from_the_registry(prod: list[Manifest]) -> None:
    for workload in workloads(prod):
        for container in containers(workload):
            assert container["image"].startswith(REGISTRY), describe(workload)
    cpu_images = {c["image"] for w in workloads(prod) for c in containers(w)} - {
        containers(workload_of(prod, "encoder"))[0]["image"]
    }
    assert cpu_images == {f"{REGISTRY}clipmesh:0.1.0"}


def test_prod_index_is_stateless_on_milvus(prod: list[Manifest]) -> None:
    config = config_of(prod, "index")
    assert config.backend == "milvus"
    assert config.milvus_uri == "http://milvus.milvus.svc.cluster.local:19530"
    index = workload_of(prod, "index")
    [container] = containers(index)
    token = next(v for v in container["env"] if v["name"] == "CLIPMESH_INDEX_MILVUS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "clipmesh-milvus", "key": "token"}
    assert index["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in index["spec"]
    assert find(prod, "PodDisruptionBudget", "clipmesh-index")["spec"] == {
        "minAvailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": index["spec"]["selector"],
    }


def test_prod_generator_defaults_to_dashscope_with_a_required_key(prod: list[Manifest]) -> None:
    config = config_of(prod, "generator")
    assert config.default_backend == "dashscope"
    generator = workload_of(prod, "generator")
    [container] = containers(generator)
    mount = mount_holding(container, str(config.dashscope_api_key_file))
    volume = volume_of_mount(generator, mount)
    assert volume["secret"]["secretName"] == "clipmesh-generator-provider"
    assert volume["secret"]["optional"] is False
    assert config.dashscope_api_key_file.name == "dashscope-api-key"


def test_base_provider_key_is_optional_and_unused() -> None:
    """Without the key-file setting the gateway never reads the (optional) Secret; with it
    set and the file missing, it would refuse to start."""
    base = _build(BASE)
    assert str(config_of(base, "generator").dashscope_api_key_file) in ("", ".")
    generator = workload_of(base, "generator")
    [secret] = [v["secret"] for v in pod_spec(generator)["volumes"] if "secret" in v]
    assert secret["optional"] is True


def test_dev_runs_one_replica_of_everything_without_autoscalers(dev: list[Manifest]) -> None:
    assert not of_kind(dev, "HorizontalPodAutoscaler")
    for workload in workloads(dev):
        assert workload["spec"]["replicas"] == 1, describe(workload)


def test_dev_needs_no_weights_and_no_gpu(dev: list[Manifest]) -> None:
    assert WeightsSpec.parse(config_of(dev, "encoder").weights).is_random
    assert config_of(dev, "encoder").device == "cpu"
    assert config_of(dev, "generator").default_backend == "animatic"
    assert not exists(dev, "PersistentVolumeClaim", "clipmesh-models")
    for workload in workloads(dev):
        for container in containers(workload):
            assert "nvidia.com/gpu" not in container["resources"]["limits"], describe(workload)
