"""The rendered kustomize manifests (deploy/k8s) pass Kubernetes 1.30's schemas, and their
workloads say what the services need: the label contract, gRPC probes the kubelet can make,
resources, a locked-down security context, writable /tmp and HOME, and settings each service
accepts, with its paths on mounted volumes and its callers' targets on headless Services.

Base and every overlay are checked (the `objects` fixture of tests/deploy/conftest.py).
Services, budgets and references: test_kustomize_services.py; what each overlay sets:
test_kustomize_overlays.py; network policies: test_network_policies.py; TLS:
test_tls_manifests.py.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

from clipmesh.cli.mesh import DEPENDENCIES
from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ConfigError, ServiceConfig, fields_of
from clipmesh.runtime.server import LIVENESS_SERVICE
from tests.deploy.manifests import (
    Manifest,
    component,
    container_ports,
    containers,
    describe,
    find,
    loaded_configs,
    mount_holding,
    pod_config,
    pod_labels,
    pod_spec,
    quantity,
    referenced,
    selector_matches,
    service_of,
    settings_of,
    workload_of,
    workloads,
    writable,
)

KUBERNETES_VERSION = "1.30.0"
# Custom resources (Prometheus Operator's of components/observability, cert-manager's of
# components/tls, CloudNativePG's of components/postgresql-cloudnativepg);
# tests/deploy/test_custom_resources.py validates them against their CRDs.
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Certificate": "cert-manager.io/v1",
    "Issuer": "cert-manager.io/v1",
    "Cluster": "postgresql.cnpg.io/v1",
}
COMPONENTS = {"orchestrator", "previs", "encoder", "index", "generator"}
UID = 10001
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# A probe has exactly one; patches that merge two into one probe make it invalid.
PROBE_HANDLERS = {"exec", "grpc", "httpGet", "tcpSocket"}
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
    gRPC probes speak neither TLS nor tokens. Startup and readiness read the overall status,
    which a service turns NOT_SERVING while it cannot serve (its database away); liveness
    reads the `liveness` name, which stays SERVING, so such an outage restarts no pod."""
    problems = []
    for workload, container, config in loaded_configs(objects):
        ports = container_ports(container)
        expected = {"grpc", "metrics", "health"} if config.health_port else {"grpc", "metrics"}
        if set(ports) != expected:
            problems.append(f"{describe(workload)}: ports are {sorted(ports)}")
            continue
        probed = "health" if config.tls_cert_file else "grpc"
        for probe in PROBES:
            handlers = set(container.get(probe, {})) & PROBE_HANDLERS
            grpc = container.get(probe, {}).get("grpc", {})
            if handlers != {"grpc"} or grpc.get("port") != ports[probed]:
                problems.append(f"{describe(workload)}: {probe} is not gRPC on the {probed} port")
            wanted = LIVENESS_SERVICE if probe == "livenessProbe" else ""
            if grpc.get("service", "") != wanted:
                problems.append(f"{describe(workload)}: {probe} does not ask for {wanted!r}")
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
                pod_config(objects, workload, container)
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
        outputs = getattr(config, "outputs_path", None)
        if outputs is not None and not writable(workload, container, str(outputs())):
            problems.append(f"{name}: outputs {outputs()} are not on a writable volume")
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
    tokenizer = getattr(config, "tokenizer", "")
    if tokenizer:
        paths.append(tokenizer)
    key_file = str(getattr(config, "dashscope_api_key_file", ""))
    if key_file not in ("", "."):
        paths.append(key_file)
    tls_files = (config.tls_cert_file, config.tls_key_file, config.tls_ca_file)
    paths += [path for path in (*tls_files, config.auth_tokens_file, config.policy_file) if path]
    if getattr(config, "store", ""):
        paths += [str(config.store_password_file), *dsn_files(config.store)]
    return paths


def dsn_files(dsn: str) -> list[str]:
    """Files a libpq DSN's options name: the CA to verify the server with, a client
    certificate and its key."""
    options = parse_qs(urlsplit(dsn).query)
    return [value for key in ("sslrootcert", "sslcert", "sslkey") for value in options.get(key, [])]


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
