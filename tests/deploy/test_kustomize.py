"""The kustomize manifests (deploy/k8s) render, pass Kubernetes 1.30's schemas, and say what
the services need: gRPC probes the kubelet can make, a locked-down security context, settings
each service accepts, Services and budgets that find their pods, and every referenced object.
The network policies are checked in test_network_policies.py, TLS in test_tls_manifests.py.

Each of base, dev and prod is rendered once (kubectl is required: a missing kubectl fails).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest

from clipmesh.cli.mesh import DEPENDENCIES
from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ConfigError, ServiceConfig, fields_of, load_config
from tests.deploy.manifests import (
    BASE,
    DEV,
    OVERLAYS,
    PROD,
    Manifest,
    autoscaler_of,
    component,
    container_ports,
    containers,
    describe,
    exists,
    find,
    loaded_configs,
    mount_holding,
    of_kind,
    pod_labels,
    pod_spec,
    quantity,
    referenced,
    render,
    selected_workloads,
    selector_matches,
    service_of,
    settings_of,
    volume_of_mount,
    workload_of,
    workloads,
    writable,
)

KUBERNETES_VERSION = "1.30.0"
# Custom resources (Prometheus Operator's of components/observability, cert-manager's of
# components/tls); tests/deploy/test_custom_resources.py validates them against their CRDs.
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Certificate": "cert-manager.io/v1",
    "Issuer": "cert-manager.io/v1",
}
COMPONENTS = {"orchestrator", "previs", "encoder", "index", "generator"}
# Secrets an SRE creates in the namespace (deploy/k8s/README.md); never committed.
EXTERNAL_SECRETS = {"clipmesh-generator-provider", "clipmesh-milvus", "clipmesh-api-tokens"}
UID = 10001
REGISTRY = "registry.example.com/clipmesh/"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# Kinds that belong to the services and carry the label contract (and so do the ConfigMaps
# the pods read).
LABELLED_KINDS = {
    "Deployment",
    "StatefulSet",
    "Service",
    "ServiceAccount",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "PersistentVolumeClaim",
    "NetworkPolicy",
}


@functools.cache
def _build(path: Path) -> list[Manifest]:
    return render(path)


@pytest.fixture(scope="module", params=[BASE, *OVERLAYS], ids=lambda path: path.name)
def objects(request: pytest.FixtureRequest) -> list[Manifest]:
    """Base and every overlay, rendered."""
    return _build(request.param)


@pytest.fixture(scope="module")
def prod() -> list[Manifest]:
    return _build(PROD)


@pytest.fixture(scope="module")
def dev() -> list[Manifest]:
    return _build(DEV)


# --- schemas --------------------------------------------------------------------------------


def test_objects_pass_the_strict_schemas_of_kubernetes_1_30(objects: list[Manifest]) -> None:
    problems = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]], describe(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{describe(obj)}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{describe(obj)} ({obj['apiVersion']}) is no built-in kind of Kubernetes "
                f"{KUBERNETES_VERSION}, nor one of {sorted(CUSTOM_KINDS)}"
            )
    assert not problems, "\n".join(problems)


# --- workloads ------------------------------------------------------------------------------


def test_the_services_objects_carry_the_label_contract(objects: list[Manifest]) -> None:
    """Monitoring and network policies select by these labels: they must be exact on the
    services' objects and pods."""
    problems = []
    used_config_maps = {
        name for w in workloads(objects) for kind, name in referenced(w) if kind == "ConfigMap"
    }
    for obj in objects:
        if obj["kind"] not in LABELLED_KINDS and obj["metadata"]["name"] not in used_config_maps:
            continue
        labels = obj["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/name") != "clipmesh":
            problems.append(f"{describe(obj)}: app.kubernetes.io/name is not clipmesh")
        if labels.get("app.kubernetes.io/part-of") != "clipmesh":
            problems.append(f"{describe(obj)}: app.kubernetes.io/part-of is not clipmesh")
    for workload in workloads(objects):
        labels = pod_labels(workload)
        name = workload["metadata"]["name"]
        if labels.get("app.kubernetes.io/component") not in COMPONENTS:
            problems.append(f"{name}: pod component label not one of {sorted(COMPONENTS)}")
        elif name != f"clipmesh-{labels['app.kubernetes.io/component']}":
            problems.append(f"{name}: not named clipmesh-<component>")
        if labels.get("app.kubernetes.io/part-of") != "clipmesh":
            problems.append(f"{name}: pods lack app.kubernetes.io/part-of")
    assert {component(w) for w in workloads(objects)} == COMPONENTS
    assert not problems, "\n".join(problems)


def test_workloads_probe_health_over_grpc_where_the_kubelet_can(objects: list[Manifest]) -> None:
    """On the gRPC port while it is plaintext; with TLS on the health-only port, as kubelet
    gRPC probes speak neither TLS nor tokens."""
    problems = []
    for workload, container, config in loaded_configs(objects):
        ports = container_ports(container)
        expected = {"grpc", "metrics", "health"} if config.health_port else {"grpc", "metrics"}
        if set(ports) != expected:
            problems.append(f"{describe(workload)}: ports are {sorted(ports)}")
            continue
        probed = "health" if config.tls_cert_file else "grpc"
        for probe in PROBES:
            grpc = container.get(probe, {}).get("grpc")
            if grpc is None or grpc.get("port") != ports[probed]:
                problems.append(f"{describe(workload)}: {probe} is not gRPC on the {probed} port")
    assert not problems, "\n".join(problems)


def test_workloads_request_and_limit_cpu_and_memory(objects: list[Manifest]) -> None:
    problems = []
    for workload in workloads(objects):
        for container in containers(workload):
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            for resource in ("cpu", "memory"):
                if resource not in requests or resource not in limits:
                    problems.append(f"{describe(workload)}: no {resource} request and limit")
                elif quantity(requests[resource]) > quantity(limits[resource]):
                    problems.append(f"{describe(workload)}: {resource} request above limit")
    assert not problems, "\n".join(problems)


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def test_workloads_run_locked_down(objects: list[Manifest]) -> None:
    """Non-root, read-only root filesystem, no privileges, no API token: the `restricted` Pod
    Security Standard and then some."""
    problems = []
    for workload in workloads(objects):
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        for key, expected in POD_SECURITY.items():
            if pod_security.get(key) != expected:
                problems.append(f"{describe(workload)}: pod {key} is not {expected}")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{describe(workload)}: mounts a service account token")
        for container in containers(workload):
            security = container.get("securityContext", {})
            for key, expected in CONTAINER_SECURITY.items():
                if security.get(key) != expected:
                    problems.append(f"{describe(workload)}: container {key} is not {expected}")
            if security.get("privileged"):
                problems.append(f"{describe(workload)}: privileged")
    assert not problems, "\n".join(problems)


def test_tmp_and_home_are_writable(objects: list[Manifest]) -> None:
    problems = []
    for workload in workloads(objects):
        for container in containers(workload):
            home = next(
                (var["value"] for var in container.get("env", []) if var["name"] == "HOME"), None
            )
            if home is None or not writable(workload, container, home):
                problems.append(f"{describe(workload)}: HOME is not set to a writable volume")
            if not writable(workload, container, "/tmp"):
                problems.append(f"{describe(workload)}: /tmp is not a writable volume")
    assert not problems, "\n".join(problems)


# --- settings -------------------------------------------------------------------------------


def unknown_settings(config_type: type[ServiceConfig], environ: dict[str, str]) -> list[str]:
    """CLIPMESH_* names that are no setting of the service (a typo, or another service's)."""
    known = {config_type.env_name(field.name) for field in fields_of(config_type)}
    return sorted(name for name in environ if name.startswith("CLIPMESH_") and name not in known)


def test_settings_are_a_valid_config_of_each_service(objects: list[Manifest]) -> None:
    problems = []
    for workload in workloads(objects):
        for container in containers(workload):
            config_type = CONFIG_TYPES[service_of(container)]
            environ = settings_of(objects, container)
            unknown = unknown_settings(config_type, environ)
            if unknown:
                problems.append(
                    f"{describe(workload)}: no {config_type.SERVICE} settings: {unknown}"
                )
            try:
                load_config(config_type, environ=environ)
            except ConfigError as exc:
                problems.append(f"{describe(workload)}: {exc}")
    assert not problems, "\n".join(problems)


def test_configured_ports_are_the_container_ports(objects: list[Manifest]) -> None:
    for workload, container, config in loaded_configs(objects):
        ports = container_ports(container)
        assert (config.port, config.metrics_port) == (ports["grpc"], ports["metrics"]), describe(
            workload
        )
        assert config.health_port == ports.get("health", 0), describe(workload)


def test_pods_get_time_to_drain_before_they_are_killed(objects: list[Manifest]) -> None:
    for workload, _, config in loaded_configs(objects):
        grace_period = pod_spec(workload)["terminationGracePeriodSeconds"]
        assert config.drain_delay_s > 0, f"{describe(workload)}: no drain delay"
        assert grace_period > config.drain_delay_s + config.grace_s, describe(workload)


def test_paths_in_settings_lie_on_mounted_volumes(objects: list[Manifest]) -> None:
    """The state directory is writable; files the service reads are mounted."""
    problems = []
    for workload, container, config in loaded_configs(objects):
        name = describe(workload)
        if not writable(workload, container, str(config.data_dir)):
            problems.append(f"{name}: data_dir {config.data_dir} is not on a writable volume")
        if not str(config.data_dir).startswith("/var/lib/clipmesh/"):
            problems.append(f"{name}: data_dir {config.data_dir} outside /var/lib/clipmesh")
        for path in read_paths(config):
            if mount_holding(container, path) is None:
                problems.append(f"{name}: {path} is on no mounted volume")
    assert not problems, "\n".join(problems)


def read_paths(config: ServiceConfig) -> list[str]:
    """Files and directories a config tells its service to read."""
    paths = list(getattr(config, "allowed_roots", ()))
    weights = getattr(config, "weights", "")
    if weights and WeightsSpec.parse(weights).kind == "checkpoint":
        paths.append(WeightsSpec.parse(weights).ref)
    key_file = str(getattr(config, "dashscope_api_key_file", ""))
    if key_file not in ("", "."):
        paths.append(key_file)
    tls_files = (config.tls_cert_file, config.tls_key_file, config.tls_ca_file)
    paths += [path for path in (*tls_files, config.auth_tokens_file) if path]
    return paths


def test_callers_targets_name_headless_services_of_their_dependency(
    objects: list[Manifest],
) -> None:
    """`dns:///<service>:<port>`: a headless Service of that dependency, on its grpc port."""
    for workload, _, config in loaded_configs(objects):
        for dependency in DEPENDENCIES.get(config.SERVICE, ()):
            target = getattr(config, f"{dependency}_target")
            match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
            assert match, f"{describe(workload)}: {target} is not dns:///<service>:<port>"
            service = find(objects, "Service", match[1])
            assert service["spec"].get("clusterIP") == "None", f"{match[1]} is not headless"
            grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
            assert grpc_port["port"] == int(match[2]), target
            callee = workload_of(objects, dependency)
            assert selector_matches(
                {"matchLabels": service["spec"]["selector"]}, pod_labels(callee)
            )


# --- Services, budgets, autoscalers, references ---------------------------------------------


def test_services_select_one_workload_and_reach_its_named_ports(objects: list[Manifest]) -> None:
    """Each Service's `grpc` (and `metrics`) port lands on the container port of that name."""
    problems = []
    for service in of_kind(objects, "Service"):
        selected = selected_workloads(objects, {"matchLabels": service["spec"]["selector"]})
        if len(selected) != 1:
            problems.append(f"{describe(service)} selects {[describe(w) for w in selected]}")
            continue
        [container] = containers(selected[0])
        named = container_ports(container)
        ports = {port["name"]: port for port in service["spec"]["ports"]}
        if "grpc" not in ports:
            problems.append(f"{describe(service)}: no port named grpc")
        for name, port in ports.items():
            target = named.get(port["targetPort"], port["targetPort"])
            if target != named.get(name):
                problems.append(f"{describe(service)}: {name} reaches {target}, not {name}")
    assert not problems, "\n".join(problems)


def test_dependencies_are_headless_and_the_orchestrator_has_both(objects: list[Manifest]) -> None:
    for name in ("clipmesh-encoder", "clipmesh-index", "clipmesh-generator"):
        assert find(objects, "Service", name)["spec"].get("clusterIP") == "None", name
    public = find(objects, "Service", "clipmesh-orchestrator")
    assert public["spec"].get("clusterIP") != "None"
    assert find(objects, "Service", "clipmesh-orchestrator-headless")["spec"]["clusterIP"] == "None"
    assert find(objects, "Service", "clipmesh-previs")["spec"].get("clusterIP") != "None"


def test_every_workload_has_a_budget_that_selects_it(objects: list[Manifest]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for budget in budgets:
        assert len(selected_workloads(objects, budget["spec"]["selector"])) == 1, describe(budget)
    covered = {
        describe(w) for b in budgets for w in selected_workloads(objects, b["spec"]["selector"])
    }
    assert covered == {describe(w) for w in workloads(objects)}


def test_single_replicas_never_block_a_node_drain(objects: list[Manifest]) -> None:
    """A budget of minAvailable 1 over one pod would stop every drain until a human came."""
    for budget in of_kind(objects, "PodDisruptionBudget"):
        [workload] = selected_workloads(objects, budget["spec"]["selector"])
        if workload["spec"].get("replicas", 1) == 1 and not autoscaler_of(objects, workload):
            assert "minAvailable" not in budget["spec"], describe(budget)
            assert budget["spec"]["maxUnavailable"] >= 1, describe(budget)


def test_autoscalers_target_workloads_that_leave_replicas_to_them(objects: list[Manifest]) -> None:
    for autoscaler in of_kind(objects, "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        workload = find(objects, target["kind"], target["name"])
        # A replica count in the workload would reset the autoscaler's on every apply.
        assert "replicas" not in workload["spec"], describe(workload)
        assert autoscaler["spec"]["minReplicas"] >= 2, describe(autoscaler)


def test_everything_the_pods_reference_is_rendered(objects: list[Manifest]) -> None:
    """Or created outside the manifests: a Secret an SRE makes, or one cert-manager issues for
    a rendered Certificate."""
    issued = {c["spec"]["secretName"] for c in of_kind(objects, "Certificate")}
    missing = [
        f"{describe(workload)} uses {kind}/{name}"
        for workload in workloads(objects)
        for kind, name in sorted(referenced(workload))
        if not exists(objects, kind, name)
        and not (kind == "Secret" and name in EXTERNAL_SECRETS | issued)
    ]
    assert not missing, "\n".join(missing)


def test_no_secret_values_are_committed(objects: list[Manifest]) -> None:
    assert not of_kind(objects, "Secret")


# --- per overlay ----------------------------------------------------------------------------


def config_of(objects: list[Manifest], component_name: str) -> ServiceConfig:
    [container] = containers(workload_of(objects, component_name))
    environ = settings_of(objects, container)
    return load_config(CONFIG_TYPES[service_of(container)], environ=environ)


def test_previs_runs_the_previs_service_on_one_replica(objects: list[Manifest]) -> None:
    assert config_of(objects, "previs").SERVICE == "previs"
    assert config_of(objects, "orchestrator").SERVICE == "orchestrator"
    previs = workload_of(objects, "previs")
    assert previs["spec"]["replicas"] == 1
    assert previs["spec"]["strategy"]["type"] == "Recreate"


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
