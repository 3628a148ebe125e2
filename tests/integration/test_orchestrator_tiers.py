"""The orchestrator's scalable tier: with previs off it serves search and ingest only.

Kubernetes runs search and ingest on replicas behind an autoscaler and previs (whose project
store is one SQLite file) on a single replica; the scaled tier must not answer previs calls
with a store of its own.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.server import create_app
from clipmesh.runtime.channels import create_channel
from clipmesh.runtime.config import load_config
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from tests.support import serve_in_process

PREVIS = "clipmesh.orchestrator.v1.PrevisService"


async def _health(channel: grpc.aio.Channel, service: str) -> grpc.StatusCode | str:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_with_previs_off_the_previs_service_is_not_served(tmp_path) -> None:
    config = load_config(
        OrchestratorConfig,
        environ={
            "CLIPMESH_ORCHESTRATOR_PREVIS_ENABLED": "false",
            "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path / "orchestrator"),
        },
    )
    async with (
        serve_in_process(config, create_app(config)) as service,
        create_channel(service.target) as channel,
    ):
        assert await _health(channel, "clipmesh.orchestrator.v1.SearchService") == "SERVING"
        assert await _health(channel, PREVIS) == grpc.StatusCode.NOT_FOUND
        stub = previs_pb2_grpc.PrevisServiceStub(channel)
        try:
            await stub.GetProject(previs_pb2.GetProjectRequest(project_id="p"), timeout=5)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            raise AssertionError("GetProject answered on a tier that serves no previs")
    assert not (tmp_path / "orchestrator" / "previs.sqlite3").exists()
