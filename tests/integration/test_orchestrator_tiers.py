"""Each front door serves its own API: the orchestrator search and ingest, previs PrevisService.

Kubernetes scales the orchestrator behind an autoscaler and runs previs as its own workload;
neither may answer the other's calls with a store of its own.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh.previs.config import PrevisConfig
from clipmesh.previs.server import create_app as create_previs
from clipmesh.runtime.config import load_config
from clipmesh_api.orchestrator.v1 import (
    previs_pb2,
    previs_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from clipmesh_client.wire import open_aio_channel
from tests.support import serve_in_process

SEARCH = "clipmesh.orchestrator.v1.SearchService"
INGEST = "clipmesh.orchestrator.v1.IngestService"
PREVIS = "clipmesh.orchestrator.v1.PrevisService"


async def _health(channel: grpc.aio.Channel, service: str) -> grpc.StatusCode | str:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def _code(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_the_orchestrator_serves_search_and_ingest_and_no_previs(tmp_path) -> None:
    config = load_config(
        OrchestratorConfig,
        environ={"CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path / "orchestrator")},
    )
    async with (
        serve_in_process(config, create_orchestrator(config)) as service,
        open_aio_channel(service.target) as channel,
    ):
        assert await _health(channel, SEARCH) == "SERVING"
        assert await _health(channel, INGEST) == "SERVING"
        assert await _health(channel, PREVIS) == grpc.StatusCode.NOT_FOUND
        stub = previs_pb2_grpc.PrevisServiceStub(channel)
        request = previs_pb2.GetProjectRequest(project_id="p")
        assert await _code(stub.GetProject(request, timeout=5)) == grpc.StatusCode.UNIMPLEMENTED
    # Its only store is the ingest quota ledger: no previs projects, no generation jobs.
    stores = {path.name for path in (tmp_path / "orchestrator").rglob("*.sqlite3")}
    assert stores == {"usage.sqlite3"}


async def test_previs_serves_previs_and_no_search(tmp_path) -> None:
    config = load_config(PrevisConfig, environ={"CLIPMESH_PREVIS_DATA_DIR": str(tmp_path)})
    async with (
        serve_in_process(config, create_previs(config)) as service,
        open_aio_channel(service.target) as channel,
    ):
        assert await _health(channel, PREVIS) == "SERVING"
        assert await _health(channel, SEARCH) == grpc.StatusCode.NOT_FOUND
        previs = previs_pb2_grpc.PrevisServiceStub(channel)
        missing = previs.GetProject(previs_pb2.GetProjectRequest(project_id="p"), timeout=5)
        assert await _code(missing) == grpc.StatusCode.NOT_FOUND
        search = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.SearchVideosRequest(parts=[search_pb2.QueryPart(text="x")])
        assert await _code(search.SearchVideos(request, timeout=5)) == (
            grpc.StatusCode.UNIMPLEMENTED
        )
    assert (tmp_path / "previs.sqlite3").exists()
