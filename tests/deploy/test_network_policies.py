"""The prod overlay's network policies, evaluated on the rendered objects: each flow the mesh
needs is allowed (egress on the caller and ingress on the callee), and everything it never
does is denied, starting from default-deny both ways. The same holds for the PostgreSQL
cluster the generator and previs keep their state in, and the orchestrator its callers'
quota charges (CloudNativePG's pods, its operator), and for a database outside the cluster
(components/postgresql-external). kubelet probes come from the node and are not subject to
them.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.deploy.manifests import (
    PROD,
    Connection,
    Endpoint,
    Manifest,
    connection_allowed,
    find,
    of_kind,
    pod_endpoint,
    render,
    workload_of,
)

COMPONENTS = {"orchestrator", "previs", "encoder", "index", "generator"}


@pytest.fixture(scope="module")
def prod() -> list[Manifest]:
    return render(PROD)


OUTSIDE = {
    "ingress-controller": Endpoint("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    "prometheus": Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    "kube-dns": Endpoint("kube-system", {"k8s-app": "kube-dns"}),
    "milvus-proxy": Endpoint(
        "milvus",
        {
            "app.kubernetes.io/name": "milvus",
            "app.kubernetes.io/instance": "milvus",
            "component": "proxy",
        },
    ),
    "otel-collector": Endpoint("observability", {"app.kubernetes.io/name": "otel-collector"}),
    "dashscope": Endpoint(ip="47.88.1.10"),  # a public address
    # Callers' webhook receivers (the generator POSTs to them when jobs end): on the
    # internet, over IPv4 or IPv6, or on networks the generator must never reach.
    "webhook-receiver": Endpoint(ip="198.51.100.20"),
    "webhook-receiver-v6": Endpoint(ip="2001:db8::20"),
    "office-receiver": Endpoint(ip="192.168.1.20"),
    "carrier-nat-receiver": Endpoint(ip="100.64.3.4"),
    "vpc-receiver-v6": Endpoint(ip="fd12:3456::20"),
    "vpc-database": Endpoint(ip="10.20.0.5"),
    "cloud-metadata": Endpoint(ip="169.254.169.254"),
    # CloudNativePG: its operator (the Helm chart's labels, namespace cnpg-system), and the
    # Kubernetes API server its instance managers report to (a control-plane address).
    "cnpg-operator": Endpoint("cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
    "kube-apiserver": Endpoint(ip="172.18.0.2"),
    # The database of components/postgresql-external, at the component's placeholder address.
    "external-postgresql": Endpoint(ip="192.0.2.10"),
}
# The pods of the CloudNativePG cluster (instances and the jobs that create them) carry the
# cluster's name; ports: PostgreSQL, the instance manager's status, the metrics exporter.
POSTGRESQL_CLUSTER = "clipmesh-postgresql"
POSTGRESQL, INSTANCE_STATUS, POSTGRESQL_METRICS = 5432, 8000, 9187
METRICS_PORTS = {
    "orchestrator": 9150,
    "previs": 9154,
    "encoder": 9151,
    "index": 9152,
    "generator": 9153,
}
CALLEES = {"encoder": 50051, "index": 50052, "generator": 50053}


class Edge(NamedTuple):
    """A flow by endpoint names: mesh components or names of OUTSIDE."""

    source: str
    destination: str
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.source}->{self.destination}:{self.port}/{self.protocol}"

    def connection(self, objects: list[Manifest]) -> Connection:
        return Connection(
            endpoint(objects, self.source),
            endpoint(objects, self.destination),
            self.port,
            self.protocol,
        )


def endpoint(objects: list[Manifest], name: str) -> Endpoint:
    """A mesh component's pods, the PostgreSQL cluster's, or a named endpoint outside the
    mesh."""
    if name in COMPONENTS:
        return pod_endpoint(workload_of(objects, name))
    if name == "postgresql":
        [cluster] = of_kind(objects, "Cluster")
        return Endpoint(
            cluster["metadata"]["namespace"],
            {"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/instanceRole": "primary"},
            {"postgresql": POSTGRESQL, "status": INSTANCE_STATUS, "metrics": POSTGRESQL_METRICS},
        )
    return OUTSIDE[name]


ALLOWED = [
    # The orchestrator's generator calls too: it forwards the public generation API.
    *[
        Edge(caller, callee, port)
        for caller in ("orchestrator", "previs")
        for callee, port in CALLEES.items()
    ],
    Edge("ingress-controller", "orchestrator", 50050),
    Edge("ingress-controller", "previs", 50054),  # previs's own port, behind Service port 50050
    Edge("index", "milvus-proxy", 19530),
    Edge("generator", "dashscope", 443),
    Edge("generator", "webhook-receiver", 443),
    Edge("generator", "webhook-receiver-v6", 443),
    *[Edge("prometheus", name, port) for name, port in METRICS_PORTS.items()],
    *[Edge(name, "kube-dns", 53, "UDP") for name in sorted(COMPONENTS)],
    *[Edge(name, "kube-dns", 53, "TCP") for name in sorted(COMPONENTS)],
    *[Edge(name, "otel-collector", 4317) for name in sorted(COMPONENTS)],
    # The store: the generator, previs and the orchestrator (its callers' quota charges, shared
    # by its replicas) on PostgreSQL; the operator manages the instances, which replicate
    # among themselves and report to the API server; Prometheus scrapes them.
    Edge("generator", "postgresql", POSTGRESQL),
    Edge("previs", "postgresql", POSTGRESQL),
    Edge("orchestrator", "postgresql", POSTGRESQL),
    Edge("cnpg-operator", "postgresql", INSTANCE_STATUS),
    Edge("cnpg-operator", "postgresql", POSTGRESQL),
    Edge("postgresql", "postgresql", POSTGRESQL),
    Edge("postgresql", "postgresql", INSTANCE_STATUS),
    Edge("postgresql", "kube-apiserver", 6443),
    Edge("postgresql", "kube-apiserver", 443),
    Edge("postgresql", "kube-dns", 53, "UDP"),
    Edge("prometheus", "postgresql", POSTGRESQL_METRICS),
]
DENIED = [
    # The mesh's services never call each other; only the orchestrator and previs call them.
    Edge("encoder", "index", 50052),
    Edge("index", "encoder", 50051),
    Edge("generator", "encoder", 50051),
    Edge("encoder", "generator", 50053),
    Edge("index", "generator", 50053),
    Edge("generator", "index", 50052),
    Edge("orchestrator", "previs", 50054),
    Edge("orchestrator", "encoder", 9151),
    # From outside: the public API only, metrics only for Prometheus.
    Edge("ingress-controller", "encoder", 50051),
    Edge("ingress-controller", "index", 50052),
    Edge("ingress-controller", "generator", 50053),
    Edge("ingress-controller", "orchestrator", 9150),
    Edge("prometheus", "encoder", 50051),
    # Out of the mesh: Milvus for the index only, the internet for the generator only and
    # only over HTTPS, never private addresses or the cloud metadata endpoint.
    Edge("orchestrator", "milvus-proxy", 19530),
    Edge("encoder", "dashscope", 443),
    Edge("orchestrator", "dashscope", 443),
    Edge("generator", "dashscope", 80),
    Edge("generator", "vpc-database", 443),
    Edge("generator", "cloud-metadata", 443),
    Edge("generator", "cloud-metadata", 80),
    # Webhooks: HTTPS on 443 to the internet only; the gateway posts them, nothing else does.
    Edge("generator", "webhook-receiver", 80),
    Edge("generator", "webhook-receiver", 8443),
    Edge("generator", "office-receiver", 443),
    Edge("generator", "carrier-nat-receiver", 443),
    Edge("generator", "vpc-receiver-v6", 443),
    Edge("orchestrator", "webhook-receiver", 443),
    Edge("previs", "webhook-receiver", 443),
    Edge("encoder", "kube-dns", 443),
    # The database: only the generator, previs and the orchestrator use it, on PostgreSQL's
    # port alone; the instance manager answers the operator and the instances, nobody else;
    # the database's pods call nothing of the mesh and nothing outside but the API server's
    # ports.
    Edge("encoder", "postgresql", POSTGRESQL),
    Edge("index", "postgresql", POSTGRESQL),
    Edge("ingress-controller", "postgresql", POSTGRESQL),
    Edge("generator", "postgresql", INSTANCE_STATUS),
    Edge("orchestrator", "postgresql", INSTANCE_STATUS),
    Edge("orchestrator", "postgresql", POSTGRESQL_METRICS),
    Edge("prometheus", "postgresql", POSTGRESQL),
    Edge("postgresql", "generator", 50053),
    Edge("postgresql", "orchestrator", 50050),
    Edge("postgresql", "cloud-metadata", 80),
    Edge("postgresql", "vpc-database", POSTGRESQL),
    Edge("generator", "vpc-database", POSTGRESQL),
    Edge("generator", "external-postgresql", POSTGRESQL),
    # The orchestrator's store rule leads to CloudNativePG's pods, nowhere else on 5432.
    Edge("orchestrator", "vpc-database", POSTGRESQL),
    Edge("orchestrator", "external-postgresql", POSTGRESQL),
]


@pytest.mark.parametrize("edge", ALLOWED, ids=str)
def test_prod_network_allows_the_mesh_flow(prod: list[Manifest], edge: Edge) -> None:
    assert connection_allowed(of_kind(prod, "NetworkPolicy"), edge.connection(prod))


@pytest.mark.parametrize("edge", DENIED, ids=str)
def test_prod_network_denies_what_the_mesh_never_does(prod: list[Manifest], edge: Edge) -> None:
    assert not connection_allowed(of_kind(prod, "NetworkPolicy"), edge.connection(prod))


def test_prod_denies_by_default(prod: list[Manifest]) -> None:
    """Every flow above is allowed by a rule of its own: default-deny alone blocks them all."""
    deny = find(prod, "NetworkPolicy", "clipmesh-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for edge in ALLOWED:
        assert not connection_allowed([deny], edge.connection(prod)), edge
