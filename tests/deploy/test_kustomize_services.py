"""The objects around the workloads in the rendered kustomize manifests (deploy/k8s) find
them: each Service selects one workload and reaches its named ports, dependencies are headless,
every workload has a disruption budget that never blocks a drain, autoscalers own their
replica counts, and everything a pod references is rendered or made outside the manifests.

Base and every overlay are checked (the `objects` fixture of tests/deploy/conftest.py).
"""

from __future__ import annotations

from tests.deploy.manifests import (
    Manifest,
    autoscaler_of,
    container_ports,
    containers,
    describe,
    exists,
    find,
    of_kind,
    referenced,
    selected_workloads,
    workloads,
)

# Secrets an SRE creates in the namespace (deploy/k8s/README.md); never committed.
EXTERNAL_SECRETS = {
    "clipmesh-generator-provider",
    "clipmesh-milvus",
    "clipmesh-api-tokens",
    "clipmesh-policy",
    "clipmesh-postgresql",
}
# What CloudNativePG makes for each of its Clusters: the owner's credentials and the CA of the
# server certificate.
CLOUDNATIVEPG_SECRETS = ("{cluster}-app", "{cluster}-ca")


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
    """Or created outside the manifests: a Secret an SRE makes, one cert-manager issues for a
    rendered Certificate, or one CloudNativePG makes for a rendered Cluster."""
    issued = {c["spec"]["secretName"] for c in of_kind(objects, "Certificate")} | {
        name.format(cluster=cluster["metadata"]["name"])
        for cluster in of_kind(objects, "Cluster")
        for name in CLOUDNATIVEPG_SECRETS
    }
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
