"""gRPC servicers of the orchestrator's public API: translate proto ↔ domain.

Their RPCs answer UNIMPLEMENTED (through the runtime's error mapping of the generated base
classes) until search, ingest and previs land.
"""

from __future__ import annotations

from clipmesh_api.orchestrator.v1 import ingest_pb2_grpc, previs_pb2_grpc, search_pb2_grpc


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """Serves SearchService."""


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Serves IngestService."""


class PrevisServicer(previs_pb2_grpc.PrevisServiceServicer):
    """Serves PrevisService."""
