"""gRPC servicer of the generator gateway: translates proto ↔ domain.

Its RPCs answer UNIMPLEMENTED (through the runtime's error mapping of the generated base
class) until the job core lands.
"""

from __future__ import annotations

from clipmesh_api.generator.v1 import generator_pb2_grpc


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """Serves GeneratorService."""
