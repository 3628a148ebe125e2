"""The Kubernetes manifests of deploy/k8s as the cluster would receive them, and lookups in them.

`render()` runs `kubectl kustomize` (the build `kubectl apply -k` does) and returns the objects
as dicts; `compose()` renders bases and components put together as an overlay of one's own.
The helpers find workloads and what they reference, match label selectors, and decide whether
the rendered NetworkPolicies let one endpoint connect to another.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.runtime.config import ServiceConfig, load_config

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
BASE = K8S_DIR / "base"
DEV = K8S_DIR / "overlays" / "dev"
PROD = K8S_DIR / "overlays" / "prod"
OVERLAYS = [DEV, PROD]

WORKLOAD_KINDS = ("Deployment", "StatefulSet")

Manifest = dict[str, Any]


def render(path: Path) -> list[Manifest]:
    """The objects `kubectl kustomize <path>` builds, in its order.

    Raises:
        RuntimeError: kubectl is missing (the install step provides it) or the build failed;
            the message carries kustomize's own error.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is not on PATH; the install step provides it")
    build = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if build.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{build.stderr}")
    return [doc for doc in yaml.safe_load_all(build.stdout) if doc]


def compose(
    root: Path,
    *,
    resources: Sequence[Path] = (),
    components: Sequence[Path] = (),
    namespace: str | None = None,
) -> list[Manifest]:
    """Renders a kustomization written into `root` (a new directory) that builds `resources`
    and applies `components` in their order, as an overlay of one's own would."""
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes relative paths only.
        "resources": [os.path.relpath(path, root) for path in resources],
        "components": [os.path.relpath(path, root) for path in components],
    }
    if namespace:
        kustomization["namespace"] = namespace
    root.mkdir(parents=True, exist_ok=True)
    (root / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(root)


def describe(obj: Manifest) -> str:
    """`Kind/name`, for messages."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    """The object of `kind` named `name`; KeyError listing the names there are."""
    candidates = of_kind(objects, kind)
    for obj in candidates:
        if obj["metadata"]["name"] == name:
            return obj
    names = sorted(obj["metadata"]["name"] for obj in candidates)
    raise KeyError(f"no {kind} named {name!r}; rendered: {names}")


def exists(objects: list[Manifest], kind: str, name: str) -> bool:
    return any(obj["metadata"]["name"] == name for obj in of_kind(objects, kind))


def workloads(objects: list[Manifest]) -> list[Manifest]:
    """The Deployments and StatefulSets."""
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Manifest) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def component(workload: Manifest) -> str:
    """The workload's `app.kubernetes.io/component` (orchestrator, previs, encoder, ...)."""
    return pod_labels(workload).get("app.kubernetes.io/component", "")


def workload_of(objects: list[Manifest], component_name: str) -> Manifest:
    """The workload whose pods are the component `component_name`."""
    for workload in workloads(objects):
        if component(workload) == component_name:
            return workload
    raise KeyError(f"no workload of component {component_name!r}")


def containers(workload: Manifest) -> list[dict[str, Any]]:
    return pod_spec(workload)["containers"]


def container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """Named container ports: {"grpc": 50051, "metrics": 9151}."""
    return {port["name"]: port["containerPort"] for port in container.get("ports", [])}


def selected_workloads(objects: list[Manifest], selector: Mapping[str, Any]) -> list[Manifest]:
    """The workloads whose pods a LabelSelector selects."""
    return [w for w in workloads(objects) if selector_matches(selector, pod_labels(w))]


def autoscaler_of(objects: list[Manifest], workload: Manifest) -> Manifest | None:
    """The HorizontalPodAutoscaler that scales `workload`, if any."""
    for autoscaler in of_kind(objects, "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"]):
            return autoscaler
    return None


def referenced(workload: Manifest) -> set[tuple[str, str]]:
    """(kind, name) of every ServiceAccount, ConfigMap, Secret and PersistentVolumeClaim the
    workload's pods use."""
    spec = pod_spec(workload)
    refs = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    for volume in spec.get("volumes", []):
        refs |= _volume_references(volume)
    for container in containers(workload):
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    refs.add((kind, source[key]["name"]))
        for var in container.get("env", []):
            value_from = var.get("valueFrom", {})
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in value_from:
                    refs.add((kind, value_from[key]["name"]))
    return refs


def _volume_references(volume: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What a pod volume reads from: a ConfigMap, Secret or claim, or those a projected volume
    gathers."""
    refs = set()
    if "configMap" in volume:
        refs.add(("ConfigMap", volume["configMap"]["name"]))
    if "secret" in volume:
        refs.add(("Secret", volume["secret"]["secretName"]))
    if "persistentVolumeClaim" in volume:
        refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    for source in volume.get("projected", {}).get("sources", []):
        for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
            if key in source:
                refs.add((kind, source[key]["name"]))
    return refs


def mount_holding(container: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The deepest volumeMount of `container` that `path` lies under, or None."""
    holding = [
        mount
        for mount in container.get("volumeMounts", [])
        if PurePosixPath(path).is_relative_to(mount["mountPath"])
    ]
    return max(holding, key=lambda mount: len(mount["mountPath"]), default=None)


def volume_of_mount(workload: Manifest, mount: Mapping[str, Any]) -> dict[str, Any]:
    """The pod volume behind a volumeMount; a StatefulSet's claim template reads as a
    persistentVolumeClaim volume."""
    for volume in pod_spec(workload).get("volumes", []):
        if volume["name"] == mount["name"]:
            return volume
    for template in workload["spec"].get("volumeClaimTemplates", []):
        if template["metadata"]["name"] == mount["name"]:
            return {"name": mount["name"], "persistentVolumeClaim": {}}
    raise KeyError(f"{describe(workload)}: no volume {mount['name']!r}")


def secret_key_at(
    workload: Manifest, container: Mapping[str, Any], path: str
) -> tuple[str, str] | None:
    """(Secret name, key) of the file the container finds at `path`, when a Secret volume (or
    a projected volume's Secret) puts one there; None otherwise. A Secret mounted whole is
    taken to hold a key of the file's name."""
    mount = mount_holding(container, path)
    if mount is None or mount.get("subPath"):
        return None
    relative = str(PurePosixPath(path).relative_to(mount["mountPath"]))
    volume = volume_of_mount(workload, mount)
    if "secret" in volume:
        sources = [{"name": volume["secret"]["secretName"], **volume["secret"]}]
    else:
        sources = [
            s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s
        ]
    for source in sources:
        items = source.get("items")
        if items is None:
            return source["name"], relative
        for item in items:
            if item["path"] == relative:
                return source["name"], item["key"]
    return None


def claim_at(
    objects: list[Manifest], workload: Manifest, container: Mapping[str, Any], path: str
) -> Manifest | None:
    """The PersistentVolumeClaim the container finds `path` on, if it is on a claim."""
    mount = mount_holding(container, path)
    if mount is None:
        return None
    volume = volume_of_mount(workload, mount)
    if "claimName" not in volume.get("persistentVolumeClaim", {}):
        return None
    return find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


def writable(workload: Manifest, container: Mapping[str, Any], path: str) -> bool:
    """Whether the container can write under `path`: a read-write mount of an emptyDir or a
    claim (the root filesystem itself is read-only)."""
    mount = mount_holding(container, path)
    if mount is None or mount.get("readOnly"):
        return False
    volume = volume_of_mount(workload, mount)
    return "emptyDir" in volume or "persistentVolumeClaim" in volume


_QUANTITY = re.compile(r"([0-9.]+)([a-zA-Z]*)")
_QUANTITY_SCALE = {
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("500m", "2Gi", 1) as a plain number."""
    match = _QUANTITY.fullmatch(str(value))
    if match is None or match[2] not in _QUANTITY_SCALE:
        raise ValueError(f"not a quantity this helper reads: {value!r}")
    return float(match[1]) * _QUANTITY_SCALE[match[2]]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects `labels`.

    The empty selector selects everything, as in Kubernetes.
    """
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    return all(_expression_holds(term, labels) for term in selector.get("matchExpressions", []))


def _expression_holds(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = term["key"], term["operator"], term.get("values", [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")


# --- NetworkPolicy evaluation ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace, labels, named ports) or, with no namespace,
    an address outside the cluster.

    Pods get an address in a private range, as pod networks do, so that ipBlock rules meant
    for the internet do not match them.
    """

    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    ip: str = "10.244.0.10"

    @property
    def namespace_labels(self) -> dict[str, str]:
        # Kubernetes labels every namespace with its own name.
        return {"kubernetes.io/metadata.name": self.namespace or ""}


def pod_endpoint(workload: Manifest) -> Endpoint:
    """The workload's pods as a connection endpoint."""
    ports: dict[str, int] = {}
    for container in containers(workload):
        ports.update(container_ports(container))
    return Endpoint(
        namespace=workload["metadata"].get("namespace", "default"),
        labels=pod_labels(workload),
        ports=ports,
    )


@dataclass(frozen=True)
class Connection:
    """A TCP or UDP connection from `source` to `destination`'s `port`."""

    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str = "TCP"


def connection_allowed(policies: list[Manifest], connection: Connection) -> bool:
    """Whether `policies` let `connection` be opened.

    As Kubernetes does: a pod selected by no policy of a direction is open in that direction;
    a selected pod accepts only what some selecting policy's rule allows. A connection needs
    egress from its source and ingress to its destination.
    """
    return _direction_allows(policies, "Egress", connection) and _direction_allows(
        policies, "Ingress", connection
    )


def _direction_allows(policies: list[Manifest], direction: str, connection: Connection) -> bool:
    """Whether the policies of the pod at the `direction` end let the connection through."""
    if direction == "Egress":
        subject, peer = connection.source, connection.destination
        rules_key, peers_key = "egress", "to"
    else:
        subject, peer = connection.destination, connection.source
        rules_key, peers_key = "ingress", "from"
    if subject.namespace is None:
        return True  # outside the cluster: no NetworkPolicy applies
    selecting = [
        policy
        for policy in policies
        if _namespace(policy) == subject.namespace
        and direction in _policy_types(policy)
        and selector_matches(policy["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    return any(
        _rule_admits_peer(rule.get(peers_key), _namespace(policy), peer)
        and _ports_admit(rule.get("ports"), connection)
        for policy in selecting
        for rule in policy["spec"].get(rules_key, [])
    )


def _namespace(policy: Manifest) -> str:
    return policy["metadata"].get("namespace", "default")


def _policy_types(policy: Manifest) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return spec["policyTypes"]
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def _rule_admits_peer(
    peers: list[Mapping[str, Any]] | None, policy_namespace: str, peer: Endpoint
) -> bool:
    """A rule without peers admits every peer."""
    return not peers or any(_peer_matches(spec, policy_namespace, peer) for spec in peers)


def _peer_matches(spec: Mapping[str, Any], policy_namespace: str, peer: Endpoint) -> bool:
    if "ipBlock" in spec:
        return _in_ip_block(spec["ipBlock"], peer.ip)
    if peer.namespace is None:
        return False  # pod and namespace selectors select pods only
    if "namespaceSelector" in spec:
        namespace_ok = selector_matches(spec["namespaceSelector"], peer.namespace_labels)
    else:
        namespace_ok = peer.namespace == policy_namespace
    return namespace_ok and selector_matches(spec.get("podSelector", {}), peer.labels)


def _in_ip_block(block: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))


def _ports_admit(rule_ports: list[Mapping[str, Any]] | None, connection: Connection) -> bool:
    """Whether a rule's `ports` admit the connection's port; a rule without ports admits all,
    and a named port means the destination pod's port of that name."""
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != connection.protocol:
            continue
        if "port" not in entry:
            return True
        first = entry["port"]
        if isinstance(first, str):
            first = connection.destination.ports.get(first)
            if first is None:
                continue
        if first <= connection.port <= entry.get("endPort", first):
            return True
    return False


# --- settings -------------------------------------------------------------------------------


def service_of(container: dict[str, Any]) -> str:
    """The clipmesh service a container runs: `clipmesh serve <service>`, from its args."""
    return container["args"][0]


def settings_of(objects: list[Manifest], container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets from ConfigMaps and literal values. Values from
    Secrets are left out: they are not in the manifests."""
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
            environ.update(config_map.get("data", {}))
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
    return environ


def pod_config(objects: list[Manifest], workload: Manifest, container: dict) -> ServiceConfig:
    """The config the container's service loads from its settings, in its pod.

    A service checks at load that its store's password file exists; in the pod that file is
    a mounted Secret's, which this machine lacks. When a Secret volume puts it there, a
    stand-in file takes its place while loading and the config keeps the pod's path; a path
    on no Secret fails as it would in the pod.

    Raises:
        ConfigError: the service would refuse the settings.
    """
    config_type = CONFIG_TYPES[service_of(container)]
    environ = settings_of(objects, container)
    setting = config_type.env_name("store_password_file")
    password_file = environ.get(setting, "")
    if not password_file or secret_key_at(workload, container, password_file) is None:
        return load_config(config_type, environ=environ)
    with tempfile.TemporaryDirectory() as stand_in:
        (Path(stand_in) / "password").write_text("stand-in\n", encoding="utf-8")
        environ[setting] = str(Path(stand_in) / "password")
        config = load_config(config_type, environ=environ)
    return dataclasses.replace(config, store_password_file=Path(password_file))


def loaded_configs(objects: list[Manifest]) -> list[tuple[Manifest, dict, ServiceConfig]]:
    """(workload, container, the service config its settings give) for every container."""
    return [
        (workload, container, pod_config(objects, workload, container))
        for workload in workloads(objects)
        for container in containers(workload)
    ]


VALIDATOR = K8S_DIR.parents[1] / "tools" / "validate_crds.mjs"


def validate_crds(objects: list[Manifest]) -> subprocess.CompletedProcess[str]:
    """Runs tools/validate_crds.mjs (Ajv over the vendored CRD schemas) on `objects`."""
    node = shutil.which("node")
    assert node, "node not found: the deploy checks need Node.js (npm packages, `make install`)"
    return subprocess.run(
        [node, str(VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        cwd=K8S_DIR.parents[1],
        timeout=60,
        check=False,
    )
