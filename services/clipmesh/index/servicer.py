"""gRPC servicer of the index: translates proto ↔ domain.

Its RPCs answer UNIMPLEMENTED (through the runtime's error mapping of the generated base
class) until the index core lands.
"""

from __future__ import annotations

from clipmesh_api.index.v1 import index_pb2_grpc


class IndexServicer(index_pb2_grpc.IndexServiceServicer):
    """Serves IndexService."""
