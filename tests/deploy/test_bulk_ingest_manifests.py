"""The bulk ingest on Ray (components/bulk-ingest, run into prod by overlays/bulk-ingest): the
overlay renders the job's objects and nothing of the mesh; the RayJob passes KubeRay's CRD
schema (tools/crds/, tools/validate_crds.mjs) and its pods Kubernetes' own; its entrypoint is
a `clipmesh bulk-ingest` the CLI accepts; every setting its pods get is a real one, the model
is the prod encoder's and the media limits the orchestrator's; the head schedules no work, the
GPU group asks for GPUs and the CPU group for none, the worker counts match the groups; paths
lie on the volumes they need; the index is reached where and as the orchestrator reaches it;
the pods run locked down like the mesh's; and prod's network policies let the job's pods do
what a run needs and nothing more, leaving the mesh's flows as they were.

KubeRay adds to the pods it makes from these templates (labels, the /dev/shm volume, probes,
the `ray start` command); the endpoints below carry the labels it adds, as
ray-operator/controllers/ray/common/pod.go (labelPod) sets them.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ServiceConfig, fields_of, load_config
from tests.deploy.conftest import _build
from tests.deploy.manifests import (
    K8S_DIR,
    Connection,
    Endpoint,
    Manifest,
    claim_at,
    connection_allowed,
    container_ports,
    containers,
    describe,
    exists,
    find,
    mount_holding,
    of_kind,
    pod_config,
    pod_endpoint,
    pod_labels,
    pod_spec,
    quantity,
    render,
    secret_key_at,
    selector_matches,
    settings_of,
    validate_crds,
    volume_of_mount,
    workload_of,
    writable,
)
from tests.deploy.promql import ROOT
from tests.deploy.test_kustomize_workloads import (
    CONTAINER_SECURITY,
    KUBERNETES_VERSION,
    POD_SECURITY,
)

BULK = K8S_DIR / "overlays" / "bulk-ingest"
COMPONENT = K8S_DIR / "components" / "bulk-ingest"
NAMESPACE = "clipmesh"
RAYJOB = "clipmesh-bulk-ingest"
WORKER_GROUPS = ("cpu-decode", "gpu-embed")
GROUPS = ("head", *WORKER_GROUPS)
TLS_SECRET = "clipmesh-bulk-ingest-tls"
TLS_MOUNT = "/var/run/secrets/clipmesh/tls"
S3_SECRET = "clipmesh-bulk-ingest-s3"
# The CPUs an embedding actor asks Ray for when it holds a GPU, and a decoding actor's
# (services/clipmesh/bulk/pipeline.py).
EMBED_ACTOR_CPUS = 0.5
DECODE_ACTOR_CPUS = 1
# From 2.53 KubeRay probes Ray over HTTP; before, with wget, which the image lacks.
HTTP_PROBES_FROM = (2, 53)
# Names other than settings the containers may set: the root filesystem is read-only (HOME),
# Ray's phone-home is off, and S3 credentials for the AWS SDK under pyarrow.
OTHER_ENV = {"HOME", "RAY_USAGE_STATS_ENABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# The KubeRay operator, as its Helm chart labels it, where network-policies/bulk-ingest.yaml
# expects it.
KUBERAY_OPERATOR = Endpoint("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})


@pytest.fixture(scope="module")
def bulk() -> list[Manifest]:
    return _build(BULK)


@pytest.fixture(scope="module")
def rayjob(bulk: list[Manifest]) -> Manifest:
    return find(bulk, "RayJob", RAYJOB)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The component on its own, as for a mesh without TLS (dev's namespace)."""
    root = tmp_path_factory.mktemp("bulk-ingest-plain")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "clipmesh-dev",
        "components": [os.path.relpath(COMPONENT, root)],
    }
    (root / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(root)


# --- the RayJob's pods, as workloads the helpers of manifests.py read -----------------------


def group_spec(rayjob: Manifest, group: str) -> dict[str, Any]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    if group == "head":
        return cluster["headGroupSpec"]
    [spec] = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == group]
    return spec


def pods_of(rayjob: Manifest, group: str) -> Manifest:
    """A group's pod template (or the submitter's, group `submitter`) as a workload."""
    if group == "submitter":
        template = rayjob["spec"]["submitterPodTemplate"]
    else:
        template = group_spec(rayjob, group)["template"]
    return {
        "kind": "RayJob",
        "metadata": {"name": f"{RAYJOB}/{group}", "namespace": rayjob["metadata"]["namespace"]},
        "spec": {"template": template},
    }


def ray_container(rayjob: Manifest, group: str) -> dict[str, Any]:
    """The Ray container: KubeRay runs Ray in a pod's first container."""
    return containers(pods_of(rayjob, group))[0]


def start_params(rayjob: Manifest, group: str) -> dict[str, str]:
    return group_spec(rayjob, group).get("rayStartParams", {})


def kuberay_labels(group: str) -> dict[str, str]:
    """The labels KubeRay puts on a Ray pod, besides the template's (labelPod)."""
    node_type = "head" if group == "head" else "worker"
    return {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": f"{RAYJOB}-x7k2p",
        "ray.io/node-type": node_type,
        "ray.io/group": "headgroup" if group == "head" else group,
        "ray.io/identifier": f"{RAYJOB}-x7k2p-{node_type}",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }


def ray_endpoint(rayjob: Manifest, group: str) -> Endpoint:
    """A pod of the group as KubeRay makes it: its template's labels over KubeRay's, except the
    node type, group and cluster, which KubeRay keeps."""
    pods = pods_of(rayjob, group)
    endpoint = pod_endpoint(pods)
    labels = kuberay_labels(group)
    fixed = {k: labels[k] for k in ("ray.io/node-type", "ray.io/group", "ray.io/cluster")}
    return Endpoint(NAMESPACE, {**labels, **endpoint.labels, **fixed}, endpoint.ports)


def submitter_endpoint(rayjob: Manifest) -> Endpoint:
    endpoint = pod_endpoint(pods_of(rayjob, "submitter"))
    kuberay = {
        "ray.io/originated-from-cr-name": RAYJOB,
        "ray.io/originated-from-crd": "RayJob",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    return Endpoint(NAMESPACE, {**endpoint.labels, **kuberay}, endpoint.ports)


def environ(objects: list[Manifest], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment: ConfigMaps and literal values, and a placeholder for each
    value from a Secret (they are not in the manifests)."""
    env = settings_of(objects, container)
    for var in container.get("env", []):
        if "valueFrom" in var:
            env[var["name"]] = f"placeholder-{var['name'].lower()}"
    return env


def bulk_config(objects: list[Manifest], container: dict[str, Any]) -> BulkIngestConfig:
    return load_config(BulkIngestConfig, environ=environ(objects, container))


def encoder_config(objects: list[Manifest], container: dict[str, Any]) -> EncoderConfig:
    return load_config(EncoderConfig, environ=environ(objects, container))


def prod_config(prod: list[Manifest], component_name: str) -> ServiceConfig:
    workload = workload_of(prod, component_name)
    [container] = containers(workload)
    return pod_config(prod, workload, container)


def entrypoint_args(rayjob: Manifest) -> list[str]:
    args = shlex.split(rayjob["spec"]["entrypoint"])
    assert args[:2] == ["clipmesh", "bulk-ingest"], args
    return args[2:]


# --- what renders ---------------------------------------------------------------------------


def test_the_overlay_renders_the_job_and_nothing_of_the_mesh(
    bulk: list[Manifest], prod: list[Manifest]
) -> None:
    """Applying it starts a run and changes nothing of prod; prod itself starts none."""
    kinds = sorted(describe(obj) for obj in bulk)
    assert kinds == [
        "Certificate/clipmesh-bulk-ingest",
        "ConfigMap/clipmesh-bulk-ingest",
        "PersistentVolumeClaim/clipmesh-bulk-ingest-reports",
        "PersistentVolumeClaim/clipmesh-thumbnails",
        "PodMonitor/clipmesh-bulk-ingest",
        "RayJob/clipmesh-bulk-ingest",
        "ServiceAccount/clipmesh-bulk-ingest",
    ]
    assert all(obj["metadata"]["namespace"] == NAMESPACE for obj in bulk)
    assert not of_kind(prod, "RayJob")
    # Its objects are its own: none has the name of one of prod's.
    assert not {describe(obj) for obj in bulk} & {describe(obj) for obj in prod}


def test_every_overlay_renders() -> None:
    """What `make render-k8s` does for each directory of overlays/."""
    overlays = sorted(path for path in (K8S_DIR / "overlays").iterdir() if path.is_dir())
    assert BULK in overlays
    for overlay in overlays:
        assert _build(overlay), overlay.name


def test_the_component_alone_is_the_job_in_plaintext(plain: list[Manifest]) -> None:
    """Without overlays/bulk-ingest's TLS, for a mesh without components/tls."""
    rayjob = find(plain, "RayJob", RAYJOB)
    for group in GROUPS:
        container = ray_container(rayjob, group)
        config = bulk_config(plain, container)
        assert not (config.tls_cert_file or config.tls_key_file or config.tls_ca_file), group
        assert mount_holding(container, f"{TLS_MOUNT}/tls.crt") is None, group
    assert not of_kind(plain, "Certificate") and not of_kind(plain, "PodMonitor")


def test_objects_pass_the_strict_schemas_of_kubernetes(bulk: list[Manifest]) -> None:
    """Kubernetes' own kinds, and the RayJob's pod templates as the pods and the Job KubeRay
    makes of them (the CRD checks their fields, not Kubernetes' rules on them)."""
    rayjob = find(bulk, "RayJob", RAYJOB)
    checked = [obj for obj in bulk if obj["apiVersion"] in ("v1", "apps/v1")]
    for group in (*GROUPS, "submitter"):
        template = pods_of(rayjob, group)["spec"]["template"]
        metadata = {**template.get("metadata", {}), "name": f"{RAYJOB}-{group}"}
        checked.append(
            {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}
        )
    checked.append(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": RAYJOB},
            "spec": {"template": rayjob["spec"]["submitterPodTemplate"]},
        }
    )
    problems = []
    for obj in checked:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{describe(obj)}: {where}: {exc.message}")
    assert not problems, "\n".join(problems)


# --- the custom resources -------------------------------------------------------------------


def test_the_custom_resources_validate_against_their_crds(bulk: list[Manifest]) -> None:
    """The RayJob against KubeRay's CRD (tools/crds/ray.io_v1_RayJob.json), the Certificate and
    the PodMonitor against cert-manager's and prometheus-operator's."""
    custom = [obj for obj in bulk if obj["apiVersion"] not in ("v1", "apps/v1")]
    assert sorted(obj["kind"] for obj in custom) == ["Certificate", "PodMonitor", "RayJob"]
    result = validate_crds(custom)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(custom)


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (
            ("spec", "rayClusterSpec", "headGroupSpec", "rayStartParams", "num-cpus"),
            0,
            "num-cpus must be string",
        ),
        # Fields the CRD does not have are refused, as the API server's strict field
        # validation would: a misspelt field must not vanish silently.
        (("spec", "shutdownAfterJobFinish"), True, "additional properties: shutdownAfterJobFinish"),
        (
            ("spec", "rayClusterSpec", "workerGroupSpecs", 1, "template", "spec", "toleration"),
            [],
            "additional properties: toleration",
        ),
        (("spec", "backoffLimit"), "1", "backoffLimit must be integer"),
    ],
    ids=["type", "unknown-field", "unknown-pod-field", "integer"],
)
def test_the_validator_rejects_what_kuberay_would_reject(
    rayjob: Manifest, path: tuple[str | int, ...], value: object, why: str
) -> None:
    broken = copy.deepcopy(rayjob)
    *parents, leaf = path
    node = broken
    for key in parents:
        node = node[key]
    node[leaf] = value
    result = validate_crds([broken])
    assert result.returncode == 1 and why in result.stdout, result.stdout


def test_the_job_runs_once_and_gives_its_cluster_back(rayjob: Manifest) -> None:
    spec = rayjob["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert 0 < spec["ttlSecondsAfterFinished"] <= 3600
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["backoffLimit"] >= 0
    # KubeRay names the cluster after the job plus a suffix, within 53 characters.
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", RAYJOB) and len(RAYJOB) <= 47
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is False  # nothing calls the Kubernetes API
    version = tuple(int(part) for part in cluster["rayVersion"].split("."))
    assert version >= HTTP_PROBES_FROM, "KubeRay would probe with wget, which the image lacks"
    for group in WORKER_GROUPS:
        spec = group_spec(rayjob, group)
        assert spec["minReplicas"] <= spec["replicas"] <= spec["maxReplicas"], group


def test_the_ray_version_is_one_the_image_may_carry(rayjob: Manifest) -> None:
    """rayVersion tells KubeRay which Ray the images run: it must be one the `bulk` extra
    (installed in both images) allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [ray] = [
        Requirement(line)
        for line in project["optional-dependencies"]["bulk"]
        if Requirement(line).name == "ray"
    ]
    version = rayjob["spec"]["rayClusterSpec"]["rayVersion"]
    assert ray.specifier.contains(Version(version)), f"{version} is not {ray}"


def test_the_entrypoint_is_a_bulk_ingest_the_cli_accepts(rayjob: Manifest) -> None:
    """SOURCE on the head's media volume, the cluster the RayJob made, the report on a claim
    the head writes; parsed by the command itself, so a wrong option fails here."""
    from clipmesh.cli.main import cli

    args = entrypoint_args(rayjob)
    context = cli.commands["bulk-ingest"].make_context("bulk-ingest", list(args))
    params = context.params
    assert params["ray_address"] == "auto"
    assert params["collection"]
    head = pods_of(rayjob, "head")
    container = ray_container(rayjob, "head")
    source = params["source"]
    if not source.startswith("s3://"):
        mount = mount_holding(container, source)
        assert mount is not None and mount.get("readOnly"), f"{source} is on no read-only mount"
    report = str(params["report_path"])
    assert writable(head, container, str(Path(report).parent)), report
    assert "persistentVolumeClaim" in volume_of_mount(head, mount_holding(container, report))


# --- settings -------------------------------------------------------------------------------


def known_settings(config_type: type[ServiceConfig]) -> set[str]:
    return {config_type.env_name(field.name) for field in fields_of(config_type)}


def test_every_setting_is_a_real_one(bulk: list[Manifest], rayjob: Manifest) -> None:
    """CLIPMESH_BULK_INGEST_* of BulkIngestConfig, CLIPMESH_ENCODER_* of EncoderConfig, a few
    others by name: a misspelt setting would be silently ignored by the job."""
    bulk_names, encoder_names = known_settings(BulkIngestConfig), known_settings(EncoderConfig)
    problems = []
    for group in GROUPS:
        container = ray_container(rayjob, group)
        for name in environ(bulk, container):
            if name.startswith("CLIPMESH_BULK_INGEST_"):
                known = name in bulk_names
            elif name.startswith("CLIPMESH_ENCODER_"):
                known = name in encoder_names
            else:
                known = name in OTHER_ENV
            if not known:
                problems.append(f"{group}: {name} is no setting")
        # Both configs load: bounds, choices and cross-field checks hold.
        bulk_config(bulk, container)
        encoder_config(bulk, container)
    assert not problems, "\n".join(problems)


def test_the_model_is_the_prod_encoders(bulk: list[Manifest], rayjob: Manifest, prod) -> None:
    """The vectors written must be the ones searches compare against."""
    mesh = prod_config(prod, "encoder")
    job = encoder_config(bulk, ray_container(rayjob, "head"))
    assert model_settings(job) == model_settings(mesh)


def model_settings(config: EncoderConfig) -> tuple[str, ...]:
    """The settings that make an encoder's vectors (and the languages it reports)."""
    return (
        config.model,
        config.weights,
        config.tokenizer,
        config.text_languages,
        config.precision,
        config.device,
    )


def test_files_are_held_to_the_orchestrators_limits(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """A file IngestVideos refuses is refused here too, and cut into the same segments."""
    orchestrator = prod_config(prod, "orchestrator")
    config = bulk_config(bulk, ray_container(rayjob, "head"))
    assert config.media_limits() == orchestrator.media_limits()
    assert config.max_window_s == orchestrator.max_window_s
    assert config.allowed_roots == orchestrator.allowed_roots
    assert config.thumbnails_dir == orchestrator.data_dir / "thumbnails"


def test_the_index_target_is_the_index_as_the_orchestrator_dials_it(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """`dns:///<service>:<port>`: prod's headless index Service, on the port it exposes for
    gRPC, which leads to the index's pods."""
    config = bulk_config(bulk, ray_container(rayjob, "head"))
    assert config.index_target == prod_config(prod, "orchestrator").index_target
    assert not config.encoder_target  # the GPU workers embed
    match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", config.index_target)
    assert match, config.index_target
    service = find(prod, "Service", match[1])
    assert service["spec"].get("clusterIP") == "None"
    [grpc] = [port for port in service["spec"]["ports"] if port["port"] == int(match[2])]
    assert grpc["name"] == "grpc"
    index = workload_of(prod, "index")
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(index))
    [container] = containers(index)
    assert container_ports(container)[grpc["targetPort"]] == int(match[2])


def test_every_ray_pod_reaches_the_index_over_mtls(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """The driver writes and every worker asks the index: each presents the job's own client
    certificate, from the CA the index's certificate comes from, and verifies the index's."""
    index = prod_config(prod, "index")
    assert index.tls_client_auth and index.tls_ca_file
    certificate = find(bulk, "Certificate", "clipmesh-bulk-ingest")
    assert certificate["spec"]["secretName"] == TLS_SECRET
    assert "client auth" in certificate["spec"]["usages"]
    assert "server auth" not in certificate["spec"]["usages"]
    index_certificate = find(prod, "Certificate", "clipmesh-index")
    assert certificate["spec"]["issuerRef"] == index_certificate["spec"]["issuerRef"]
    assert exists(prod, "Issuer", certificate["spec"]["issuerRef"]["name"])
    for group in GROUPS:
        pods, container = pods_of(rayjob, group), ray_container(rayjob, group)
        config = bulk_config(bulk, container)
        files = {"tls.crt": config.tls_cert_file, "tls.key": config.tls_key_file}
        files["ca.crt"] = config.tls_ca_file
        for key, path in files.items():
            assert secret_key_at(pods, container, path) == (TLS_SECRET, key), (group, path)
        mount = mount_holding(container, config.tls_cert_file)
        assert mount["mountPath"] == TLS_MOUNT and not mount.get("subPath"), group


def test_paths_lie_on_the_volumes_they_need(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """Each group mounts what its Ray actors open: the media and the thumbnails and spool the
    decoding workers write, the weights the embedding workers load; /tmp, Ray's /tmp/ray and
    HOME are writable everywhere."""
    objects = bulk + prod
    config = bulk_config(bulk, ray_container(rayjob, "head"))
    decode, decoder = pods_of(rayjob, "cpu-decode"), ray_container(rayjob, "cpu-decode")
    for root in config.allowed_roots:
        for group in ("head", "cpu-decode"):
            mount = mount_holding(ray_container(rayjob, group), root)
            assert mount is not None and mount.get("readOnly"), (group, root)
    assert writable(decode, decoder, str(config.thumbnails_dir))
    thumbnails = claim_at(objects, decode, decoder, str(config.thumbnails_dir))
    assert thumbnails is not None and thumbnails["metadata"]["name"] == "clipmesh-thumbnails"
    assert thumbnails["spec"]["accessModes"] == ["ReadWriteMany"]  # several pods write
    assert writable(decode, decoder, str(config.spool_dir))
    weights = WeightsSpec.parse(encoder_config(bulk, ray_container(rayjob, "head")).weights)
    assert weights.kind == "checkpoint"
    embed, embedder = pods_of(rayjob, "gpu-embed"), ray_container(rayjob, "gpu-embed")
    models = claim_at(objects, embed, embedder, weights.ref)
    assert models is not None and mount_holding(embedder, weights.ref).get("readOnly")
    assert models["metadata"]["name"] == "clipmesh-models"
    for group in (*GROUPS, "submitter"):
        pods = pods_of(rayjob, group)
        for container in containers(pods):
            home = {v["name"]: v.get("value") for v in container.get("env", [])}.get("HOME")
            assert home and writable(pods, container, home), group
            assert writable(pods, container, "/tmp"), group
            if group != "submitter":
                assert writable(pods, container, "/tmp/ray"), group


def test_everything_the_pods_mount_or_read_exists(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """Each mount names a volume of its pod; claims, ConfigMaps and service accounts are
    rendered here or in prod; Secrets are cert-manager's for the job's Certificate or the
    optional S3 credentials an SRE may create."""
    objects = bulk + prod
    issued = {c["spec"]["secretName"] for c in of_kind(bulk, "Certificate")}
    for group in (*GROUPS, "submitter"):
        pods = pods_of(rayjob, group)
        spec = pod_spec(pods)
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        assert exists(bulk, "ServiceAccount", spec["serviceAccountName"]), group
        for container in containers(pods):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (group, mount["name"])
            for source in container.get("envFrom", []):
                assert exists(bulk, "ConfigMap", source["configMapRef"]["name"]), group
            for var in container.get("env", []):
                secret = var.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert secret["name"] == S3_SECRET and secret["optional"] is True, group
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert exists(objects, "PersistentVolumeClaim", claim), (group, claim)
            if "secret" in volume:
                assert volume["secret"]["secretName"] in issued, group


# --- scheduling -----------------------------------------------------------------------------


def gpus(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources", {})
    return {
        kind: resources.get(kind, {}).get("nvidia.com/gpu")
        for kind in ("requests", "limits")
        if "nvidia.com/gpu" in resources.get(kind, {})
    }


def test_the_head_schedules_no_work(rayjob: Manifest) -> None:
    """No actor lands on the head: it runs the GCS, the dashboard and the driver."""
    assert start_params(rayjob, "head")["num-cpus"] == "0"
    assert "num-gpus" not in start_params(rayjob, "head")
    assert not gpus(ray_container(rayjob, "head"))
    assert not rayjob["spec"].get("entrypointNumCpus") and not rayjob["spec"].get(
        "entrypointNumGpus"
    ), "the driver must ask for nothing, or Ray would not keep it on the head"


def test_the_gpu_group_asks_for_gpus_and_the_cpu_group_for_none(
    rayjob: Manifest, prod: list[Manifest]
) -> None:
    """On the nodes the prod encoder runs on, with the same image."""
    embed, embedder = pods_of(rayjob, "gpu-embed"), ray_container(rayjob, "gpu-embed")
    assert {kind: str(count) for kind, count in gpus(embedder).items()} == {
        "requests": "1",
        "limits": "1",
    }
    assert start_params(rayjob, "gpu-embed")["num-gpus"] == "1"
    encoder = workload_of(prod, "encoder")
    for key in ("nodeSelector", "tolerations"):
        assert pod_spec(embed)[key] == pod_spec(encoder)[key], key
    assert embedder["image"] == containers(encoder)[0]["image"]
    decoder = ray_container(rayjob, "cpu-decode")
    assert not gpus(decoder)
    assert "num-gpus" not in start_params(rayjob, "cpu-decode")
    assert "tolerations" not in pod_spec(pods_of(rayjob, "cpu-decode"))
    orchestrator = workload_of(prod, "orchestrator")
    for group in ("head", "cpu-decode", "submitter"):
        image = containers(pods_of(rayjob, group))[0]["image"]
        assert image == containers(orchestrator)[0]["image"], group


def test_worker_counts_match_the_groups(bulk: list[Manifest], rayjob: Manifest) -> None:
    """One decoding actor per CPU Ray counts on the cpu-decode pods, one embedding actor per
    GPU; no decoding actor fits beside the embedding actors of a GPU pod (so none needs the
    media there), and Ray counts the CPUs the container has."""
    config = bulk_config(bulk, ray_container(rayjob, "head"))
    decode, embed = group_spec(rayjob, "cpu-decode"), group_spec(rayjob, "gpu-embed")
    decode_cpus = int(start_params(rayjob, "cpu-decode")["num-cpus"])
    limits = ray_container(rayjob, "cpu-decode")["resources"]["limits"]
    assert decode_cpus == quantity(limits["cpu"])
    assert config.cpu_workers == decode["replicas"] * decode_cpus
    embed_gpus = float(start_params(rayjob, "gpu-embed")["num-gpus"])
    assert config.embed_gpus > 0 and config.separate_embedding
    per_pod = embed_gpus / config.embed_gpus
    assert config.embed_workers == embed["replicas"] * per_pod
    embed_cpus = float(start_params(rayjob, "gpu-embed")["num-cpus"])
    embed_limit = quantity(ray_container(rayjob, "gpu-embed")["resources"]["limits"]["cpu"])
    assert per_pod * EMBED_ACTOR_CPUS <= embed_cpus <= embed_limit
    assert embed_cpus - per_pod * EMBED_ACTOR_CPUS < DECODE_ACTOR_CPUS


def test_ray_containers_request_what_they_are_limited_to(rayjob: Manifest) -> None:
    """Ray sizes itself (CPUs, object store) on the limits; the submitter only asks."""
    for group in GROUPS:
        resources = ray_container(rayjob, group)["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            assert request == quantity(resources["limits"][resource]), (group, resource)
    resources = ray_container(rayjob, "submitter")["resources"]
    for resource in ("cpu", "memory"):
        assert quantity(resources["requests"][resource]) <= quantity(resources["limits"][resource])


def test_the_pods_run_locked_down_like_the_mesh(bulk: list[Manifest], rayjob: Manifest) -> None:
    """Non-root, read-only root filesystem, no privileges, no API token: what base's workloads
    run with (the namespace enforces the `restricted` Pod Security Standard)."""
    problems = []
    for group in (*GROUPS, "submitter"):
        pods = pods_of(rayjob, group)
        spec = pod_spec(pods)
        for key, expected in POD_SECURITY.items():
            if spec.get("securityContext", {}).get(key) != expected:
                problems.append(f"{group}: pod {key} is not {expected}")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{group}: mounts a service account token")
        for container in containers(pods):
            security = container.get("securityContext", {})
            for key, expected in CONTAINER_SECURITY.items():
                if security.get(key) != expected:
                    problems.append(f"{group}: container {key} is not {expected}")
    account = find(bulk, "ServiceAccount", "clipmesh-bulk-ingest")
    assert account["automountServiceAccountToken"] is False
    assert rayjob["spec"]["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"
    assert not problems, "\n".join(problems)


def test_the_objects_and_pods_carry_the_label_contract(
    bulk: list[Manifest], rayjob: Manifest
) -> None:
    for obj in bulk:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "clipmesh", describe(obj)
        assert labels.get("app.kubernetes.io/part-of") == "clipmesh", describe(obj)
    for group in GROUPS:
        labels = ray_endpoint(rayjob, group).labels
        assert labels["app.kubernetes.io/component"] == "bulk-ingest", group
        assert labels["app.kubernetes.io/name"] == "clipmesh", group  # over KubeRay's `kuberay`
    labels = submitter_endpoint(rayjob).labels
    assert labels["app.kubernetes.io/component"] == "bulk-ingest-submitter"


# --- monitoring -----------------------------------------------------------------------------


def test_the_jobs_pods_have_a_monitor_of_their_own(
    bulk: list[Manifest], rayjob: Manifest, prod: list[Manifest]
) -> None:
    """The driver's port on the head and Ray's everywhere, under a job name ClipmeshTargetDown
    does not watch; the mesh's monitor leaves the job's pods alone (they come and go)."""
    mesh = find(prod, "PodMonitor", "clipmesh")
    monitor = find(bulk, "PodMonitor", "clipmesh-bulk-ingest")
    assert monitor["metadata"]["labels"]["release"] == mesh["metadata"]["labels"]["release"]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]}
    assert ports == {"driver-metrics", "metrics"}
    config = bulk_config(bulk, ray_container(rayjob, "head"))
    head_ports = container_ports(ray_container(rayjob, "head"))
    assert head_ports["driver-metrics"] == config.metrics_port
    assert head_ports["metrics"] == int(start_params(rayjob, "head")["metrics-export-port"])
    for group in GROUPS:
        labels = ray_endpoint(rayjob, group).labels
        assert selector_matches(monitor["spec"]["selector"], labels), group
        assert not selector_matches(mesh["spec"]["selector"], labels), group
        ray_metrics = int(start_params(rayjob, group)["metrics-export-port"])
        assert container_ports(ray_container(rayjob, group))["metrics"] == ray_metrics, group
    assert not selector_matches(mesh["spec"]["selector"], submitter_endpoint(rayjob).labels)
    for workload in (o for o in prod if o["kind"] in {"Deployment", "StatefulSet"}):
        assert selector_matches(mesh["spec"]["selector"], pod_labels(workload))
        assert not selector_matches(monitor["spec"]["selector"], pod_labels(workload))


# --- network policies (prod's, components/network-policies) ---------------------------------


OUTSIDE = {
    "kuberay-operator": KUBERAY_OPERATOR,
    "prometheus": Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    "kube-dns": Endpoint("kube-system", {"k8s-app": "kube-dns"}),
    "ingress-controller": Endpoint("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    "s3": Endpoint(ip="52.216.8.10"),  # an AWS S3 address
    "s3-v6": Endpoint(ip="2600:1fa0:4000::10"),
    "vpc-minio": Endpoint(ip="10.20.0.9"),
    "cloud-metadata": Endpoint(ip="169.254.169.254"),
    # The job's labels in another namespace: not the job's pods.
    "elsewhere": Endpoint(
        "team-x",
        {"app.kubernetes.io/name": "clipmesh", "app.kubernetes.io/component": "bulk-ingest"},
    ),
}
MESH = ("orchestrator", "previs", "encoder", "index", "generator")
GCS, DASHBOARD, RAY_METRICS, DRIVER_METRICS, INDEX = 6379, 8265, 8080, 9155, 50052


class Edge(NamedTuple):
    source: str
    destination: str
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.source}->{self.destination}:{self.port}/{self.protocol}"


def endpoint(rayjob: Manifest, prod: list[Manifest], name: str) -> Endpoint:
    if name in GROUPS:
        return ray_endpoint(rayjob, name)
    if name == "submitter":
        return submitter_endpoint(rayjob)
    if name in MESH:
        return pod_endpoint(workload_of(prod, name))
    return OUTSIDE[name]


ALLOWED = [
    # The driver writes, every worker asks which videos the index holds.
    *[Edge(group, "index", INDEX) for group in GROUPS],
    # Ray among its pods: the GCS, the raylets, object managers and workers on their ports.
    *[Edge(group, "head", GCS) for group in WORKER_GROUPS],
    Edge("head", "cpu-decode", 40123),
    Edge("cpu-decode", "gpu-embed", 10005),
    Edge("gpu-embed", "cpu-decode", 52365),
    Edge("cpu-decode", "cpu-decode", 45001),
    # The job API: the submitter submits and follows, the operator polls the job's status.
    Edge("submitter", "head", DASHBOARD),
    Edge("kuberay-operator", "head", DASHBOARD),
    # Metrics: the driver's on the head, Ray's everywhere.
    Edge("prometheus", "head", DRIVER_METRICS),
    *[Edge("prometheus", group, RAY_METRICS) for group in GROUPS],
    # Names, and object storage for s3:// sources (the driver lists, the decoders fetch).
    *[Edge(name, "kube-dns", 53, "UDP") for name in (*GROUPS, "submitter")],
    Edge("head", "s3", 443),
    Edge("cpu-decode", "s3", 443),
    Edge("cpu-decode", "s3-v6", 443),
]
DENIED = [
    # Nothing of the mesh but the index's gRPC port; no encoder (the GPU workers embed).
    *[Edge(group, "encoder", 50051) for group in GROUPS],
    Edge("cpu-decode", "orchestrator", 50050),
    Edge("head", "generator", 50053),
    Edge("cpu-decode", "previs", 50054),
    Edge("cpu-decode", "index", 9152),
    # The mesh's pods do not reach Ray, and the index's new callers are the job's pods only.
    Edge("orchestrator", "head", DASHBOARD),
    Edge("index", "head", GCS),
    Edge("encoder", "cpu-decode", 10005),
    Edge("encoder", "index", INDEX),
    Edge("generator", "index", INDEX),
    Edge("submitter", "index", INDEX),
    Edge("elsewhere", "index", INDEX),
    Edge("elsewhere", "head", GCS),
    # The submitter reaches the dashboard only; the operator and Prometheus what they need.
    Edge("submitter", "head", GCS),
    Edge("submitter", "cpu-decode", DASHBOARD),
    Edge("submitter", "s3", 443),
    Edge("kuberay-operator", "head", GCS),
    Edge("kuberay-operator", "cpu-decode", DASHBOARD),
    Edge("prometheus", "head", DASHBOARD),
    Edge("prometheus", "cpu-decode", DRIVER_METRICS),
    Edge("ingress-controller", "head", DASHBOARD),
    Edge("ingress-controller", "head", 10001),
    # Object storage: HTTPS on public addresses only; no VPC service, no cloud metadata.
    Edge("cpu-decode", "s3", 80),
    Edge("cpu-decode", "vpc-minio", 443),
    Edge("cpu-decode", "cloud-metadata", 80),
    Edge("gpu-embed", "cloud-metadata", 443),
]


@pytest.mark.parametrize("edge", ALLOWED, ids=str)
def test_prod_network_allows_what_a_run_needs(
    rayjob: Manifest, prod: list[Manifest], edge: Edge
) -> None:
    connection = Connection(
        endpoint(rayjob, prod, edge.source),
        endpoint(rayjob, prod, edge.destination),
        edge.port,
        edge.protocol,
    )
    assert connection_allowed_in(prod, connection)


@pytest.mark.parametrize("edge", DENIED, ids=str)
def test_prod_network_denies_the_rest(rayjob: Manifest, prod: list[Manifest], edge: Edge) -> None:
    connection = Connection(
        endpoint(rayjob, prod, edge.source),
        endpoint(rayjob, prod, edge.destination),
        edge.port,
        edge.protocol,
    )
    assert not connection_allowed_in(prod, connection)


def connection_allowed_in(objects: list[Manifest], connection: Connection) -> bool:
    return connection_allowed(of_kind(objects, "NetworkPolicy"), connection)


def test_default_deny_alone_blocks_every_flow_of_a_run(
    rayjob: Manifest, prod: list[Manifest]
) -> None:
    """Each allowed flow comes from a rule of its own."""
    deny = find(prod, "NetworkPolicy", "clipmesh-default-deny")
    for edge in ALLOWED:
        connection = Connection(
            endpoint(rayjob, prod, edge.source),
            endpoint(rayjob, prod, edge.destination),
            edge.port,
            edge.protocol,
        )
        assert not connection_allowed_in([deny], connection), edge
