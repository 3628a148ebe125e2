"""The generator and previs as prod runs them: two replicas each sharing their state in
PostgreSQL (components/high-availability with components/postgresql-cloudnativepg), replaced
one at a time, one kept through voluntary disruptions, on different nodes, the database's
password a read-only file from a Secret, and what is not in the database on volumes every
replica mounts. The orchestrator's replicas (its HPA) keep their callers' ingest quota charges
in the same database, so that every replica counts the same charges. Base and dev keep one
replica of the generator and previs on SQLite, and dev no database at all.

components/postgresql-external is checked on an overlay made here: base, network policies,
high availability and the external database.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    BASE,
    K8S_DIR,
    Connection,
    Endpoint,
    Manifest,
    claim_at,
    connection_allowed,
    containers,
    describe,
    find,
    mount_holding,
    of_kind,
    pod_config,
    pod_endpoint,
    pod_labels,
    pod_spec,
    render,
    secret_key_at,
    selected_workloads,
    selector_matches,
    settings_of,
    volume_of_mount,
    workload_of,
    workloads,
)

STATEFUL = ("generator", "previs")
# The services whose replicas share state in PostgreSQL: the stateful ones, and the
# orchestrator for its callers' quota charges (it scales under its HPA, not through
# components/high-availability).
STORE_USERS = (*STATEFUL, "orchestrator")
# components/postgresql-external's placeholders: the database's host and address.
EXTERNAL_HOST = "postgresql.example.com"
EXTERNAL_ADDRESS = "192.0.2.10"


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """Base with network policies, high availability and components/postgresql-external."""
    root = tmp_path_factory.mktemp("external-postgresql")
    components = ("network-policies", "high-availability", "postgresql-external")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "clipmesh",
        # kustomize takes relative paths only.
        "resources": [os.path.relpath(BASE, root)],
        "components": [os.path.relpath(K8S_DIR / "components" / name, root) for name in components],
    }
    (root / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(root)


def stateful(objects: list[Manifest]) -> list[tuple[Manifest, dict, object]]:
    """(workload, container, config) of the generator and previs."""
    found = []
    for name in STATEFUL:
        workload = workload_of(objects, name)
        [container] = containers(workload)
        found.append((workload, container, pod_config(objects, workload, container)))
    return found


def least_replicas(objects: list[Manifest], workload: Manifest) -> int:
    """The fewest replicas the workload runs: its HPA's minReplicas where one scales it (the
    Deployment then leaves `replicas` unset), else its own count."""
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"]):
            return hpa["spec"].get("minReplicas", 1)
    return workload["spec"].get("replicas", 1)


# --- everywhere -----------------------------------------------------------------------------


def test_only_a_shared_store_runs_several_replicas(objects: list[Manifest]) -> None:
    """On SQLite each replica would keep a store of its own: one replica, and the old pod stops
    before the new one opens the file."""
    for workload, _, config in stateful(objects):
        if not config.store:
            assert workload["spec"]["replicas"] == 1, describe(workload)
            assert workload["spec"]["strategy"]["type"] == "Recreate", describe(workload)
        else:
            assert urlsplit(config.store).scheme == "postgresql", describe(workload)


def test_replicas_share_no_single_node_claim(objects: list[Manifest]) -> None:
    """A ReadWriteOnce claim binds to one node: a second replica elsewhere could not start."""
    for workload in workloads(objects):
        if workload["kind"] != "Deployment" or workload["spec"].get("replicas", 2) == 1:
            continue
        for container in containers(workload):
            for mount in container.get("volumeMounts", []):
                claim = claim_at(objects, workload, container, mount["mountPath"])
                if claim is not None and not mount.get("readOnly"):
                    modes = claim["spec"]["accessModes"]
                    assert modes == ["ReadWriteMany"], f"{describe(workload)}: {describe(claim)}"


# --- prod: replicas, rollouts, disruptions, placement -----------------------------------------


@pytest.mark.parametrize("name", STATEFUL)
def test_prod_runs_replicas_replaced_one_at_a_time(prod: list[Manifest], name: str) -> None:
    """A new pod is ready (its database reachable) before an old one stops."""
    workload = workload_of(prod, name)
    assert workload["spec"]["replicas"] >= 2
    strategy = workload["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("name", STATEFUL)
def test_prod_keeps_a_replica_through_disruptions(prod: list[Manifest], name: str) -> None:
    """minAvailable below the replica count: a drain waits for the other replica, never for
    a human."""
    workload = workload_of(prod, name)
    [budget] = [
        b
        for b in of_kind(prod, "PodDisruptionBudget")
        if workload in selected_workloads(prod, b["spec"]["selector"])
    ]
    assert "maxUnavailable" not in budget["spec"]
    assert 1 <= budget["spec"]["minAvailable"] < workload["spec"]["replicas"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("name", STATEFUL)
def test_prod_replicas_run_on_different_nodes(prod: list[Manifest], name: str) -> None:
    workload = workload_of(prod, name)
    [per_node] = [
        c
        for c in pod_spec(workload)["topologySpreadConstraints"]
        if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert (per_node["maxSkew"], per_node["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    # GPU pools tainted against these pods would otherwise count as empty nodes and keep the
    # second replica Pending where one untainted node is left.
    assert per_node["nodeTaintsPolicy"] == "Honor"
    assert selector_matches(per_node["labelSelector"], pod_labels(workload))
    # Only the pods of one revision count: a rollout's new pod is not kept off a node by the
    # old pod it replaces.
    assert per_node["matchLabelKeys"] == ["pod-template-hash"]


# --- prod: the store ------------------------------------------------------------------------


def test_prod_cluster_is_three_instances_on_different_nodes(prod: list[Manifest]) -> None:
    [cluster] = of_kind(prod, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] >= 3
    assert spec["bootstrap"]["initdb"] == {"database": "clipmesh", "owner": "clipmesh"}
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["storage"]["size"]
    # The Guaranteed QoS class CloudNativePG recommends.
    assert spec["resources"]["requests"] == spec["resources"]["limits"]
    assert not spec.get("enableSuperuserAccess", False)


@pytest.mark.parametrize("name", STORE_USERS)
def test_prod_store_is_the_cluster_primary_over_verified_tls(
    prod: list[Manifest], name: str
) -> None:
    """The read-write Service CloudNativePG moves to the primary on failover, as the owner of
    the database bootstrap made, checked against the cluster's CA; the password is the one the
    operator generated for that owner."""
    [cluster] = of_kind(prod, "Cluster")
    cluster_name, initdb = cluster["metadata"]["name"], cluster["spec"]["bootstrap"]["initdb"]
    workload = workload_of(prod, name)
    [container] = containers(workload)
    config = pod_config(prod, workload, container)
    dsn = urlsplit(config.store)
    assert dsn.password is None
    assert (dsn.hostname, dsn.port) == (f"{cluster_name}-rw", 5432)
    assert (dsn.username, dsn.path) == (initdb["owner"], f"/{initdb['database']}")
    options = parse_qs(dsn.query)
    assert options["sslmode"] == ["verify-full"]
    [root_cert] = options["sslrootcert"]
    assert secret_key_at(workload, container, root_cert) == (f"{cluster_name}-ca", "ca.crt")
    password_file = str(config.store_password_file)
    assert secret_key_at(workload, container, password_file) == (f"{cluster_name}-app", "password")


def test_prod_orchestrator_replicas_count_quota_charges_in_the_shared_database(
    prod: list[Manifest],
) -> None:
    """Each orchestrator pod would count only its own charges on SQLite under its emptyDir, so
    a caller could ingest its daily limit once per replica: its several replicas use the
    database the generator and previs use."""
    assert least_replicas(prod, workload_of(prod, "orchestrator")) >= 2
    stores = set()
    for name in STORE_USERS:
        workload = workload_of(prod, name)
        [container] = containers(workload)
        config = pod_config(prod, workload, container)
        stores.add((config.store, config.store_password_file))
    [(store, _)] = stores
    assert urlsplit(store).scheme == "postgresql"


@pytest.mark.parametrize("name", STORE_USERS)
def test_prod_password_is_a_read_only_file_never_an_environment_variable(
    prod: list[Manifest], name: str
) -> None:
    workload = workload_of(prod, name)
    [container] = containers(workload)
    config = pod_config(prod, workload, container)
    assert_password_is_a_mounted_file(workload, container, str(config.store_password_file))


def assert_password_is_a_mounted_file(workload: Manifest, container: dict, path: str) -> None:
    """Mounted read-only as a directory (so a rotated password arrives), group-readable by the
    pod's group only; no environment variable carries a Secret."""
    mount = mount_holding(container, path)
    assert mount is not None and mount.get("readOnly") and "subPath" not in mount
    volume = volume_of_mount(workload, mount)
    source = volume.get("secret") or volume["projected"]
    assert source["defaultMode"] == 0o440
    for var in container.get("env", []):
        assert "secretKeyRef" not in var.get("valueFrom", {}), var["name"]
    assert not any("secretRef" in source for source in container.get("envFrom", []))


def test_prod_shared_files_are_on_read_write_many_claims(prod: list[Manifest]) -> None:
    """Any replica serves any job's video and finishes any previs run; the generator's data
    dir only holds the scratch files of the jobs its pod runs."""
    generator = workload_of(prod, "generator")
    [container] = containers(generator)
    config = pod_config(prod, generator, container)
    outputs = claim_at(prod, generator, container, str(config.outputs_path()))
    assert outputs is not None and outputs["spec"]["accessModes"] == ["ReadWriteMany"]
    scratch = volume_of_mount(generator, mount_holding(container, str(config.data_dir)))
    assert "emptyDir" in scratch
    previs = workload_of(prod, "previs")
    [container] = containers(previs)
    config = pod_config(prod, previs, container)
    data = claim_at(prod, previs, container, str(config.data_dir))
    assert data is not None and data["spec"]["accessModes"] == ["ReadWriteMany"]
    # The cluster's default StorageClass, or the one an overlay names.
    assert "storageClassName" not in outputs["spec"] and "storageClassName" not in data["spec"]


# --- dev: one replica on SQLite -------------------------------------------------------------


def test_dev_keeps_one_replica_on_sqlite_without_a_database(dev: list[Manifest]) -> None:
    assert not of_kind(dev, "Cluster")
    # The orchestrator too: one replica in dev, its quota charges under its data dir, no
    # database's Secret to mount.
    orchestrator = workload_of(dev, "orchestrator")
    [container] = containers(orchestrator)
    assert pod_config(dev, orchestrator, container).store == ""
    assert least_replicas(dev, orchestrator) == 1
    assert mount_holding(container, "/var/run/secrets/clipmesh/postgresql/password") is None
    for workload, container, config in stateful(dev):
        assert (workload["spec"]["replicas"], config.store) == (1, ""), describe(workload)
        assert workload["spec"]["strategy"]["type"] == "Recreate"
        claim = claim_at(dev, workload, container, str(config.data_dir))
        assert claim is not None and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not any(
        claim["spec"]["accessModes"] == ["ReadWriteMany"]
        for claim in of_kind(dev, "PersistentVolumeClaim")
    ), "a laptop's default StorageClass provides no ReadWriteMany"


# --- components/postgresql-external ---------------------------------------------------------


def test_external_objects_pass_the_kubernetes_schemas(external: list[Manifest]) -> None:
    for obj in external:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
    assert not of_kind(external, "Cluster")


@pytest.mark.parametrize("name", STORE_USERS)
def test_external_store_comes_from_the_secret_the_operator_creates(
    external: list[Manifest], name: str
) -> None:
    workload = workload_of(external, name)
    [container] = containers(workload)
    config = pod_config(external, workload, container)
    dsn = urlsplit(config.store)
    assert dsn.password is None and dsn.hostname == EXTERNAL_HOST
    [root_cert] = parse_qs(dsn.query)["sslrootcert"]
    assert secret_key_at(workload, container, root_cert) == ("clipmesh-postgresql", "ca.crt")
    password_file = str(config.store_password_file)
    assert secret_key_at(workload, container, password_file) == ("clipmesh-postgresql", "password")
    assert_password_is_a_mounted_file(workload, container, password_file)
    assert least_replicas(external, workload) >= 2
    assert not any(k.endswith("_PASSWORD") for k in settings_of(external, container))


def test_external_database_is_reachable_by_the_store_users_only(
    external: list[Manifest],
) -> None:
    policies = of_kind(external, "NetworkPolicy")
    database = Endpoint(ip=EXTERNAL_ADDRESS)
    for name in ("generator", "previs", "orchestrator", "encoder", "index"):
        source = pod_endpoint(workload_of(external, name))
        allowed = connection_allowed(policies, Connection(source, database, 5432))
        assert allowed == (name in STORE_USERS), name
    for name in STORE_USERS:
        source = pod_endpoint(workload_of(external, name))
        assert not connection_allowed(policies, Connection(source, database, 22)), name
    generator = pod_endpoint(workload_of(external, "generator"))
    # The rule points at the database now, not at CloudNativePG's pods.
    instance = Endpoint("clipmesh", {"cnpg.io/cluster": "clipmesh-postgresql"})
    assert not connection_allowed(policies, Connection(generator, instance, 5432))
    assert find(external, "NetworkPolicy", "clipmesh-store-egress")
